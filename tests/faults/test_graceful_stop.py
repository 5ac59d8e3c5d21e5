"""SIGTERM (a deploy, ``docker stop``) mid-stream: a real ``python -m core run`` child stops by
itself within its grace period; every answer in flight ends complete, or with everything that
arrived and the "⚠️ interrupted" note; and nothing is left in the journal for the next start.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from core.shutdown import SHUTDOWN_GRACE_S
from core.simulator import Simulator
from core.simulator.agent import completion, no_reply, text_trace
from core.store import open_store
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.faults.invariants import ANSWERS, CHECKED, INTERRUPTED, fault, fault_agent, slack_hanging
from tests.faults.processes import (
    DISCORD_DM,
    SLACK_DM,
    STARTUP_S,
    Child,
    ask_in_discord_dm,
    ask_in_slack_dm,
    child,
    discord_env,
    slack_env,
    slow_simulator,
)

__all__ = ["slow_simulator"]  # a fixture this module uses

QUESTION = "medium question"
#: The stop waits up to the grace period, then for the interrupted finals to go out.
STOP_WITHIN_S = SHUTDOWN_GRACE_S + 10.0


async def stop_gracefully(running: Child) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await running.stop(signal.SIGTERM) == 0
    assert loop.time() - began < STOP_WITHIN_S
    assert "stopping: 1 answer(s) in progress" in "".join(running.output)


def assert_ended(shown: str) -> None:
    """Complete, or everything that arrived then the note — never a frozen half-message."""
    full = ANSWERS[QUESTION]
    if shown != full:
        assert shown.endswith(f"\n\n{INTERRUPTED}"), shown[-80:]
        body = shown.removesuffix(f"\n\n{INTERRUPTED}")
        assert body and full.startswith(body)
    CHECKED.add(shown)


async def assert_nothing_in_flight(env: dict[str, str], platform: str) -> None:
    async with open_store(env["STATE_URL"]) as store:
        assert await store.inflight(platform) == []


async def test_sigterm_mid_stream_on_discord_ends_the_answer(
    tmp_path: Path, slow_simulator: Simulator
) -> None:
    async with FakeDiscord(limit=5, window_s=1.0) as fake:
        env = discord_env(tmp_path, slow_simulator, fake)
        async with child(env, tmp_path) as running:
            await ask_in_discord_dm(fake, QUESTION)

            def streaming() -> bool:
                return any(len(m.edits) >= 2 for m in fake.channel_messages(DISCORD_DM))

            await fake.wait_until(streaming, STARTUP_S)
            await stop_gracefully(running)
        fault("SIGTERM mid-stream (Discord)")
        [answer] = [m for m in fake.channel_messages(DISCORD_DM) if m.edits]
        assert answer.components == []  # no Stop button left
        assert_ended(answer.content)
    await assert_nothing_in_flight(env, "discord")


async def test_sigterm_mid_stream_on_slack_ends_the_answer(
    tmp_path: Path, slow_simulator: Simulator
) -> None:
    async with FakeSlack() as fake:
        env = slack_env(tmp_path, slow_simulator, fake)
        async with child(env, tmp_path) as running:
            await ask_in_slack_dm(fake, QUESTION)

            def streaming() -> bool:
                return any(len(m.history) >= 3 for m in fake.thread_messages(SLACK_DM, None))

            await fake.wait_until(streaming, STARTUP_S)
            await stop_gracefully(running)
        fault("SIGTERM mid-stream (Slack)")
        [answer] = fake.thread_messages(SLACK_DM, None)
        assert not slack_hanging(answer)
        assert_ended(answer.visible_text)
    await assert_nothing_in_flight(env, "slack")


async def test_sigterm_during_a_no_reply_turn_ends_its_answer(
    tmp_path: Path, slow_simulator: Simulator
) -> None:
    """A turn the no-reply timer started is an answer in progress like any other."""
    slow_simulator.agent.texts["wait for me"] = [text_trace("Take your time."), no_reply(1)]
    slow_simulator.agent.requests["no-reply"] = [completion(ANSWERS[QUESTION])]
    async with FakeDiscord(limit=5, window_s=1.0) as fake:
        env = discord_env(tmp_path, slow_simulator, fake)
        async with child(env, tmp_path) as running:
            await ask_in_discord_dm(fake, "wait for me")

            def streaming() -> bool:
                return any(len(m.edits) >= 2 for m in fake.channel_messages(DISCORD_DM))

            await fake.wait_until(streaming, STARTUP_S + 5.0)
            await stop_gracefully(running)
        fault("SIGTERM during a no-reply turn (Discord)")
        [answer] = [m for m in fake.channel_messages(DISCORD_DM) if m.edits]
        assert answer.components == []
        assert_ended(answer.content)
    await assert_nothing_in_flight(env, "discord")


async def test_a_second_sigterm_ends_the_answers_without_waiting_out_the_grace(
    tmp_path: Path,
) -> None:
    """An operator who signals again does not want to wait: the grace period ends there, the
    answer in flight ends as interrupted (kept, with its note) and the process exits 0."""
    async with Simulator(token_delay_s=0.2) as very_slow, FakeDiscord() as fake:
        very_slow.agent = fault_agent()  # the medium answer takes ~30 s: it outlasts the grace
        env = discord_env(tmp_path, very_slow, fake)
        async with child(env, tmp_path) as running:
            await ask_in_discord_dm(fake, QUESTION)

            def streaming() -> bool:
                return any(len(m.edits) >= 2 for m in fake.channel_messages(DISCORD_DM))

            await fake.wait_until(streaming, STARTUP_S)
            running.proc.send_signal(signal.SIGTERM)
            while "answer(s) in progress get" not in "".join(running.output):
                running.wrote.clear()
                await asyncio.wait_for(running.wrote.wait(), STARTUP_S)
            loop = asyncio.get_running_loop()
            again = loop.time()
            assert await running.stop(signal.SIGTERM) == 0
            assert loop.time() - again < SHUTDOWN_GRACE_S / 2  # not the grace's 5 s
        fault("a second SIGTERM mid-stream (Discord)")
        [answer] = [m for m in fake.channel_messages(DISCORD_DM) if m.edits]
        assert answer.components == []
        assert answer.content.endswith(INTERRUPTED), answer.content[-80:]
        assert_ended(answer.content)
    await assert_nothing_in_flight(env, "discord")
