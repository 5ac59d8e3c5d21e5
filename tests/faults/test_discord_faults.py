"""Discord faults, end to end: real discord.py against FakeDiscord's scripted failures.

The faulted answer streams in the DM (channel 5000) while a second conversation streams in
channel 3001 at the same time; both must end exact, with nothing left hanging.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.recovery import StoreJournal
from core.relay import REFUSED_NOTE
from core.simulator.agent import ScriptedAgent
from tests.e2e import discord_fixtures
from tests.e2e.discord_fixtures import DiscordWorld, WorldFactory, strip_cursor
from tests.fakes.discord import Recorded
from tests.faults.invariants import (
    ANSWERS,
    CHECKED,
    discord_answer,
    fault,
    fault_agent,
    is_hanging,
    wait_discord,
)

discord_world_factory = discord_fixtures.discord_world_factory

DM, OTHER, LOCKED = "5000", "3001", "3000"
EDIT_IN_DM = r"/channels/5000/messages/\d+"
UNAVAILABLE = {"message": "503: Service Unavailable", "code": 0}
RATE_LIMITED = {"message": "You are being rate limited.", "retry_after": 0.1, "global": False}


@pytest.fixture
async def world(discord_world_factory: WorldFactory) -> AsyncIterator[DiscordWorld]:
    async with discord_world_factory(token_delay_s=0.01) as w:
        w.simulator.agent = fault_agent()
        yield w


async def answer_both(w: DiscordWorld, question: str = "medium question") -> None:
    """The faulted DM and a concurrent mention in another channel both end exact."""
    await w.dm(question)
    await w.mention("second conversation", channel_id=OTHER)
    await wait_discord(w, DM, ANSWERS[question])
    await wait_discord(w, OTHER, ANSWERS["second conversation"])


async def test_a_429_storm_with_via_is_retried_by_discord_py(world: DiscordWorld) -> None:
    w = world
    headers = {"Via": "1.1 google", "Retry-After": "1", "X-RateLimit-Scope": "user"}
    w.fake.inject("PATCH", EDIT_IN_DM, status=429, body=RATE_LIMITED, headers=headers, times=8)
    fault("discord 429 storm with Via")
    await answer_both(w)
    assert w.fake.count_429 >= 8


async def test_a_429_storm_without_via_is_waited_out_by_the_budget(world: DiscordWorld) -> None:
    w = world
    headers = {"Retry-After": "0.2"}  # no Via: discord.py raises, our writer maps it
    w.fake.inject("PATCH", EDIT_IN_DM, status=429, body=RATE_LIMITED, headers=headers, times=8)
    fault("discord 429 storm without Via")
    await answer_both(w)
    assert w.fake.count_429 >= 6  # more than the pacer's final attempts: the guard released it


async def test_a_global_429_holds_every_channel_and_loses_nothing(world: DiscordWorld) -> None:
    w = world
    body = {**RATE_LIMITED, "global": True}
    headers = {"Via": "1.1 google", "X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
    w.fake.inject("*", r"/channels/\d+/messages.*", status=429, body=body, headers=headers, times=3)
    fault("discord global 429")
    await answer_both(w)
    assert w.fake.count_429 >= 3


async def test_a_global_429_on_the_typing_cue_cut_short_by_the_answer_stalls_nothing(
    world: DiscordWorld,
) -> None:
    """discord.py clears its global lock, sleeps ``retry_after``, then sets the lock again; the
    relay stops the typing cue at the turn's first output, which may come during that sleep.
    Cancelling the request there would leave the lock cleared, and every later request of the
    bot, in every channel, waiting on it forever."""
    w = world
    body = {**RATE_LIMITED, "retry_after": 1.0, "global": True}
    headers = {"Via": "1.1 google", "X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
    w.fake.inject("POST", rf"/channels/{DM}/typing", status=429, body=body, headers=headers)
    fault("discord global 429 on the typing cue")
    await answer_both(w)
    assert w.fake.count_429 == 1


async def test_5xx_on_edits_loses_nothing(world: DiscordWorld) -> None:
    w = world
    w.fake.inject("PATCH", EDIT_IN_DM, status=503, body=UNAVAILABLE, times=4)
    fault("discord 503 on edits")
    await answer_both(w)


async def test_a_deleted_placeholder_404_gets_the_rest_posted_anew(world: DiscordWorld) -> None:
    w = world
    await w.dm("medium question")
    await w.mention("second conversation", channel_id=OTHER)
    await w.fake.wait_until(lambda: any(len(m.edits) >= 2 for m in discord_answer(w, DM)))
    doomed = discord_answer(w, DM)[0]
    w.fake.delete_message(doomed.id)  # later PATCHes get 404 / 10008
    fault("discord 404 on edit (placeholder deleted)")
    messages = await wait_discord(w, DM, ANSWERS["medium question"])
    assert doomed.id not in [m.id for m in messages]
    await wait_discord(w, OTHER, ANSWERS["second conversation"])


async def test_a_missing_permission_is_one_log_line_and_no_retry_loop(
    world: DiscordWorld, caplog: pytest.LogCaptureFixture
) -> None:
    w = world
    body = {"code": 50013, "message": "Missing Permissions"}
    w.fake.inject("POST", rf"/channels/{LOCKED}/messages", status=403, body=body, times=1000)
    fault("discord 403 missing permission")
    await w.mention("short question", channel_id=LOCKED)
    await w.mention("medium question", channel_id=LOCKED)
    await w.simulator.wait_for_turns(3)  # launch + two text turns, all read to the end
    await w.mention("second conversation", channel_id=OTHER)
    await wait_discord(w, OTHER, ANSWERS["second conversation"])
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and "lacks the" in r.getMessage()
    ]
    assert len(lines) == 1 and "'Send Messages'" in lines[0] and LOCKED in lines[0], lines
    refused = [r for r in w.fake.requests if r.status == 403]
    assert len(refused) <= 12  # a few tries per answer, not a loop
    assert not any(isinstance(r.exc_info, tuple) for r in caplog.records if r.levelno >= 40)


async def test_a_gateway_drop_mid_stream_resumes_and_loses_nothing(
    world: DiscordWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bots.discord")
    w = world
    await w.dm("medium question")
    await w.fake.wait_until(lambda: any(len(m.edits) >= 1 for m in discord_answer(w, DM)))
    await w.fake.drop_gateway()
    fault("discord gateway disconnect mid-stream")
    await w.fake.wait_until(lambda: w.fake.gateway.resume_count == 1)
    await wait_discord(w, DM, ANSWERS["medium question"])
    await w.mention("second conversation", channel_id=OTHER)  # events flow after the resume
    await wait_discord(w, OTHER, ANSWERS["second conversation"])
    assert not any(is_hanging(m) for m in discord_answer(w, DM))
    said = [r.getMessage() for r in caplog.records if "Discord gateway" in r.getMessage()]
    assert said == [
        "Discord gateway (shard 0) dropped; reconnecting",
        "Discord gateway (shard 0) is back",
    ]


async def test_an_answer_whose_final_edit_landed_before_a_kill_stays_complete(
    world: DiscordWorld,
) -> None:
    # The process died between the final edit and the journal's "closed": the journal still
    # lists the message (put back below), but Discord shows it complete (no Stop button).
    await world.mention("second conversation", channel_id=OTHER)
    expected = ANSWERS["second conversation"]
    done = await world.wait_for_content(OTHER, expected)
    await world.bot.drain()  # the turn closed its journal entry ...
    await StoreJournal(world.bridge.store, "discord", {"channel": OTHER}).opened(done.id)
    fault("kill -9 between a final edit and its journal entry (Discord)")
    edits = len(done.edits)
    await world.restart()
    assert await world.bridge.store.inflight("discord") == []
    assert done.content == expected and len(done.edits) == edits  # not touched
    CHECKED.add(expected)


@pytest.mark.parametrize("status", [500, 503])
async def test_a_placeholder_created_then_answered_5xx_is_shown_once(
    world: DiscordWorld, status: int
) -> None:
    w = world
    # Discord created the message but failed its answer; the same POST is sent again (by
    # discord.py for a 500, by our writer for a 503, which discord.py does not retry).
    w.fake.inject("POST", rf"/channels/{DM}/messages", status=status, commit=True)
    fault(f"discord {status} after creating the placeholder")
    await answer_both(w)
    first, retry, *_ = [r for r in w.message_requests(DM) if r.method == "POST"]
    assert (first.status, retry.status) == (status, 200)
    assert first.json["nonce"] == retry.json["nonce"] and retry.json["enforce_nonce"] is True
    (answer,) = discord_answer(w, DM)  # the nonce made the retry return the same message
    assert answer.content == ANSWERS["medium question"] and answer.nonce == first.json["nonce"]
    assert w.fake.count_429 == 0


async def test_edits_that_keep_failing_post_only_the_unseen_rest(world: DiscordWorld) -> None:
    w = world
    full = ANSWERS["medium question"]
    # The first edit shows some text; every edit after it fails until the rest was posted.
    w.fake.inject("PATCH", EDIT_IN_DM, status=503, body=UNAVAILABLE, after=1, times=10_000)
    fault("discord 503 on every edit after the first")
    await w.dm("medium question")
    await w.mention("second conversation", channel_id=OTHER)
    kept = await _rest_posted_after_an_outage(w, full)
    assert full.startswith(kept) and len(kept) > 0
    await wait_discord(w, OTHER, ANSWERS["second conversation"])


async def test_edits_failing_inside_bold_end_the_message_before_the_marker(
    world: DiscordWorld,
) -> None:
    w = world
    # ~1 s of plain words after the bold: long enough for the pacer to give up editing.
    chunks = ["Intro. **bold words ", "more bold", "** and then "]
    chunks += [f"plain{i} " for i in range(100)] + ["the end."]
    w.simulator.agent = ScriptedAgent(
        launch=[], texts={"bold question": _streamed(chunks)}, requests={}, default=None
    )
    # Voiceflow pauses after the first chunk: the first edit shows "Intro. **bold words**"
    # (the interim view closes the bold), and every later edit fails.
    w.simulator.faults.stall_after_events, w.simulator.faults.stall_s = 4, 0.4  # flow, block,
    w.fake.inject("PATCH", EDIT_IN_DM, status=503, body=UNAVAILABLE, after=1, times=10_000)
    fault("discord 503 on every edit after one that closed an inline marker")
    await w.dm("bold question")
    kept = await _rest_posted_after_an_outage(w, "".join(chunks))
    assert kept == "Intro. "  # not "Intro. **bold words**": that closer is not in the answer


async def _rest_posted_after_an_outage(w: DiscordWorld, full: str) -> str:
    """Once the rest was posted, edits recover; returns what the abandoned placeholder keeps.

    The new messages carry exactly the text the placeholder does not show, nothing is doubled
    and nothing is left with a cursor or a Stop control.
    """
    await w.fake.wait_until(lambda: len(_created(w, DM)) >= 2, 30)
    w.fake.clear_faults()  # Discord recovers: the abandoned message can lose its cursor
    placeholder, *rest = await wait_discord(w, DM, full)
    seen = strip_cursor(next(r for r in _edits(w, DM) if r.status == 200).json["content"])
    posted = [r.json["content"] for r in _created(w, DM)[1:]]
    kept = placeholder.content
    # What it showed, or that cut before an inline marker its interim view had to close.
    assert kept == seen or (seen.startswith(kept) and seen[len(kept) :][:1] in "*_~|`")
    assert "".join(posted) == full[len(kept) :]  # exactly the text it does not show
    assert [m.content for m in rest] == posted
    assert kept + "".join(posted) == full  # once each, in order
    assert sum(r.status == 503 for r in _edits(w, DM)) >= 3  # the pacer gave up editing
    assert not any(m.components for m in [placeholder, *rest])
    assert w.fake.count_429 == 0
    return kept


def _streamed(chunks: list[str]) -> list[dict[str, Any]]:
    """One completion sent as exactly these content chunks."""
    states = [{"state": "start"}, *({"state": "content", "content": c} for c in chunks)]
    return [{"type": "completion", "payload": p} for p in [*states, {"state": "end"}]]


def _created(world: DiscordWorld, channel_id: str) -> list[Recorded]:
    return [r for r in world.message_requests(channel_id) if r.method == "POST" and r.status == 200]


def _edits(world: DiscordWorld, channel_id: str) -> list[Recorded]:
    return [r for r in world.message_requests(channel_id) if r.method == "PATCH"]


async def test_a_refused_image_is_skipped_visibly_and_the_turn_goes_on(world: DiscordWorld) -> None:
    """Discord refuses one whole message (a 400 on an image URL it rejects): a short note takes
    its place, and the answer after it still streams, exact."""
    w = world
    agent = w.simulator.agent
    assert isinstance(agent, ScriptedAgent)
    image = {"type": "visual", "payload": {"visualType": "image", "image": "https://x.test/a.png"}}
    agent.texts["picture please"] = [image, *agent.texts["medium question"]]
    bad_url = {"code": 50035, "message": "Invalid Form Body", "errors": {"embeds": {}}}
    w.fake.inject("POST", rf"/channels/{DM}/messages", status=400, body=bad_url, times=1)
    fault("discord 400 on one whole message")
    await w.dm("picture please")
    shown = await wait_discord(w, DM, REFUSED_NOTE + ANSWERS["medium question"])
    assert shown[0].content == REFUSED_NOTE
    assert w.simulator.disconnects == []  # the Voiceflow request was read to its end
