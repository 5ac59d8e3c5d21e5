"""The bench scenarios: who asks what, where, with which strategies, and each one's bound."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.harness import AnswerSpec, Job, JobResult
from bench.lower_bound import (
    Arrivals,
    Bound,
    SharedLimit,
    Stream,
    fixed_window_bound,
    max_writes_fixed,
    max_writes_sliding,
    minute_tier_bound,
    shared_bound,
    time_indexed_bound,
)
from bench.measure import AnswerResult
from bench.online import Bucket, RefStream, reference_pacer
from bench.streams import make_timeline
from bots.discord.ratelimits import GLOBAL_LIMIT, GLOBAL_WINDOW_S
from bots.discord.writer import DISCORD_MAX_CHARS
from bots.slack import budgets as slack_budgets
from bots.slack.native_stream import FLUSH_INTERVAL_S
from bots.slack.writer import SLACK_UPDATE_MAX_CHARS
from core.markdown import split_text
from core.paced_message import split_limit

__all__ = ["REPEAT_RUNS", "SCENARIOS", "Scenario", "row_bound", "row_reference"]

DISCORD_LIMIT, DISCORD_WINDOW_S, DISCORD_GLOBAL_PER_S = 5, 5.0, 50
SLACK_MINUTE_S = 60.0
SLACK_UPDATES, SLACK_APPENDS, SLACK_START_STOPS = 50, 100, 20
DISCORD_FAKE = {"limit": DISCORD_LIMIT, "window_s": DISCORD_WINDOW_S}
DISCORD_STRATEGIES = (
    "ours",
    "wait-for-end",
    "llmcord 1 s global",
    "OpenClaw 1.2 s",
    "every 20 deltas",
)
SLACK_STRATEGIES = ("ours", "ours (post + update)", *DISCORD_STRATEGIES[1:])
REPEAT_RUNS = 2
HORIZON_STEPS_S = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0)


@dataclass(frozen=True)
class Scenario:
    name: str
    platform: str
    answers: tuple[AnswerSpec, ...]
    strategies: tuple[str, ...]
    bound: str  # "discord-exact", "discord-shared", "slack", "discord-global"
    fake_options: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 240.0
    chart: bool = False
    #: Strategies measured REPEAT_RUNS times and pooled: where their gap is within one run's
    #: noise (the bot's CPU spreads 500 starts differently every run).
    repeated: tuple[str, ...] = ()

    def jobs(self) -> list[Job]:
        return [
            Job(
                self.name,
                self.platform,
                s,
                self.answers,
                self.fake_options,
                self.timeout_s,
            )
            for s in self.strategies
            for _ in range(REPEAT_RUNS if s in self.repeated else 1)
        ]


def _spread(
    n: int,
    *,
    seed: int,
    chars: tuple[int, int],
    channels: list[str],
    start_s: float,
    first_author: int,
) -> tuple[AnswerSpec, ...]:
    rng = random.Random(seed)
    return tuple(
        AnswerSpec(
            key=f"{seed}-{i}",
            seed=seed * 10_000 + i,
            chars=rng.randint(*chars),
            channel=channels[i % len(channels)],
            author=str(first_author + i),
            at_s=rng.uniform(0.0, start_s),
        )
        for i in range(n)
    )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "1 stream · Discord",
        "discord",
        (AnswerSpec("d1", 11, 1_800, "3000", "2000"),),
        DISCORD_STRATEGIES,
        "discord-exact",
        DISCORD_FAKE,
        chart=True,
    ),
    Scenario(
        "3 concurrent · 1 Discord channel",
        "discord",
        (
            AnswerSpec("d3a", 21, 1_200, "3000", "2001", 0.0),
            AnswerSpec("d3b", 22, 2_600, "3000", "2002", 0.4),
            AnswerSpec("d3c", 23, 4_200, "3000", "2003", 0.9),
        ),
        DISCORD_STRATEGIES,
        "discord-shared",
        DISCORD_FAKE,
    ),
    Scenario(
        "1 stream · Slack",
        "slack",
        (AnswerSpec("s1", 31, 3_000, "C0001", "UHUMAN"),),
        SLACK_STRATEGIES,
        "slack",
    ),
    Scenario(
        "5 concurrent · 1 Slack workspace",
        "slack",
        tuple(
            AnswerSpec(f"s5{c}", 40 + i, n, f"C000{i + 1}", "UHUMAN", 0.25 * i)
            for i, (c, n) in enumerate(zip("abcde", (600, 1_500, 3_000, 4_500, 6_000), strict=True))
        ),
        SLACK_STRATEGIES,
        "slack",
    ),
    Scenario(
        "50 concurrent · 10 Discord channels",
        "discord",
        _spread(
            50,
            seed=5,
            chars=(300, 2_000),
            channels=[str(6000 + c) for c in range(10)],
            start_s=4.0,
            first_author=30_000,
        ),
        DISCORD_STRATEGIES,
        "discord-shared",
        DISCORD_FAKE,
    ),
    Scenario(
        "500 concurrent · 1 process (Discord DMs)",
        "discord",
        _spread(
            500,
            seed=6,
            chars=(300, 500),
            channels=[str(7000 + c) for c in range(500)],
            start_s=3.0,
            first_author=40_000,
        ),
        DISCORD_STRATEGIES,
        "discord-global",
        DISCORD_FAKE,
        timeout_s=120.0,
        repeated=("ours", "wait-for-end"),
    ),
)


# -- bounds ---------------------------------------------------------------------------------


def arrivals_of(answer: AnswerResult) -> Arrivals:
    return Arrivals(
        answer.start,
        tuple(t for t, _ in answer.arrivals),
        tuple(n for _, n in answer.arrivals),
    )


def _parts(answer: AnswerResult, seed: int, max_chars: int) -> int:
    text = make_timeline(seed, answer.chars, key=answer.key).text
    return len(split_text(text, split_limit(max_chars)))


def _horizons(arrivals: list[Arrivals]) -> list[float]:
    last = max(a.last for a in arrivals)
    return [last + step for step in HORIZON_STEPS_S]


def _fixed(limit: int, window_s: float) -> Callable[[float], int]:
    return lambda span: max_writes_fixed(span, limit, window_s)


def row_bound(scenario: Scenario, result: JobResult) -> Bound:
    """The lower bound for this row's own arrival timelines (see bench/lower_bound.py)."""
    seeds = {a.key: a.seed for a in scenario.answers}
    answers = result.answers
    if scenario.bound == "discord-exact":
        (answer,) = answers
        assert _parts(answer, seeds[answer.key], DISCORD_MAX_CHARS) == 1
        return fixed_window_bound(
            arrivals_of(answer), limit=DISCORD_LIMIT, window_s=DISCORD_WINDOW_S
        )
    if scenario.bound == "slack":
        return _slack_bound(answers, seeds, native=result.strategy == "ours")
    channel_of = {a.key: a.channel for a in scenario.answers}
    if scenario.bound == "discord-global":
        return _discord_global_bound(answers, seeds, channel_of)
    return _discord_channels_bound(answers, seeds, channel_of)


def _best(*bounds: Bound) -> Bound:
    """The highest of several valid lower bounds."""
    return max(bounds, key=lambda b: b.mean_lag_s)


def _discord_streams(answers: list[AnswerResult], seeds: dict[str, int]) -> list[Stream]:
    """Edits draw on the buckets; continuation posts (another bucket) are free."""
    return [
        Stream(arrivals_of(a), free_writes=_parts(a, seeds[a.key], DISCORD_MAX_CHARS) - 1)
        for a in answers
    ]


def bound_of_job(job: tuple[Scenario, JobResult]) -> Bound | None:
    """:func:`row_bound` for a pool worker: None for a run that failed."""
    scenario, result = job
    return row_bound(scenario, result) if result.error is None else None


def _discord_channels_bound(
    answers: list[AnswerResult], seeds: dict[str, int], channel_of: dict[str, str]
) -> Bound:
    """Answers sharing channels' 5/5 s edit buckets (and the bot's global 50/s).

    The better of two relaxations: per channel, how many edits each horizon allows
    (knapsack); and all channels and the global limit at once, priced over time."""
    streams = _discord_streams(answers, seeds)
    channels: dict[str, list[int]] = {}
    for i, answer in enumerate(answers):
        channels.setdefault(channel_of[answer.key], []).append(i)
    total, chars, method = 0.0, 0, ""
    for members in channels.values():
        group = [streams[i] for i in members]
        bound = shared_bound(
            group,
            shared_cap=_fixed(DISCORD_LIMIT, DISCORD_WINDOW_S),
            horizons=_horizons([s.arrivals for s in group]),
        )
        group_chars = sum(s.arrivals.total for s in group)
        total += bound.mean_lag_s * group_chars
        chars += group_chars
        method = bound.method + " per channel"
    limits = [
        SharedLimit(DISCORD_GLOBAL_PER_S, 1.0, tuple(range(len(streams)))),
        *(SharedLimit(DISCORD_LIMIT, DISCORD_WINDOW_S, tuple(m)) for m in channels.values()),
    ]
    timed = time_indexed_bound(streams, limits)
    best = _best(Bound(total / chars, method), timed)
    return Bound(best.mean_lag_s, best.method + " (edit buckets 5/5 s, continuation posts free)")


def _slack_bound(answers: list[AnswerResult], seeds: dict[str, int], *, native: bool) -> Bound:
    arrivals = [arrivals_of(a) for a in answers]
    span = max(a.last for a in arrivals) - min(a.start for a in arrivals)
    if native and span < SLACK_MINUTE_S and 2 * len(arrivals) <= SLACK_START_STOPS:
        bound = minute_tier_bound(arrivals, shared=SLACK_APPENDS + len(arrivals))
        how = "native: appendStream 100/min shared, one startStream and one stopStream per answer"
        return Bound(bound.mean_lag_s, f"{bound.method}; {how} (the row spans under a minute)")
    free = [_parts(a, seeds[a.key], SLACK_UPDATE_MAX_CHARS) - 1 for a in answers]
    if not native and span < SLACK_MINUTE_S:
        bound = minute_tier_bound(arrivals, shared=SLACK_UPDATES, free=free, final_shared=True)
        how = "post + update: chat.update 50/min shared, the final one too"
        return Bound(bound.mean_lag_s, f"{bound.method}; {how} (the row spans under a minute)")
    if native:
        streams = [Stream(a) for a in arrivals]

        def cap(span: float) -> int:
            return max_writes_sliding(span, SLACK_APPENDS, SLACK_MINUTE_S) + max_writes_sliding(
                span, SLACK_START_STOPS, SLACK_MINUTE_S
            )

        how = "native: appendStream 100/min + start/stopStream 20/min shared"
    else:
        streams = [Stream(a, free_writes=f) for a, f in zip(arrivals, free, strict=True)]

        def cap(span: float) -> int:
            return max_writes_sliding(span, SLACK_UPDATES, SLACK_MINUTE_S)

        how = "post + update: chat.update 50/min shared, continuation posts free"
    bound = shared_bound(streams, shared_cap=cap, horizons=_horizons(arrivals))
    return Bound(bound.mean_lag_s, f"{bound.method}; {how}")


def _discord_global_bound(
    answers: list[AnswerResult], seeds: dict[str, int], channel_of: dict[str, str]
) -> Bound:
    """Each answer in its own channel (own 5/5 s edit bucket) + the bot's global 50/s.

    Placeholders are not charged: a strategy may skip them when the global limit is saturated
    (ours does: a placeholder is a cue that waits behind every write that shows text). The
    better of the horizon knapsack and the time-indexed Lagrangian (which knows when the
    writes can happen); both know every bucket."""
    assert len(set(channel_of.values())) == len(answers)
    streams = [
        Stream(s.arrivals, s.free_writes, own_cap=_fixed(DISCORD_LIMIT, DISCORD_WINDOW_S))
        for s in _discord_streams(answers, seeds)
    ]
    knapsack = shared_bound(
        streams,
        shared_cap=_fixed(DISCORD_GLOBAL_PER_S, 1.0),
        horizons=_horizons([s.arrivals for s in streams]),
    )
    global_ = SharedLimit(DISCORD_GLOBAL_PER_S, 1.0, tuple(range(len(streams))))
    own = [SharedLimit(DISCORD_LIMIT, DISCORD_WINDOW_S, (i,)) for i in range(len(streams))]
    timed = time_indexed_bound(streams, [global_, *own])
    best = _best(knapsack, timed)
    return Bound(best.mean_lag_s, best.method + "; own 5/5 s edit bucket + global 50/s")


# -- the reference online pacer (bench/online.py) ---------------------------------------------


def row_reference(scenario: Scenario, result: JobResult) -> float | None:
    """Our policy at zero cost on this row's arrivals (``ours`` rows only), or None."""
    if result.strategy != "ours" or result.error is not None or not result.answers:
        return None
    if scenario.platform == "slack":
        return _slack_reference(result.answers)
    channel_of = {a.key: a.channel for a in scenario.answers}
    global_ = Bucket(GLOBAL_LIMIT, GLOBAL_WINDOW_S)
    channels: dict[str, Bucket] = {}
    streams = []
    for answer in result.answers:
        channel = channels.setdefault(
            channel_of[answer.key], Bucket(DISCORD_LIMIT, DISCORD_WINDOW_S)
        )
        edit = (channel, global_)
        # 500 DMs: the placeholder gives way to demand, the answer's first write is a post.
        first = (global_,) if scenario.bound == "discord-global" else None
        streams.append(RefStream(arrivals_of(answer), interim=edit, final=edit, first=first))
    return reference_pacer(streams)


def _slack_reference(answers: list[AnswerResult]) -> float:
    """Native streaming: startStream shows the first text, appends between, stopStream ends."""
    minute = slack_budgets.MINUTE_S
    start = Bucket(slack_budgets.STARTS_PER_MIN, minute, fixed=False, reserve=0)
    stop = Bucket(slack_budgets.STOPS_PER_MIN, minute, fixed=False, reserve=0)
    append = Bucket(
        slack_budgets.APPENDS_PER_MIN, minute, fixed=False, burst_s=slack_budgets.BURST_S
    )
    streams = [
        RefStream(
            arrivals_of(a),
            interim=(append,),
            final=(stop,),
            first=(start,),
            first_unspaced=True,
            min_gap_s=FLUSH_INTERVAL_S,
        )
        for a in answers
    ]
    return reference_pacer(streams)
