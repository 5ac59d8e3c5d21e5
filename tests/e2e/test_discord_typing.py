"""The typing cue end to end (SPEC §5: "before the first output of a turn, show the platform's
typing cue"): POST /channels/{id}/typing while Voiceflow is silent, none once the answer shows.

Discord's cue lasts 10 s and the bot refreshes it every 8 s; here the refresh is shortened (a
timing knob of the renderer, like the fake's shrunken buckets) so that a second of silence
before the completion starts shows several refreshes, and a cue left running during the
streamed answer would show many more.
"""

from __future__ import annotations

import pytest

from bots.discord.renderer import DiscordRenderer
from core.paced_message import PLACEHOLDER
from tests.e2e import discord_fixtures
from tests.e2e.discord_fixtures import WorldFactory, expected_answer, strip_cursor

discord_world_factory = discord_fixtures.discord_world_factory

QUESTION = "tell me about typing please"
DM = "5000"
TYPING_ROUTE = "POST /channels/{id}/typing"
REFRESH_S = 0.1
#: Voiceflow says nothing between the turn's first traces (flow, block) and completion start.
SILENCE_S = 0.6
#: events[2] is the completion start: flow and block come first (the simulator's noise).
EVENTS_BEFORE_START = 2


async def test_typing_shows_until_the_first_output_and_never_after(
    discord_world_factory: WorldFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DiscordRenderer, "typing_refresh_s", REFRESH_S)
    async with discord_world_factory(token_delay_s=0.03) as w:
        await w.dm("hi")  # launch and greeting first: the measured turn is the question alone
        await w.wait_for_content(DM, expected_answer("hi"))
        w.simulator.faults.stall_after_events = EVENTS_BEFORE_START
        w.simulator.faults.stall_s = SILENCE_S
        seen = len(w.fake.requests)
        await w.dm(QUESTION)
        final = await w.wait_for_content(DM, expected_answer(QUESTION))
        await w.wait_settled(DM, turns=3)
        typing = [
            r.t
            for r in w.fake.requests[seen:]
            if r.route == TYPING_ROUTE and r.path == f"/channels/{DM}/typing"
        ]
        create, *edits = w.requests_for(final.id)
        first_text = next(
            e.t for e in edits if strip_cursor(e.json["content"]) not in ("", PLACEHOLDER)
        )
        assert create.json["content"] == PLACEHOLDER  # the answer's first output
        assert typing and typing[0] < create.t, "no typing cue before the first output"
        assert len(typing) >= 3, "the cue was not refreshed while Voiceflow was silent"
        assert all(t < create.t for t in typing), "typing went on after the first output"
        assert create.t < first_text < edits[-1].t  # the answer streamed for a while after
        assert edits[-1].t - first_text > 5 * REFRESH_S  # long enough for a stray cue to show
        assert w.fake.count_429 == 0
