"""Measurements on the fake (print with ``pytest -s``): first text, lag, calls, 429s.

For one stream and for five streams in one workspace, natively and with post + update:

* first visible: from the Voiceflow text request reaching the simulator to the first Slack
  write that shows answer text;
* mean lag: per streamed chunk, when it became visible minus when the simulator emitted it —
  emission estimated as request time + (k + 1) × token delay, a lower bound, so the lag is
  over- rather than under-stated;
* writes per answer (post/update/delete/start/append/stop), setStatus calls, 429s.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass

import pytest

from tests.e2e import slack_fixtures
from tests.e2e.slack_fixtures import ANSWERS, PLACEHOLDER, SlackWorld, WorldFactory, emitted_chunks
from tests.fakes.slack import Call

slack_world_factory = slack_fixtures.slack_world_factory
slack_no_proxy = slack_fixtures.slack_no_proxy

QUESTION = "two thousand"
TOKEN_DELAY_S = 0.02
CURSOR = " ▌"


@dataclass
class Figures:
    first_visible_s: float
    mean_lag_s: float
    writes: int
    statuses: int


def _shown(call: Call) -> int:
    text = str(call.args.get("markdown_text") or call.args.get("text") or "")
    if text == PLACEHOLDER:
        return 0
    return len(text.removesuffix(CURSOR))


def measure(world: SlackWorld, channel: str, started: float) -> Figures:
    """Visible chars over time in ``channel`` (all its messages), from the recorded calls."""
    shown: dict[str, int] = {}
    timeline: list[tuple[float, int]] = []
    writes = 0
    for call in world.writes():
        if call.args.get("channel") != channel or not call.ok:
            continue
        writes += 1
        ts = str(call.args.get("ts") or call.response.get("ts"))
        if call.method in ("chat.startStream", "chat.appendStream", "chat.stopStream"):
            shown[ts] = shown.get(ts, 0) + len(str(call.args.get("markdown_text") or ""))
        elif call.method in ("chat.postMessage", "chat.update"):
            shown[ts] = _shown(call)
        timeline.append((call.t, sum(shown.values())))
    chunks = emitted_chunks(ANSWERS[QUESTION])
    lags, offset = [], 0
    for k, chunk in enumerate(chunks):
        offset += len(chunk)
        emitted = started + (k + 1) * TOKEN_DELAY_S
        seen = next((t for t, n in timeline if n >= offset), timeline[-1][0])
        lags.append(max(0.0, seen - emitted))
    first = next(t for t, n in timeline if n > 0)
    statuses = sum(
        1
        for c in world.fake.calls_to("assistant.threads.setStatus")
        if c.args.get("channel_id") == channel
    )
    return Figures(first - started, statistics.mean(lags), writes, statuses)


def request_time(world: SlackWorld, channel: str) -> float:
    """When the user's text reached the simulator (its userID names the channel)."""
    return next(
        r.time
        for r in world.simulator.requests
        if r.json and r.json.get("action", {}).get("type") == "text" and f"{channel}:" in r.path
    )


@pytest.mark.parametrize("native", [True, False], ids=["native", "fallback"])
@pytest.mark.parametrize("streams", [1, 5])
async def test_measure(slack_world_factory: WorldFactory, native: bool, streams: int) -> None:
    async with slack_world_factory(native_streaming=native, token_delay_s=TOKEN_DELAY_S) as world:
        channels = [f"C10{i}" for i in range(streams)]
        threads = await asyncio.gather(*(world.mention(QUESTION, channel=c) for c in channels))
        for channel, ts in zip(channels, threads, strict=True):
            await world.wait_answer(channel, ts, ANSWERS[QUESTION], within_s=60)
        figures = [measure(world, c, request_time(world, c)) for c in channels]
        mode = "native" if native else "fallback"
        natives = len([c for c in world.fake.calls_to("chat.startStream") if c.ok])
        print(
            f"\n[slack measure] {mode:8} streams={streams} native_answers={natives} "
            f"first_visible={statistics.mean(f.first_visible_s for f in figures):.3f}s "
            f"(max {max(f.first_visible_s for f in figures):.3f}s) "
            f"mean_lag={statistics.mean(f.mean_lag_s for f in figures):.3f}s "
            f"writes/answer={statistics.mean(f.writes for f in figures):.1f} "
            f"setStatus/answer={statistics.mean(f.statuses for f in figures):.1f} "
            f"429s={world.fake.count_429}"
        )
        assert world.fake.count_429 == 0
        if native:
            assert natives == streams, "a stream fell back although start slots were free"
