"""Pacing at Discord's observed bucket (5 per 5 s per channel) with a ~50 tokens/s answer.

These tests run at the real window, so they take several seconds each; they also print the
figures the issue asks for (run with ``-s``): time from completion start to placeholder, mean
visible lag of the streamed text, edits per answer, 429s — one stream, then three in one channel.

Visible lag: a reference request for the same action (fresh Voiceflow user, same simulator)
records when each chunk arrives relative to the request; the bot's stream is assumed to receive
chunk *i* at its own request time plus that offset. A chunk is visible at the first
create/edit the fake recorded whose text (cursor stripped) shows the source up to its end.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from core.config import Secret
from core.simulator import SIMULATOR_API_KEY, SIMULATOR_PROJECT_ID, Simulator
from core.traces import Completion
from core.voiceflow import VoiceflowClient
from tests.e2e import discord_fixtures
from tests.e2e.discord_fixtures import (
    DiscordWorld,
    WorldFactory,
    expected_answer,
    fits_the_bucket,
    strip_cursor,
)
from tests.fakes.discord import FakeMessage

discord_world_factory = discord_fixtures.discord_world_factory

LIMIT, WINDOW_S = 5, 5.0
TOKEN_DELAY_S = 0.02  # ~50 tokens (stream events) per second
#: An echo answer of ~1,700 chars (~130 chunks, ~2.7 s): one message, several paced edits.
QUESTION = " ".join(f"word{i} pacing" for i in range(60))


@dataclass
class Figures:
    placeholder_s: float
    mean_lag_s: float
    final_lag_s: float
    edits: int

    def line(self, label: str) -> str:
        return (
            f"{label}: placeholder {self.placeholder_s * 1000:.0f} ms after completion start, "
            f"mean visible lag {self.mean_lag_s:.2f} s, final {self.final_lag_s:.2f} s after "
            f"the last chunk, {self.edits} edits"
        )


async def reference_offsets(
    simulator: Simulator, text: str
) -> tuple[float, list[tuple[float, int]]]:
    """(completion start offset, [(chunk arrival offset, source chars so far)]) for ``text``."""
    client = VoiceflowClient(
        base_url=simulator.url,
        api_key=Secret(SIMULATOR_API_KEY),
        project_id=SIMULATOR_PROJECT_ID,
        environment="production",
    )
    user = f"reference-{len(simulator.requests)}"
    start_s, chunks, total = 0.0, [], 0
    try:
        async for _ in client.interact(user, {"type": "launch"}):
            pass  # a new simulator user must launch first
        began = time.monotonic()
        async for trace in client.interact(user, {"type": "text", "payload": text}):
            if isinstance(trace, Completion) and trace.state == "start":
                start_s = time.monotonic() - began
            elif isinstance(trace, Completion) and trace.state == "content" and trace.content:
                total += len(trace.content)
                chunks.append((time.monotonic() - began, total))
    finally:
        await client.aclose()
    return start_s, chunks


def figures(
    world: DiscordWorld,
    message: FakeMessage,
    text: str,
    reference: tuple[float, list[tuple[float, int]]],
) -> Figures:
    source = expected_answer(text)
    asked = next(
        r.time
        for r in world.simulator.requests
        if r.json
        and r.json.get("action") == {"type": "text", "payload": text}
        and "/reference-" not in r.path
    )
    start_s, chunks = reference
    writes = [(r.t, strip_cursor(r.json["content"])) for r in world.requests_for(message.id)]
    lags = []
    for offset, upto in chunks:
        seen = next(t for t, shown in writes if shown[:upto] == source[:upto])
        lags.append(seen - (asked + offset))
    return Figures(
        placeholder_s=writes[0][0] - (asked + start_s),
        mean_lag_s=statistics.mean(lags),
        final_lag_s=writes[-1][0] - (asked + chunks[-1][0]),
        edits=len(writes) - 1,
    )


def assert_in_bucket(world: DiscordWorld, channel_id: str) -> None:
    requests = world.message_requests(channel_id)
    for method in ("POST", "PATCH"):
        times = [r.t for r in requests if r.method == method]
        assert fits_the_bucket(times, LIMIT, WINDOW_S), method
    assert world.fake.count_429 == 0


async def warm_up(world: DiscordWorld, authors: list[str]) -> None:
    """Launch each user's conversation in another channel (CONVERSATION_SCOPE=user), so the
    measured channel starts with fresh buckets and no greeting."""
    for count, author in enumerate(authors, start=1):
        await world.mention("hi", channel_id="3001", author_id=author)
        await world.wait_for_content("3001", expected_answer("hi"), count=count, within_s=30)


async def test_one_stream_at_five_per_five_seconds(discord_world_factory: WorldFactory) -> None:
    options = {"conversation_scope": "user"}
    async with discord_world_factory(
        limit=LIMIT, window_s=WINDOW_S, token_delay_s=TOKEN_DELAY_S, settings_changes=options
    ) as w:
        await warm_up(w, ["2000"])
        reference = await reference_offsets(w.simulator, QUESTION)
        await w.mention(QUESTION)
        message = await w.wait_for_content("3000", expected_answer(QUESTION), within_s=30)
        result = figures(w, message, QUESTION, reference)
        print("\n" + result.line("1 stream, 5/5 s"))
        assert_in_bucket(w, "3000")
        assert result.edits >= 3


async def test_three_streams_in_one_channel_at_five_per_five_seconds(
    discord_world_factory: WorldFactory,
) -> None:
    authors = ["2000", "2001", "2002"]
    questions = {a: f"{a} {QUESTION}" for a in authors}
    options = {"conversation_scope": "user"}
    async with discord_world_factory(
        limit=LIMIT, window_s=WINDOW_S, token_delay_s=TOKEN_DELAY_S, settings_changes=options
    ) as w:
        await warm_up(w, authors)
        references = {a: await reference_offsets(w.simulator, q) for a, q in questions.items()}
        await asyncio.gather(*(w.mention(q, author_id=a) for a, q in questions.items()))
        messages = await asyncio.gather(
            *(
                w.wait_for_content("3000", expected_answer(q), within_s=60)
                for q in questions.values()
            )
        )
        results = [
            figures(w, m, questions[a], references[a])
            for a, m in zip(authors, messages, strict=True)
        ]
        print()
        for author, result in zip(authors, results, strict=True):
            print(result.line(f"3 streams, 5/5 s, user {author}"))
        assert_in_bucket(w, "3000")
        assert sum(r.edits for r in results) >= 5  # the whole bucket: 3 finals + interims
