"""Pacing at Discord's observed bucket (5 per 5 s per channel) with a ~50 tokens/s answer.

These tests run at the real window — a mention, a DM and a thread, then three streams in one
channel — so they take several seconds each; they also print the figures the issue asks for
(run with ``-s``): time from completion start to placeholder, mean visible lag of the streamed
text, edits per answer, 429s.

Times are measured as the bench measures them (bench/replay.py, bench/measure.py): the
simulator's instrumented turn stream records when it wrote each answer's completion ``start``
event and every chunk, keyed by the user's question (unique per user here); the fake stamps
every request on arrival, on the same monotonic clock. A character is visible from the first
create/edit after which the answer's message shows the answer up to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bench.measure import AnswerResult, answer_result, discord_logs
from bench.replay import ReplayAgent, timed_turns
from tests.e2e import discord_fixtures
from tests.e2e.discord_fixtures import (
    DiscordWorld,
    WorldFactory,
    expected_answer,
    fits_the_bucket,
)
from tests.fakes.discord import FakeMessage

discord_world_factory = discord_fixtures.discord_world_factory

LIMIT, WINDOW_S = 5, 5.0
TOKEN_DELAY_S = 0.02  # ~50 tokens (stream events) per second
#: An echo answer of ~1,700 chars (~130 chunks, ~2.7 s): one message, several paced edits.
QUESTION = " ".join(f"word{i} pacing" for i in range(60))
#: CONVERSATION_SCOPE=user: each user's conversation is launched once, in another channel.
OPTIONS = {"conversation_scope": "user"}
WARM_UP_CHANNEL = "3001"
PLACES = {"mention": "3000", "dm": "5000", "thread": "3500"}


@pytest.fixture
def recorder() -> Iterator[ReplayAgent]:
    """Records when the simulator writes each answer's events (its answers stay the default
    agent's: no timeline is replayed, ``recorded`` is filled by question)."""
    agent = ReplayAgent({})
    with timed_turns(agent):
        yield agent


@dataclass
class Figures:
    placeholder_s: float
    answer: AnswerResult

    def line(self, label: str, count_429: int) -> str:
        return (
            f"{label}: placeholder {self.placeholder_s * 1000:.0f} ms after completion start, "
            f"mean visible lag {self.answer.mean_lag_s:.2f} s, "
            f"{self.answer.edits} edits, {count_429} × 429"
        )


def figures(world: DiscordWorld, recorder: ReplayAgent, message: FakeMessage, text: str) -> Figures:
    recorded = recorder.recorded[text]
    log = discord_logs(world.fake.requests, world.fake.messages)[message.id]
    answer = answer_result(text, expected_answer(text), recorded.start, recorded.chunks, log)
    placeholder_at = min(t for t, _, _ in log.events)
    return Figures(placeholder_at - recorded.start, answer)


def assert_paced(world: DiscordWorld, channel_id: str, result: Figures) -> None:
    """Placeholder after the completion start, edits inside the bucket, exact final, no 429."""
    assert 0 < result.placeholder_s < 1.0, "placeholder not posted at completion start"
    assert result.answer.exact, "the final text is not the answer"
    requests = world.message_requests(channel_id)
    for method in ("POST", "PATCH"):
        times = [r.t for r in requests if r.method == method]
        assert fits_the_bucket(times, LIMIT, WINDOW_S), method
    assert world.fake.count_429 == 0


async def warm_up(world: DiscordWorld, authors: list[str]) -> None:
    """Launch each user's conversation in another channel, so the measured place starts with
    fresh buckets and no greeting."""
    for count, author in enumerate(authors, start=1):
        await world.mention("hi", channel_id=WARM_UP_CHANNEL, author_id=author)
        await world.wait_for_content(WARM_UP_CHANNEL, expected_answer("hi"), count=count)


async def ask(world: DiscordWorld, place: str, text: str) -> None:
    if place == "dm":
        await world.dm(text)
    else:
        await world.mention(text, channel_id=PLACES[place])


@pytest.mark.parametrize("place", list(PLACES))
async def test_one_stream_at_five_per_five_seconds(
    discord_world_factory: WorldFactory, recorder: ReplayAgent, place: str
) -> None:
    async with discord_world_factory(
        limit=LIMIT, window_s=WINDOW_S, token_delay_s=TOKEN_DELAY_S, settings_changes=OPTIONS
    ) as w:
        await warm_up(w, ["2000"])
        await ask(w, place, QUESTION)
        channel_id = PLACES[place]
        message = await w.wait_for_content(channel_id, expected_answer(QUESTION), within_s=30)
        result = figures(w, recorder, message, QUESTION)
        print("\n" + result.line(f"1 stream ({place}), 5/5 s", w.fake.count_429))
        assert_paced(w, channel_id, result)
        assert result.answer.edits >= 3


async def test_three_streams_in_one_channel_at_five_per_five_seconds(
    discord_world_factory: WorldFactory, recorder: ReplayAgent
) -> None:
    authors = ["2000", "2001", "2002"]
    questions = {a: f"{a} {QUESTION}" for a in authors}  # unique per user: the record's key
    async with discord_world_factory(
        limit=LIMIT, window_s=WINDOW_S, token_delay_s=TOKEN_DELAY_S, settings_changes=OPTIONS
    ) as w:
        await warm_up(w, authors)
        await asyncio.gather(*(w.mention(q, author_id=a) for a, q in questions.items()))
        messages = await asyncio.gather(
            *(
                w.wait_for_content("3000", expected_answer(q), within_s=60)
                for q in questions.values()
            )
        )
        results = [
            figures(w, recorder, m, questions[a]) for a, m in zip(authors, messages, strict=True)
        ]
        print()
        for author, result in zip(authors, results, strict=True):
            print(result.line(f"3 streams in one channel, 5/5 s, user {author}", w.fake.count_429))
        for result in results:
            assert_paced(w, "3000", result)
        assert sum(r.answer.edits for r in results) >= 5  # the whole bucket: 3 finals + interims
