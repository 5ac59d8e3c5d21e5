"""Measurements on the fake (print with ``pytest -s``): first text, lag, API calls, 429s.

For one stream and for five streams in one workspace, natively and with post + update. The
simulator replays seeded, realistic completion streams (bench/streams.py) and records when it
wrote each answer's completion ``start`` event and each chunk (bench/replay.py); the figures
come from bench/measure.py over the fake's recorded calls, exactly as the bench computes them:

* first visible: from the completion ``start`` event to the first Slack write that shows
  answer text (and, in brackets, from the first content chunk: the start includes the
  model's time to first token, 0.25–0.6 s in these timelines);
* mean visible lag: per character, when it became visible minus when the simulator wrote it;
* API calls per answer: message writes (post/update/delete/start/append/stop) + setStatus;
* 429s in the whole run.
"""

from __future__ import annotations

import asyncio
import statistics

import pytest

from bench.measure import AnswerResult, answer_result, slack_logs
from bench.replay import PREFIX, ReplayAgent, timed_turns
from bench.streams import make_timeline
from tests.e2e import slack_fixtures
from tests.e2e.slack_fixtures import SlackWorld, WorldFactory

slack_world_factory = slack_fixtures.slack_world_factory
slack_no_proxy = slack_fixtures.slack_no_proxy

#: Long enough for a code block and several paced writes, short enough for a few seconds.
ANSWER_CHARS = 800


def status_calls(world: SlackWorld, channel: str) -> int:
    calls = world.fake.calls_to("assistant.threads.setStatus")
    return sum(1 for c in calls if c.args.get("channel_id") == channel)


def results(
    world: SlackWorld, agent: ReplayAgent, places: dict[str, tuple[str, str]]
) -> list[AnswerResult]:
    logs = slack_logs(world.fake.calls)
    found = []
    for key, place in places.items():
        recorded = agent.recorded[key]
        text = agent.timelines[key].text
        found.append(answer_result(key, text, recorded.start, recorded.chunks, logs[place]))
    return found


@pytest.mark.parametrize("native", [True, False], ids=["native", "fallback"])
@pytest.mark.parametrize("streams", [1, 5])
async def test_measure(slack_world_factory: WorldFactory, native: bool, streams: int) -> None:
    keys = [f"m{i}" for i in range(streams)]
    agent = ReplayAgent({k: make_timeline(i, ANSWER_CHARS, key=k) for i, k in enumerate(keys)})
    with timed_turns(agent):
        async with slack_world_factory(native_streaming=native) as world:
            world.simulator.agent = agent
            channels = {k: f"C10{i}" for i, k in enumerate(keys)}
            threads = await asyncio.gather(
                *(world.mention(PREFIX + k, channel=channels[k]) for k in keys)
            )
            places = dict(zip(keys, zip(channels.values(), threads, strict=True), strict=True))
            for key, (channel, ts) in places.items():
                await world.wait_answer(channel, ts, agent.timelines[key].text, within_s=60)
            answers = results(world, agent, places)
            statuses = [status_calls(world, channels[a.key]) for a in answers]
            natives = len([c for c in world.fake.calls_to("chat.startStream") if c.ok])
            count_429 = world.fake.count_429
    writes = statistics.mean(a.writes for a in answers)
    after_chunk = statistics.mean(a.first_visible_s - (a.arrivals[0][0] - a.start) for a in answers)
    print(
        f"\n[slack measure] {'native' if native else 'fallback':8} streams={streams} "
        f"native_answers={natives} "
        f"first_visible={statistics.mean(a.first_visible_s for a in answers):.3f}s "
        f"(max {max(a.first_visible_s for a in answers):.3f}s; "
        f"{after_chunk:.3f}s after the first chunk) "
        f"mean_lag={statistics.mean(a.mean_lag_s for a in answers):.3f}s "
        f"calls/answer={writes + statistics.mean(statuses):.1f} "
        f"(writes {writes:.1f} + setStatus {statistics.mean(statuses):.1f}) "
        f"429s={count_429}"
    )
    assert all(a.exact for a in answers), "an answer was not shown exactly"
    assert count_429 == 0
    assert natives == (streams if native else 0), "a stream fell back although slots were free"
