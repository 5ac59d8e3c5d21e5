"""bench/lower_bound.py: the DP equals brute force on tiny instances, and bounds are valid."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from bench.lower_bound import (
    Arrivals,
    SharedLimit,
    Stream,
    _GridDP,
    _Priced,
    fixed_window_bound,
    k_write_curve,
    max_writes_fixed,
    minute_tier_bound,
    schedule_cost,
    shared_bound,
    time_indexed_bound,
)
from bench.online import even_pacer, even_pacer_writes
from tests.fakes.discord_limits import FixedWindow


def random_arrivals(rng: random.Random, *, chunks: int, span: float, step: float) -> Arrivals:
    slots = sorted(rng.sample(range(1, round(span / step)), chunks))
    times = tuple(round(s * step + rng.uniform(0, step) * 0.9, 6) for s in slots)
    return Arrivals(0.0, times, tuple(rng.randint(1, 9) for _ in times))


def relaxed_feasible(points: tuple[int, ...], limit: int, steps: int) -> bool:
    """Relaxation R on the grid: some split into windows, each <= limit writes within
    `steps` of its opener, each opener >= `steps` after the previous opener."""

    def fits(i: int, prev_open: int | None) -> bool:
        if i == len(points):
            return True
        opener = points[i]
        if prev_open is not None and opener - prev_open < steps:
            return False
        for size in range(1, limit + 1):
            j = i + size
            if j > len(points) or points[j - 1] - opener > steps:
                break
            if fits(j, opener):
                return True
        return False

    return fits(0, None)


def strictly_feasible(writes: list[float], limit: int, window_s: float) -> bool:
    """The fake Discord's own rule: replay the writes through its FixedWindow."""
    window = FixedWindow(limit, window_s)
    return all(window.take(t) for t in writes)


def brute_grid_optimum(arrivals: Arrivals, *, limit: int, steps: int, grid_s: float) -> float:
    dp = _GridDP(arrivals, limit=limit, steps=steps, grid_s=grid_s)
    best = math.inf
    for size in range(1, dp.size + 1):
        for points in itertools.combinations(range(dp.size), size):
            if relaxed_feasible(points, limit, steps):
                best = min(best, schedule_cost(arrivals, [float(dp.times[p]) for p in points]))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_grid_dp_equals_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    limit, steps, grid_s = rng.choice([1, 2, 3]), rng.choice([2, 3, 4]), 0.1
    arrivals = random_arrivals(rng, chunks=rng.randint(2, 6), span=0.9, step=0.1)
    dp = _GridDP(arrivals, limit=limit, steps=steps, grid_s=grid_s)
    total, schedule = dp.solve()
    assert total == pytest.approx(brute_grid_optimum(arrivals, limit=limit, steps=steps,
                                                     grid_s=grid_s))  # fmt: skip
    assert schedule_cost(arrivals, schedule) == pytest.approx(total)
    points = tuple(round((t - arrivals.start) / grid_s) for t in schedule)
    assert relaxed_feasible(points, limit, steps)


@pytest.mark.parametrize("seed", range(8))
def test_bound_is_below_every_strictly_feasible_schedule(seed: int) -> None:
    """Fine-grid brute force under the fake's strict rule never beats the bound."""
    rng = random.Random(100 + seed)
    limit, window_s, grid_s = 2, 0.3, 0.1
    arrivals = random_arrivals(rng, chunks=rng.randint(3, 6), span=0.9, step=0.1)
    bound = fixed_window_bound(arrivals, limit=limit, window_s=window_s, grid_s=grid_s)
    fine = [round(0.05 * i, 6) for i in range(0, 26)]
    best = math.inf
    for size in range(1, 5):
        for writes in itertools.combinations(fine, size):
            if writes[-1] >= arrivals.last and strictly_feasible(list(writes), limit, window_s):
                best = min(best, schedule_cost(arrivals, writes))
    assert bound.mean_lag_s * arrivals.total <= best + 1e-9


def test_unlimited_bucket_shows_each_chunk_on_arrival() -> None:
    arrivals = Arrivals(0.0, (0.1, 0.2, 0.3), (5, 5, 5))
    bound = fixed_window_bound(arrivals, limit=10, window_s=5.0, grid_s=0.1)
    assert bound.mean_lag_s == 0.0  # grid optimum 0 (arrivals on grid points), minus one step


def test_one_write_per_window_waits_for_the_end() -> None:
    arrivals = Arrivals(0.0, (0.5, 1.0), (10, 10))
    total, schedule = _GridDP(arrivals, limit=1, steps=10, grid_s=0.5).solve()
    # One write at 1.0 shows everything; a second write would have to wait until >= 5.5.
    assert total == pytest.approx(10 * 0.5)
    assert schedule == (1.0,)


def test_k_write_curve_matches_brute_force() -> None:
    rng = random.Random(7)
    arrivals = random_arrivals(rng, chunks=6, span=2.0, step=0.1)
    horizon = arrivals.last
    curve = k_write_curve(arrivals, horizon, 4)
    for k in range(5):
        best = math.inf
        for writes in itertools.combinations(arrivals.times, k):
            best = min(best, schedule_cost(arrivals, [*writes, horizon]))
        assert curve[k] == pytest.approx(best)


def test_shared_bound_is_below_joint_brute_force() -> None:
    """Two streams in one fixed-window bucket: the relaxation never exceeds the true optimum."""
    rng = random.Random(3)
    limit, window_s, step = 2, 0.4, 0.1
    one = random_arrivals(rng, chunks=3, span=0.8, step=step)
    two = random_arrivals(rng, chunks=3, span=0.8, step=step)
    grid = [round(step * i, 6) for i in range(0, 14)]
    best = math.inf
    for w1 in itertools.chain.from_iterable(itertools.combinations(grid, k) for k in (1, 2, 3)):
        if w1[-1] < one.last:
            continue
        for w2 in itertools.chain.from_iterable(itertools.combinations(grid, k) for k in (1, 2, 3)):
            if w2[-1] < two.last:
                continue
            joint = sorted([*w1, *w2])
            if strictly_feasible(joint, limit, window_s):
                best = min(best, schedule_cost(one, w1) + schedule_cost(two, w2))
    horizons = [max(one.last, two.last) + 0.1 * i for i in range(6)]
    bound = shared_bound(
        [Stream(one), Stream(two)],
        shared_cap=lambda span: max_writes_fixed(span, limit, window_s),
        horizons=horizons,
    )
    assert bound.mean_lag_s * (one.total + two.total) <= best + 1e-9
    assert bound.mean_lag_s > 0


@pytest.mark.parametrize("seed", range(8))
def test_the_ideal_even_pacer_is_feasible_and_never_beats_the_bound(seed: int) -> None:
    arrivals = random_arrivals(random.Random(seed), chunks=60, span=9.0, step=0.05)
    writes = even_pacer_writes(arrivals, limit=5, window_s=5.0)
    assert strictly_feasible(writes, 5, 5.0) and writes[-1] >= arrivals.last
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(writes[:-1]))  # even
    bound = fixed_window_bound(arrivals, limit=5, window_s=5.0, grid_s=0.05)
    assert even_pacer(arrivals, limit=5, window_s=5.0) >= bound.mean_lag_s


def test_the_ideal_even_pacer_lags_half_its_spacing_on_a_steady_stream() -> None:
    times = tuple(0.005 + 0.01 * i for i in range(2000))  # 20 s, one char every 10 ms
    arrivals = Arrivals(0.0, times, tuple(1 for _ in times))
    assert even_pacer(arrivals, limit=5, window_s=5.0) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("seed", range(4))
def test_minute_tier_bound_is_the_joint_optimum(seed: int) -> None:
    """Writes limited in number only (a tier's minute): the knapsack equals brute force."""
    rng = random.Random(seed)
    streams = [random_arrivals(rng, chunks=4, span=1.0, step=0.1) for _ in range(2)]
    shared = 3
    best = math.inf
    for k in range(shared + 1):
        for split in range(k + 1):
            parts = (split, k - split)
            for w1 in itertools.combinations(streams[0].times, parts[0]):
                for w2 in itertools.combinations(streams[1].times, parts[1]):
                    total = sum(
                        schedule_cost(a, [*w, a.last])
                        for a, w in zip(streams, (w1, w2), strict=True)
                    )
                    best = min(best, total)
    bound = minute_tier_bound(streams, shared=shared)
    assert bound.mean_lag_s * sum(a.total for a in streams) == pytest.approx(best)


def _subsets(points: list[float], sizes: range) -> itertools.chain[tuple[float, ...]]:
    return itertools.chain.from_iterable(itertools.combinations(points, k) for k in sizes)


@pytest.mark.parametrize("seed", range(4))
def test_time_indexed_bound_is_below_joint_brute_force(seed: int) -> None:
    """Two streams in one fixed-window bucket, the second with one free write (a continuation
    post): no strictly feasible joint schedule on a fine grid beats the bound."""
    rng = random.Random(40 + seed)
    limit, window_s, step = 1, 0.3, 0.1
    one = random_arrivals(rng, chunks=3, span=0.8, step=step)
    two = random_arrivals(rng, chunks=3, span=0.8, step=step)
    grid = [round(step * i, 6) for i in range(0, 14)]
    best = math.inf
    for w1 in _subsets(grid, range(1, 4)):
        if w1[-1] < one.last:
            continue
        for w2 in _subsets(grid, range(1, 4)):
            if w2[-1] < two.last:
                continue
            lag = schedule_cost(one, w1) + schedule_cost(two, w2)
            for free in (None, *w2):  # which of two's writes, if any, is the free one
                paid = sorted([*w1, *(t for t in w2 if t != free)])
                if lag < best and strictly_feasible(paid, limit, window_s):
                    best = lag
    bound = time_indexed_bound(
        [Stream(one), Stream(two, free_writes=1)],
        [SharedLimit(limit, window_s, (0, 1))],
        cell_s=0.1,
        horizon_s=0.6,
        step=1.0,
    )
    assert 0 < bound.mean_lag_s * (one.total + two.total) <= best + 1e-9


@pytest.mark.parametrize("seed", range(3))
def test_time_indexed_bound_knows_each_streams_own_bucket(seed: int) -> None:
    """Two streams, each with a bucket of its own (as a Discord DM has) under a loose shared
    one: the own buckets raise the bound, and it stays below every schedule both accept."""
    rng = random.Random(80 + seed)
    one = random_arrivals(rng, chunks=3, span=0.8, step=0.1)
    two = random_arrivals(rng, chunks=3, span=0.8, step=0.1)
    grid = [round(0.1 * i, 6) for i in range(0, 14)]
    best = math.inf
    for w1 in _subsets(grid, range(1, 4)):
        if w1[-1] < one.last or not strictly_feasible(list(w1), 1, 0.3):
            continue
        for w2 in _subsets(grid, range(1, 4)):
            if w2[-1] < two.last or not strictly_feasible(list(w2), 1, 0.3):
                continue
            if strictly_feasible(sorted([*w1, *w2]), 4, 0.3):
                best = min(best, schedule_cost(one, w1) + schedule_cost(two, w2))
    shared = SharedLimit(4, 0.3, (0, 1))
    own = [SharedLimit(1, 0.3, (0,)), SharedLimit(1, 0.3, (1,))]
    streams = [Stream(one), Stream(two)]
    loose, tight = (
        time_indexed_bound(streams, limits, cell_s=0.1, horizon_s=0.6, step=1.0, iterations=200)
        for limits in ([shared], [shared, *own])
    )
    chars = one.total + two.total
    assert loose.mean_lag_s < tight.mean_lag_s
    assert tight.mean_lag_s * chars <= best + 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_each_streams_priced_schedule_is_exact(seed: int) -> None:
    """With any prices, the DP's value equals brute force over write times on a fine grid
    that contains its candidate points: those points lose nothing."""
    rng = random.Random(60 + seed)
    arrivals = random_arrivals(rng, chunks=4, span=1.0, step=0.1)
    stream = Stream(arrivals, free_writes=seed % 2)
    problem = _Priced([stream], [SharedLimit(2, 0.4, (0,))], cell_s=0.2, horizon_s=0.4)
    multipliers = np.array([rng.uniform(0.0, 3.0) for _ in problem.caps])
    value, _ = problem.solve(multipliers)
    cell_price = np.concatenate([multipliers[: len(problem.rows[0])] @ problem.rows[0], [0.0]])

    def price(t: float) -> float:
        return float(cell_price[min(int(t / 0.2 + 1e-9), problem.cells)])

    fine = sorted({*arrivals.times, *(round(0.05 * i, 6) for i in range(0, 31))})
    best = math.inf
    for writes in _subsets(fine, range(1, 5)):
        if writes[-1] < arrivals.last:
            continue
        prices = sorted(price(t) for t in writes)  # the free write skips the dearest one
        paid = prices[: len(prices) - stream.free_writes] if stream.free_writes else prices
        best = min(best, schedule_cost(arrivals, writes) + sum(paid))
    assert value == pytest.approx(best)


def test_time_indexed_bound_knows_writes_cannot_wait_up() -> None:
    """20 one-chunk answers at t=0, a bucket of 2 writes per second: the best schedule shows
    two answers a second (mean lag 4.5 s). A cap by horizon lets the writes cluster and bounds
    it at 2.0 s; priced over time, the bound comes close to the truth."""
    answers = [Stream(Arrivals(0.0, (0.0,), (10,))) for _ in range(20)]
    knapsack = shared_bound(
        answers,
        shared_cap=lambda span: max_writes_fixed(span, 2, 1.0),
        horizons=[float(h) for h in range(12)],
    )
    timed = time_indexed_bound(answers, [SharedLimit(2, 1.0, tuple(range(20)))], iterations=300)
    assert knapsack.mean_lag_s == pytest.approx(2.0)
    assert 3.5 < timed.mean_lag_s <= 4.5 + 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_post_and_update_bound_is_the_joint_optimum(seed: int) -> None:
    """Every text write is a shared update, the final one too, except one free continuation
    post of the second answer: the knapsack equals brute force over write sets."""
    rng = random.Random(80 + seed)
    one, two = (random_arrivals(rng, chunks=4, span=1.0, step=0.1) for _ in range(2))
    shared = 3
    best = math.inf
    for w1 in _subsets(list(one.times), range(0, 4)):
        for w2 in _subsets(list(two.times), range(0, 4)):
            writes1, writes2 = sorted({*w1, one.last}), sorted({*w2, two.last})
            updates = len(writes1) + max(0, len(writes2) - 1)  # the post is free
            if updates <= shared:
                best = min(best, schedule_cost(one, writes1) + schedule_cost(two, writes2))
    bound = minute_tier_bound([one, two], shared=shared, free=[0, 1], final_shared=True)
    assert bound.mean_lag_s * (one.total + two.total) == pytest.approx(best)
