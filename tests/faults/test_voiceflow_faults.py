"""Voiceflow faults, end to end: simulator over HTTP → real client → bridge → discord.py → fake.

The faulted conversation is the DM (channel 5000); after each fault a second conversation
(a mention in channel 3001) must still be answered exactly — the process keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from core.bridge import RETRY_LABEL
from core.errors import (
    VoiceflowAuthError,
    VoiceflowNotFoundError,
    VoiceflowRequestError,
    VoiceflowUnavailableError,
)
from core.relay import AGENT_ERROR_NOTE
from core.simulator import Faults
from tests.e2e import discord_fixtures
from tests.e2e.discord_fixtures import (
    DiscordWorld,
    WorldFactory,
    buttons_of,
    custom_id,
    wait_for_buttons,
)
from tests.faults.invariants import (
    ANSWERS,
    content_of,
    discord_answer,
    events_for,
    fault,
    fault_agent,
    full_answer,
    wait_discord,
    wait_discord_interrupted,
)

discord_world_factory = discord_fixtures.discord_world_factory

DM = "5000"
OTHER = "3001"
#: Events into the turn after which the stream breaks: well inside the first answer.
CUT_AFTER = 25


@pytest.fixture
async def world(discord_world_factory: WorldFactory) -> AsyncIterator[DiscordWorld]:
    async with discord_world_factory(
        token_delay_s=0.01, settings_changes={"voiceflow_idle_timeout_s": 0.5}
    ) as w:
        w.simulator.agent = fault_agent()
        yield w


async def second_conversation_works(w: DiscordWorld) -> None:
    """Another conversation, after the fault is gone, is answered exactly."""
    w.simulator.faults = Faults()
    since = len(discord_answer(w, OTHER))
    await w.mention("second conversation", channel_id=OTHER)
    await wait_discord(w, OTHER, ANSWERS["second conversation"], since=since)


@pytest.mark.parametrize("abort", [False, True], ids=["eof-without-end", "connection-reset"])
async def test_a_stream_cut_mid_answer_keeps_what_arrived_and_says_so(
    world: DiscordWorld, abort: bool, caplog: pytest.LogCaptureFixture
) -> None:
    w = world
    w.simulator.faults.close_after_events = CUT_AFTER
    w.simulator.faults.abort_on_close = abort
    fault("voiceflow " + ("connection reset" if abort else "EOF without end"))
    events = events_for(w.simulator, "medium question")
    full = content_of(events)
    # A reset may drop the last event in flight; an EOF delivers every event sent.
    arrived = content_of(events[: CUT_AFTER - 1 if abort else CUT_AFTER])
    await w.dm("medium question")
    body = await wait_discord_interrupted(w, DM, full, arrived)
    assert body != full
    if not abort:
        assert body == arrived
    assert any("voiceflow stream interrupted" in r.getMessage() for r in caplog.records)
    await second_conversation_works(w)


async def test_retry_under_a_cut_answer_asks_again_and_gets_it_whole(world: DiscordWorld) -> None:
    """A Retry button follows the interrupted answer; clicked once Voiceflow is healthy again,
    it sends the question again and the whole answer appears once, with no second Retry."""
    w = world
    w.simulator.faults.close_after_events = CUT_AFTER
    fault("voiceflow EOF without end, then the user clicks Retry")
    full = full_answer(w.simulator, "medium question")
    await w.dm("medium question")
    await wait_discord_interrupted(
        w, DM, full, content_of(events_for(w.simulator, "medium question")[:CUT_AFTER])
    )
    retry = await wait_for_buttons(w, DM, RETRY_LABEL)
    assert retry.content == ""  # a button under the answer, no text of its own
    w.simulator.faults = Faults()
    since = len(discord_answer(w, DM))
    await w.fake.click(retry.id, custom_id(retry, RETRY_LABEL))
    await wait_discord(w, DM, full, since=since)
    assert w.voiceflow_actions()[-1] == {"type": "text", "payload": "medium question"}
    assert retry.content.endswith(f"chose *{RETRY_LABEL}*")
    assert all(b.get("disabled") for b in buttons_of(retry))
    later = [b for m in discord_answer(w, DM, since) for b in buttons_of(m)]
    assert not any(b.get("label") == RETRY_LABEL for b in later)


async def test_silence_mid_stream_ends_at_the_idle_timeout(world: DiscordWorld) -> None:
    w = world
    w.simulator.faults.stall_after_events = CUT_AFTER
    w.simulator.faults.stall_s = 30.0  # 30 s of silence; the client gives up after 0.5 s
    fault("voiceflow silence mid-stream")
    events = events_for(w.simulator, "medium question")
    await w.dm("medium question")
    body = await wait_discord_interrupted(w, DM, content_of(events), content_of(events[:CUT_AFTER]))
    assert body == content_of(events[:CUT_AFTER])
    await w.simulator.wait_for_disconnects(1)  # the request itself was closed
    await second_conversation_works(w)


async def crash_next_turns(w: DiscordWorld, *, after: int) -> int:
    """Start the DM's conversation cleanly (a launch would crash too), then crash its turns
    after ``after`` traces; returns how many messages the DM shows already."""
    await w.dm("short question")
    await wait_discord(w, DM, ANSWERS["short question"])
    w.simulator.faults.internal_error = True
    w.simulator.faults.internal_error_after = after
    return len(discord_answer(w, DM))


async def test_a_runtime_crash_before_the_answer_is_a_short_message(
    world: DiscordWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """The runtime reports a crash as a debug trace, then a normal end (docs/voiceflow-api.md
    §6): the user is told, not left with silence."""
    w = world
    since = await crash_next_turns(w, after=2)  # flow, block
    fault("voiceflow runtime crash before the answer (debug trace, then end)")
    assert content_of(events_for(w.simulator, "medium question")) == ""
    await w.dm("medium question")
    await wait_discord(w, DM, AGENT_ERROR_NOTE, since=since)
    assert any("agent failed mid-turn" in r.getMessage() for r in caplog.records)
    await wait_for_buttons(w, DM, RETRY_LABEL)
    await second_conversation_works(w)


async def test_a_runtime_crash_mid_answer_keeps_what_arrived_and_says_so(
    world: DiscordWorld,
) -> None:
    w = world
    full = full_answer(w.simulator, "medium question")
    since = await crash_next_turns(w, after=CUT_AFTER)
    fault("voiceflow runtime crash mid-answer (debug trace, then end)")
    arrived = content_of(events_for(w.simulator, "medium question"))
    assert arrived and full.startswith(arrived) and arrived != full
    await w.dm("medium question")
    assert await wait_discord_interrupted(w, DM, full, arrived, since=since) == arrived
    await second_conversation_works(w)


async def test_malformed_lines_non_json_and_unknown_traces_are_skipped(
    world: DiscordWorld,
) -> None:
    w = world
    w.simulator.faults.malformed_lines = True
    w.simulator.faults.non_json_data = True
    w.simulator.faults.unknown_trace = True
    fault("voiceflow malformed lines")
    fault("voiceflow non-JSON data")
    fault("voiceflow unknown trace")
    await w.dm("short question")
    await wait_discord(w, DM, ANSWERS["short question"])
    await second_conversation_works(w)


@pytest.mark.parametrize(
    ("status", "error", "variable"),
    [
        (401, VoiceflowAuthError, "VOICEFLOW_API_KEY"),
        (404, VoiceflowNotFoundError, "VOICEFLOW_ENVIRONMENT"),
        (400, VoiceflowRequestError, "VOICEFLOW_ENVIRONMENT"),
    ],
)
async def test_a_refusal_at_the_start_is_a_short_message_and_an_operator_hint(
    world: DiscordWorld,
    caplog: pytest.LogCaptureFixture,
    status: int,
    error: type[Exception],
    variable: str,
) -> None:
    w = world
    w.simulator.faults.fail_next(status)
    fault(f"voiceflow {status} at start")
    await w.dm("short question")
    user_message = error.user_message  # type: ignore[attr-defined]
    await wait_discord(w, DM, user_message)
    assert len(user_message) < 100 and str(status) not in user_message
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(str(status) in line and variable in line for line in lines), lines
    assert len(w.voiceflow_actions()) == 1  # a refusal is not retried
    await second_conversation_works(w)


async def test_429_is_retried_after_retry_after(world: DiscordWorld) -> None:
    w = world
    w.simulator.faults.fail_next(429)  # Retry-After: 1
    fault("voiceflow 429 with Retry-After")
    await w.dm("short question")
    await wait_discord(w, DM, ANSWERS["short question"])
    first, second = (r.time for r in w.simulator.requests[:2])
    assert second - first >= 1.0
    await second_conversation_works(w)


async def test_a_5xx_is_retried_and_a_lasting_one_is_a_short_message(world: DiscordWorld) -> None:
    w = world
    w.simulator.faults.fail_next(503)
    fault("voiceflow 503 once")
    await w.dm("short question")
    await wait_discord(w, DM, ANSWERS["short question"])
    since = len(discord_answer(w, DM))
    w.simulator.faults.fail_next(502, times=4)  # every attempt fails
    fault("voiceflow 502 on every retry")
    await w.dm("short question")
    await wait_discord(w, DM, VoiceflowUnavailableError.user_message, since=since)
    await second_conversation_works(w)


async def test_a_100000_character_answer_arrives_whole(
    discord_world_factory: WorldFactory,
) -> None:
    # Channel buckets of 50 per second: the answer needs ~55 messages.
    async with discord_world_factory(limit=50, window_s=1.0, token_delay_s=0.001) as w:
        w.simulator.agent = fault_agent()
        fault("voiceflow 100,000-character answer")
        full = full_answer(w.simulator, "huge")
        assert len(full) >= 100_000
        await w.dm("huge")
        messages = await wait_discord(w, DM, full, within_s=60)
        assert len(messages) >= 50
        assert all(len(m.content) <= 2000 for m in messages)
        await second_conversation_works(w)


async def test_a_thousand_tiny_chunks_a_second(discord_world_factory: WorldFactory) -> None:
    async with discord_world_factory(token_delay_s=0.001) as w:
        w.simulator.agent = fault_agent()
        fault("voiceflow 1,000 chunks per second")
        events = events_for(w.simulator, "tiny chunks")
        assert sum(1 for e in events if e.get("type") == "completion") > 1_000
        await w.dm("tiny chunks")
        await wait_discord(w, DM, content_of(events), within_s=60)
        assert w.fake.count_429 == 0
        await second_conversation_works(w)
