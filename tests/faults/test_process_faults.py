"""`kill -9` mid-stream, then a restart: a real `python -m core run` child process each time.

The fakes (FakeDiscord / FakeSlack) and the Voiceflow simulator run in the test process; the
child reaches them over HTTP through the same variables an operator sets. The child's SQLite
journal is all that survives the kill: the next child must finalize the dangling placeholder
as interrupted — its last text, the "⚠️ interrupted" note, no cursor, no Stop control. A
Slack native stream is stopped with the note, or, when Slack expired it while the process was
down, pinned with ``chat.update`` to its journaled text plus the note.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from core.config import Secret
from core.lease import RENEW_S, lease_name
from core.simulator import Simulator
from core.store import open_store
from tests.e2e.discord_fixtures import CURSOR
from tests.e2e.slack_fixtures import dm_event
from tests.fakes.discord import FakeDiscord, FakeMessage
from tests.fakes.slack import FakeMessage as SlackMessage
from tests.fakes.slack import FakeSlack
from tests.faults.invariants import (
    ANSWERS,
    CHECKED,
    INTERRUPTED,
    fault,
    interim_source,
    slack_hanging,
)
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
    wait_serving,
)
from tests.redis_server import redis_server

__all__ = ["slow_simulator"]  # a fixture this module uses

QUESTION = "medium question"


def discord_streaming(fake: FakeDiscord) -> FakeMessage | None:
    for message in fake.channel_messages(DISCORD_DM):
        if "vfs:" in str(message.components) and len(message.edits) >= 2:
            return message
    return None


async def test_kill_9_mid_stream_on_discord_is_finalized_at_the_next_start(
    tmp_path: Path, slow_simulator: Simulator
) -> None:
    async with FakeDiscord(limit=5, window_s=1.0) as fake:
        env = discord_env(tmp_path, slow_simulator, fake)
        async with child(env, tmp_path) as first:
            await ask_in_discord_dm(fake, QUESTION)
            await fake.wait_until(lambda: discord_streaming(fake) is not None, STARTUP_S)
            assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
        fault("process kill -9 mid-stream (Discord)")
        doomed = discord_streaming(fake)
        assert doomed is not None
        shown = doomed.content.removesuffix(CURSOR)
        assert interim_source(shown, ANSWERS[QUESTION]) is not None and shown != ANSWERS[QUESTION]
        async with child(env, tmp_path) as second:
            await fake.wait_until(lambda: fake.gateway.identify_count == 2, STARTUP_S)
            await fake.wait_until(lambda: doomed.content.endswith(INTERRUPTED), STARTUP_S)
            assert doomed.content == f"{shown.rstrip()}\n\n{INTERRUPTED}"
            assert doomed.components == []
            CHECKED.add(shown)
            # The restarted process serves: a new conversation is answered exactly.
            await fake.send_message("second conversation", channel_id="3001", mention_bot=True)
            expected = ANSWERS["second conversation"]
            await fake.wait_until(
                lambda: any(m.content == expected for m in fake.channel_messages("3001")), 30
            )
            CHECKED.add(expected)
            assert await second.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "finalized 1 discord message" in "".join(second.output)


async def test_a_second_process_on_one_token_stands_by_and_takes_over_when_the_first_stops(
    tmp_path: Path, slow_simulator: Simulator
) -> None:
    """A deploy that starts the new process before stopping the old one (core/lease.py): the
    new one waits, so no event is answered twice, then connects when the old one lets go."""
    async with FakeDiscord(limit=5, window_s=1.0) as fake:
        env = discord_env(tmp_path, slow_simulator, fake)
        ports = free_port(), free_port()  # METRICS_PORT: readiness tells them apart
        local_metrics = {"METRICS_PORT": str(ports[0]), "METRICS_HOST": "127.0.0.1"}
        async with child({**env, **local_metrics}, tmp_path) as first:
            await fake.wait_until(lambda: fake.gateway.identify_count == 1, STARTUP_S)
            json_logs = {"METRICS_PORT": str(ports[1]), "LOG_FORMAT": "json"}
            async with child({**env, **json_logs}, tmp_path) as second:
                await said(second, "waiting to take over")
                await wait_ready(ports[0])  # READY, then the guilds: a moment after IDENTIFY
                assert await probe(ports[0], "/readyz") == (200, {"discord": "connected"})
                assert await probe(ports[1], "/readyz") == (503, {"discord": "standby"})
                assert await probe(ports[1], "/healthz") == (200, {"discord": "standby"})
                await fake.send_message("short question", channel_id=DISCORD_DM)
                await fake.wait_until(lambda: answered(fake, DISCORD_DM, "short question"), 30)
                assert fake.gateway.identify_count == 1, "the standby connected"
                assert await first.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
                await fake.wait_until(lambda: fake.gateway.identify_count == 2, STARTUP_S)
                await wait_ready(ports[1])
                await fake.send_message("second conversation", channel_id="3001", mention_bot=True)
                await fake.wait_until(lambda: answered(fake, "3001", "second conversation"), 30)
                assert await second.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        for channel, question in ((DISCORD_DM, "short question"), ("3001", "second conversation")):
            answers = [m for m in fake.channel_messages(channel) if m.content == ANSWERS[question]]
            assert len(answers) == 1, f"{question!r} answered {len(answers)} times"
            CHECKED.add(ANSWERS[question])
        assert "taking over from the process before" in "".join(second.output)
        assert f"metrics at http://127.0.0.1:{ports[0]}/metrics" in "".join(first.output)
        logged = [json.loads(line) for line in second.output]  # LOG_FORMAT=json: every line
        assert {"time", "level", "logger", "message"} <= set(logged[0])


def free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


async def probe(port: int, path: str) -> tuple[int, object]:
    """What a Kubernetes probe gets from the child's METRICS_PORT."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.json()


async def wait_ready(port: int, seconds: float = STARTUP_S) -> None:
    """Probe /readyz as a readiness probe does, until it says 200."""
    deadline = asyncio.get_running_loop().time() + seconds
    while (await probe(port, "/readyz"))[0] != 200:
        assert asyncio.get_running_loop().time() < deadline, "never ready"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("store", ["sqlite", "redis"])
async def test_processes_on_separate_shards_serve_one_bot_and_an_overlapping_one_stands_by(
    tmp_path: Path, slow_simulator: Simulator, store: str
) -> None:
    """Two processes, shards 0 and 1 of 2, on one store (the README's layout): each guild's
    mention is answered once, by the process of its shard. A third asking for shards 0-1
    waits (a lease per shard, bots/discord/shards.py) and connects only when both stop."""
    async with contextlib.AsyncExitStack() as stack:
        fake = await stack.enter_async_context(FakeDiscord(limit=5, window_s=1.0))
        fake.max_concurrency = 2  # shards 0 and 1 may IDENTIFY in the same 5 s
        fake.gateway.identify_interval_s = 5.0
        env = {**discord_env(tmp_path, slow_simulator, fake), "DISCORD_SHARD_COUNT": "2"}
        if store == "redis":
            env["STATE_URL"] = await stack.enter_async_context(redis_server(tmp_path))
        async with (
            child({**env, "DISCORD_SHARD_IDS": "0"}, tmp_path) as zero,
            child({**env, "DISCORD_SHARD_IDS": "1"}, tmp_path) as one,
        ):
            both = [(0, 2), (1, 2)]
            await wait_serving(fake, lambda: fake.gateway.live_shards == both, zero, one)
            async with child({**env, "DISCORD_SHARD_IDS": "0-1"}, tmp_path) as third:
                await said(third, "waiting to take over")
                for channel in ("3000", "3200"):
                    await fake.send_message("short question", channel_id=channel, mention_bot=True)
                    await fake.wait_until(lambda c=channel: answered(fake, c, "short question"), 30)
                assert fake.gateway.identify_count == 2, "the standby connected"
                assert await one.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
                assert await zero.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
                await fake.wait_until(lambda: fake.gateway.identify_count == 4, STARTUP_S)
                assert fake.gateway.live_shards == [(0, 2), (1, 2)]
                assert await third.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert fake.gateway.identify_refused == 0
        for channel in ("3000", "3200"):
            answers = [
                m for m in fake.channel_messages(channel) if m.content == ANSWERS["short question"]
            ]
            assert len(answers) == 1, f"{channel} answered {len(answers)} times"
        CHECKED.add(ANSWERS["short question"])
        assert "shards 0 of 2" in "".join(zero.output)
        assert "shards 1 of 2" in "".join(one.output)


async def test_a_process_whose_lease_was_taken_stops_with_one_line(
    tmp_path: Path, slow_simulator: Simulator
) -> None:
    """Another process took the lease (this one stalled past its term): this one stops its
    bot and exits 1 with one line, instead of answering beside the other."""
    async with FakeDiscord(limit=5, window_s=1.0) as fake:
        env = discord_env(tmp_path, slow_simulator, fake)
        async with child(env, tmp_path) as running:
            await fake.wait_until(lambda: fake.gateway.identify_count == 1, STARTUP_S)
            async with open_store(env["STATE_URL"]) as store:
                name = lease_name("discord", Secret(fake.token))
                holder = await store.claim(name, "usurper", 60)
                assert holder is not None and str(running.proc.pid) in holder
                assert await store.claim(name, "usurper", 60, take_from=holder) is None
            await asyncio.wait_for(running.proc.wait(), RENEW_S + 20)
            assert await running.stop(signal.SIGTERM) == 1  # exited already: reads its output
        output = "".join(running.output)
        lines = [line for line in output.splitlines() if line.startswith("error:")]
        assert lines == [
            "error: Discord (DISCORD_TOKEN): another vf-bridge process took over this"
            " connection; stopping here"
        ], output
        assert "Traceback" not in output


async def said(process: Child, text: str, within_s: float = 30.0) -> None:
    """Until the process's log shows ``text`` (its output is read by the test's loop)."""

    async def written() -> None:
        while text not in "".join(process.output):
            process.wrote.clear()
            await process.wrote.wait()

    try:
        await asyncio.wait_for(written(), within_s)
    except TimeoutError:
        raise AssertionError("".join(process.output)) from None


def answered(fake: FakeDiscord, channel: str, question: str) -> bool:
    return any(m.content == ANSWERS[question] for m in fake.channel_messages(channel))


def slack_streaming(fake: FakeSlack) -> str | None:
    for message in fake.thread_messages(SLACK_DM, None):
        if slack_hanging(message) and len(message.history) >= 3:
            return message.ts
    return None


async def test_kill_9_mid_stream_on_slack_is_finalized_at_the_next_start(
    tmp_path: Path, slow_simulator: Simulator
) -> None:
    async with FakeSlack() as fake:
        env = slack_env(tmp_path, slow_simulator, fake)
        async with child(env, tmp_path) as first:
            await ask_in_slack_dm(fake, QUESTION)
            await fake.wait_until(lambda: slack_streaming(fake) is not None, STARTUP_S)
            assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
        fault("process kill -9 mid-stream (Slack)")
        ts = slack_streaming(fake)
        assert ts is not None
        doomed = fake.messages[(SLACK_DM, ts)]
        shown = doomed.visible_text.removesuffix(CURSOR).rstrip()
        shown_upto = interim_source(shown, ANSWERS[QUESTION])
        assert shown_upto is not None and shown != ANSWERS[QUESTION]
        async with child(env, tmp_path) as second:
            await fake.wait_until(
                lambda: doomed.visible_text.endswith(INTERRUPTED) and fake.socket_connected,
                STARTUP_S,
            )
            # Journaled before each edit: the note follows what was shown or one edit more.
            body = doomed.visible_text.removesuffix(INTERRUPTED).removesuffix("\n\n")
            body_upto = interim_source(body, ANSWERS[QUESTION])
            assert body_upto is not None and body_upto >= shown_upto
            assert not slack_hanging(doomed)
            CHECKED.add(body)
            await fake.send_event(
                dm_event(
                    "second conversation", user="U0002", channel="D0002", ts="1700000000.000200"
                )
            )
            expected = ANSWERS["second conversation"]
            await fake.wait_until(
                lambda: any(
                    m.visible_text == expected and not slack_hanging(m)
                    for m in fake.thread_messages("D0002", None)
                ),
                30,
            )
            CHECKED.add(expected)
            assert await second.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "finalized 1 slack message" in "".join(second.output)


MENTION_CHANNEL, OTHER_CHANNEL = "C0001", "C0002"


async def mention(fake: FakeSlack, text: str, *, channel: str, ts: str) -> None:
    """A mention as Slack delivers it: ``app_mention`` and ``message`` (docs/slack.md §3)."""
    event = {
        "user": "UHUMAN",
        "text": f"<@{fake.bot_user_id}> {text}",
        "ts": ts,
        "channel": channel,
        "team": "T0001",
    }
    await fake.send_event({"type": "app_mention", **event})
    await fake.send_event({"type": "message", "channel_type": "channel", **event})


def native_streaming(fake: FakeSlack, thread_ts: str) -> SlackMessage | None:
    for message in fake.thread_messages(MENTION_CHANNEL, thread_ts):
        if message.streaming and len(message.history) >= 3:  # started, appended twice
            return message
    return None


def last_append(fake: FakeSlack, ts: str) -> str:
    appends = [c for c in fake.calls_to("chat.appendStream") if c.ok and c.args["ts"] == ts]
    return str(appends[-1].args["markdown_text"])


@pytest.mark.parametrize("expired", [False, True], ids=["stopped", "expired"])
async def test_kill_9_mid_native_stream_is_finalized_at_the_next_start(
    tmp_path: Path, slow_simulator: Simulator, expired: bool
) -> None:
    async with FakeSlack() as fake:
        env = slack_env(tmp_path, slow_simulator, fake)
        thread_ts = "1700000000.000100"
        async with child(env, tmp_path) as first:
            await fake.wait_until(lambda: fake.socket_connected, STARTUP_S)
            await mention(fake, QUESTION, channel=MENTION_CHANNEL, ts=thread_ts)
            await fake.wait_until(lambda: native_streaming(fake, thread_ts) is not None, STARTUP_S)
            assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
        fault(f"process kill -9 mid native stream (Slack, {'expired' if expired else 'live'})")
        doomed = native_streaming(fake, thread_ts)
        assert doomed is not None
        shown = doomed.visible_text
        assert interim_source(shown, ANSWERS[QUESTION]) is not None and shown != ANSWERS[QUESTION]
        if expired:  # Slack expired the stream while the process was down (~5 min)
            fake.expire_stream(MENTION_CHANNEL, doomed.ts)
        async with child(env, tmp_path) as second:
            await fake.wait_until(
                lambda: doomed.visible_text.endswith(INTERRUPTED) and fake.socket_connected,
                STARTUP_S,
            )
            assert not slack_hanging(doomed)
            body = doomed.visible_text.removesuffix(f"\n\n{INTERRUPTED}")
            if expired:
                # Pinned with chat.update: the journaled text, which lacks the last append
                # only when the kill fell between Slack's ok and the journal write.
                assert body == shown or body + last_append(fake, doomed.ts) == shown
            else:
                assert body == shown  # stopStream appended only the note
            assert [c.error for c in fake.calls_to("chat.stopStream")] == [
                "message_not_in_streaming_state" if expired else None
            ]
            assert len(fake.calls_to("chat.update")) == int(expired)
            CHECKED.add(body)
            # The restarted process serves: a new conversation streams natively, exact.
            await mention(fake, "second conversation", channel=OTHER_CHANNEL, ts=thread_ts)
            expected = ANSWERS["second conversation"]
            await fake.wait_until(
                lambda: any(
                    m.visible_text == expected and not slack_hanging(m)
                    for m in fake.thread_messages(OTHER_CHANNEL, thread_ts)
                ),
                30,
            )
            CHECKED.add(expected)
            starts = fake.calls_to("chat.startStream")
            assert [c.args["channel"] for c in starts] == [MENTION_CHANNEL, OTHER_CHANNEL]
            assert await second.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "finalized 1 slack message" in "".join(second.output)
    async with open_store(env["STATE_URL"]) as store:  # finalized: no longer in flight
        assert doomed.ts not in {item.data["ts"] for item in await store.inflight("slack")}
