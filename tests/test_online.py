"""bench/online.py: the reference online pacer keeps to the buckets it plays and to our policy."""

from __future__ import annotations

import itertools
import random

import pytest

from bench.lower_bound import Arrivals, Stream, max_writes_fixed, shared_bound
from bench.online import Bucket, RefStream, reference_pacer
from core.budget import FINAL_AGING_S
from tests.fakes.discord_limits import FixedWindow
from tests.fakes.slack_model import SlidingWindow
from tests.test_lower_bound import random_arrivals


def shifted(arrivals: Arrivals, by: float) -> Arrivals:
    return Arrivals(arrivals.start + by, tuple(t + by for t in arrivals.times), arrivals.chars)


def steady(start: float, seconds: float, *, every: float = 0.05) -> Arrivals:
    times = tuple(start + every * (i + 1) for i in range(round(seconds / every)))
    return Arrivals(start, times, tuple(3 for _ in times))


@pytest.mark.parametrize("seed", range(6))
def test_streams_sharing_a_fixed_bucket_never_overfill_it(seed: int) -> None:
    rng = random.Random(seed)
    arrivals = [
        shifted(random_arrivals(rng, chunks=50, span=9.0, step=0.05), rng.uniform(0, 2))
        for _ in range(rng.randint(2, 5))
    ]
    channel, global_ = Bucket(5, 5.0), Bucket(50, 1.0)
    streams = [RefStream(a, interim=(channel, global_), final=(channel, global_)) for a in arrivals]
    mean = reference_pacer(streams)
    window = FixedWindow(5, 5.0)  # the fake Discord's own bucket
    assert all(window.take(t) for t in sorted(w for s in streams for w in s.writes))
    assert all(s.writes[-1] >= s.arrivals.last for s in streams)
    bound = shared_bound(
        [Stream(a) for a in arrivals],
        shared_cap=lambda span: max_writes_fixed(span, 5, 5.0),
        horizons=[max(a.last for a in arrivals) + step for step in (0.0, 1.0, 5.0)],
    )
    assert mean >= bound.mean_lag_s


def test_a_sliding_burst_bucket_spends_fast_when_quiet_and_never_overfills() -> None:
    append = Bucket(20, 60.0, fixed=False, burst_s=3.0)
    stop = Bucket(10, 60.0, fixed=False, reserve=0)
    streams = [
        RefStream(steady(0.3 * i, 12.0), interim=(append,), final=(stop,), min_gap_s=0.1)
        for i in range(3)
    ]
    reference_pacer(streams)
    appends = sorted(w for s in streams for w in s.writes[:-1])
    window = SlidingWindow(20, 60.0)  # the fake Slack's own tier
    assert all(window.acquire(t) is None for t in appends)
    assert len(appends) == 19  # the minute's budget but the kept slot, within 12 s
    assert appends[-1] < 12.0
    assert appends[1] - appends[0] == pytest.approx(3.0 / 18)  # burst_s over the free slots
    gaps = [b - a for a, b in itertools.pairwise(appends)]
    assert gaps == sorted(gaps)  # the pace falls as the window fills
    for s in streams:
        assert s.writes[-1] == pytest.approx(s.arrivals.last)  # the final at once
        assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(s.writes))


@pytest.mark.parametrize(("answers", "held_back"), [(4, False), (5, True)])
def test_interims_give_way_while_the_open_answers_outnumber_two_windows(
    answers: int, held_back: bool
) -> None:
    bucket = Bucket(2, 1.0)  # two windows' worth: 4 answers
    streams = [
        RefStream(steady(0.0, 3.0 + i), interim=(bucket,), final=(bucket,)) for i in range(answers)
    ]
    reference_pacer(streams)
    first_end = min(s.arrivals.last for s in streams)
    early = [w for s in streams for w in s.writes if w < first_end]
    assert (not early) is held_back


def test_an_unspaced_first_write_starts_every_answer_at_once() -> None:
    start, append, stop = (Bucket(10, 60.0, fixed=False, reserve=0) for _ in range(3))
    streams = [
        RefStream(
            steady(0.0, 8.0),
            interim=(append,),
            final=(stop,),
            first=(start,),
            first_unspaced=unspaced,
        )
        for unspaced in (True, True, True, False)
    ]
    reference_pacer(streams)
    firsts = [s.writes[0] for s in streams]
    assert firsts[:3] == [pytest.approx(0.05)] * 3  # on their first text, no spacing
    assert firsts[3] == pytest.approx(0.05 + 60.0 / 10)  # spaced like any interim write


def test_queued_finals_go_heaviest_first_and_overdue_ones_before_them() -> None:
    one = Bucket(1, 1.0, reserve=0)  # one write a second for everyone

    def answer(ends: float, chars: int) -> RefStream:
        return RefStream(Arrivals(0.0, (ends,), (chars,)), interim=(one,), final=(one,))

    blocker = answer(0.0, 1)  # takes the window that opens at 0
    small, big, mid = answer(0.1, 5), answer(0.2, 900), answer(0.3, 100)
    reference_pacer([blocker, small, big, mid])
    assert [big.writes, mid.writes, small.writes] == [[1.0], [2.0], [3.0]]

    one = Bucket(1, 1.0, reserve=0)
    blocker, old = answer(0.0, 1), answer(0.05, 5)
    early = [answer(0.1 * (i + 1), 900) for i in range(5)]
    later = answer(1.5, 900)
    reference_pacer([blocker, old, *early, later])
    assert [s.writes[0] for s in early] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert 6.0 - 0.05 >= FINAL_AGING_S > 6.0 - 1.5
    assert old.writes == [6.0]  # overdue: before the heavier answer that waited less
    assert later.writes == [7.0]
