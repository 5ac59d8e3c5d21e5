"""FixedWindowBudget: whole windows, bounded on both sides, never over the platform's count."""

from __future__ import annotations

import asyncio
import heapq
import random

import pytest

from core.fixed_window import PROBE_HOLD_S, STRADDLE_S, FixedWindowBudget
from tests.fakes.discord_limits import FixedWindow


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _take(budget: FixedWindowBudget, n: int) -> list[float]:
    """``n`` slots that the budget grants at once (asserted: nothing waits here)."""
    slots = []
    for _ in range(n):
        assert budget.delay(final=True) == 0.0
        slots.append(await budget.acquire(final=True))
    return slots


async def _open_a_window(budget: FixedWindowBudget, clock: Clock) -> None:
    """One request at 100.0, answered at 100.01: the window closes at 101.01."""
    (first,) = await _take(budget, 1)
    clock.now = 100.01
    budget.settle(first)


async def test_a_full_window_turns_over_whole_one_window_after_its_first_completion() -> None:
    clock = Clock()
    budget = FixedWindowBudget(3, 1.0, clock=clock)
    slots = await _take(budget, 3)
    assert budget.delay(final=True) > 1.0  # full, and nothing completed: the end is unknown
    clock.now = 100.05
    budget.settle(slots[1])  # Discord counted every one of them by now
    assert budget.delay(final=True) == pytest.approx(1.0)
    clock.now = 100.3
    budget.settle(slots[0])
    budget.settle(slots[2])
    assert budget.delay(final=True) == pytest.approx(0.75)  # a sliding window would free
    clock.now = 101.05  # one slot at 101.05 and two at 101.3; the fixed window frees all
    await _take(budget, 3)
    assert budget.delay(final=True) > 0.0


async def test_a_response_seen_before_the_settle_closes_the_window_sooner() -> None:
    clock = Clock()
    budget = FixedWindowBudget(2, 1.0, clock=clock)
    slots = await _take(budget, 2)
    clock.now = 100.02
    budget.saw_response()  # every request in flight is this window's own
    clock.now = 100.2
    budget.settle(slots[0])
    assert budget.delay(final=True) == pytest.approx(0.82)


async def test_a_late_grant_that_reaches_discord_in_its_next_window_does_not_overfill_it() -> None:
    clock = Clock()
    budget = FixedWindowBudget(3, 1.0, clock=clock)
    platform = FixedWindow(3, 1.0)  # the fake Discord's window, fed the arrival times
    await _open_a_window(budget, clock)
    assert platform.take(100.0)
    clock.now = 100.9
    (late,) = await _take(budget, 1)  # a slow send: reaches Discord at 101.004, its window 2
    assert platform.take(101.004)
    clock.now = 101.005
    budget.settle(late)  # done before our window closes, but after Discord's may have ended
    clock.now = 101.01
    await _take(budget, 2)  # Discord counts these in its window 2 as well
    assert budget.delay(final=True) > 0.0  # a third would be the fourth there
    assert platform.take(101.01) and platform.take(101.01)
    assert not platform.take(101.01)


async def test_a_late_grant_that_completes_inside_the_window_is_not_carried() -> None:
    clock = Clock()
    budget = FixedWindowBudget(3, 1.0, clock=clock)
    await _open_a_window(budget, clock)
    clock.now = 101.0 - STRADDLE_S / 2
    (late,) = await _take(budget, 1)
    clock.now = 100.9
    budget.settle(late)  # answered before the window could have ended: counted in it
    clock.now = 101.02
    await _take(budget, 3)


async def test_a_request_in_flight_when_the_window_closes_counts_in_the_next() -> None:
    clock = Clock()
    budget = FixedWindowBudget(2, 1.0, clock=clock)
    fast, slow = await _take(budget, 2)
    clock.now = 100.01
    budget.settle(fast)
    clock.now = 101.02
    await _take(budget, 1)  # the slow one still counts: one more fits, not two
    assert budget.delay(final=True) > 0.0
    budget.refund(slow)  # it never reached Discord after all
    assert budget.delay(final=True) == 0.0


async def _standing_queue(
    budget: FixedWindowBudget, clock: Clock, waiters: int = 12
) -> list[asyncio.Task[float]]:
    """A full window of 10 answered at 100.01 and ``waiters`` queued behind it; at 101.01 it
    closes."""
    slots = await _take(budget, 10)
    clock.now = 100.01
    for slot in slots:
        budget.settle(slot)
    tasks = []
    for _ in range(waiters):
        tasks.append(asyncio.create_task(budget.acquire(final=True)))
        await asyncio.sleep(0)
    assert _granted(tasks) == 0
    clock.now = 101.01
    await _look_again(budget)
    return tasks


async def _look_again(budget: FixedWindowBudget) -> None:
    budget.expect(0)  # dispatches, as the budget's own timer would
    await asyncio.sleep(0)


def _granted(tasks: list[asyncio.Task[float]]) -> int:
    return sum(task.done() for task in tasks)


async def test_under_a_standing_queue_a_fresh_windows_first_grant_goes_alone() -> None:
    """Its answer dates the window: the rest go then, and the window closes a window later."""
    clock = Clock()
    budget = FixedWindowBudget(10, 1.0, clock=clock)
    tasks = await _standing_queue(budget, clock)
    assert _granted(tasks) == 1  # the probe; eleven wait for its answer
    clock.now = 101.014
    budget.saw_response()
    await asyncio.sleep(0)
    assert _granted(tasks) == 10  # the window is full
    clock.now = 101.05
    for task in tasks:
        if task.done():
            budget.settle(task.result())
    clock.now = 102.0139
    await _look_again(budget)
    assert _granted(tasks) == 10
    clock.now = 102.0141
    await _look_again(budget)
    assert _granted(tasks) == 12  # it turned over one window after the probe's answer


async def test_a_probe_that_is_not_answered_holds_the_queue_no_longer_than_its_hold() -> None:
    clock = Clock()
    budget = FixedWindowBudget(10, 1.0, clock=clock)
    tasks = await _standing_queue(budget, clock)
    clock.now = 101.01 + PROBE_HOLD_S / 2
    await _look_again(budget)
    assert _granted(tasks) == 1
    clock.now = 101.01 + PROBE_HOLD_S
    await _look_again(budget)
    assert _granted(tasks) == 10  # the window's end stays unknown until one is answered
    assert budget.delay(final=True) > 1.0


async def test_a_short_queue_does_not_wait_for_a_probe() -> None:
    clock = Clock()
    budget = FixedWindowBudget(10, 1.0, clock=clock)
    tasks = await _standing_queue(budget, clock, waiters=5)
    assert _granted(tasks) == 5  # the window will not fill: its end matters little


async def test_a_refund_frees_its_slot_in_the_current_window() -> None:
    clock = Clock()
    budget = FixedWindowBudget(2, 1.0, clock=clock)
    slots = await _take(budget, 2)
    assert budget.delay(final=True) > 0.0
    budget.refund(slots[0])
    assert budget.spent == 1
    await _take(budget, 1)


@pytest.mark.parametrize("seed", range(6))
async def test_no_request_ever_lands_over_the_platforms_fixed_window(seed: int) -> None:
    """Simulated time: bursts, lulls, a standing queue, then a steady trickle above and below
    the limit (grants all through each window); each request reaches the platform
    up to STRADDLE_S after its grant and completes up to 0.12 s later; some are refunded, some
    answered only long after. The platform's own window (the fake's) must never refuse one,
    and under a standing queue whole windows must turn over (about ``limit`` per window)."""
    rng = random.Random(seed)
    clock = Clock()
    limit, window_s = 50, 1.0
    budget = FixedWindowBudget(limit, window_s, clock=clock)
    platform = FixedWindow(limit, window_s)
    events: list[tuple[float, int, str, float]] = []  # (time, tie, kind, slot)
    tie = 0
    queued = 0
    granted_in_backlog = 0
    end = 155.0
    while clock.now < end:
        step_to = clock.now + 0.005
        while events and events[0][0] <= step_to:
            at, _, kind, slot = heapq.heappop(events)
            clock.now = at
            if kind == "arrive":
                assert platform.take(at), f"429 at {at:.3f} (seed {seed})"
            else:
                if rng.random() < 0.7:
                    budget.saw_response()
                budget.settle(slot)
        clock.now = step_to
        backlog = 110.0 <= clock.now < 125.0  # a standing queue: 15 s of more than it takes
        if backlog:
            queued += 120
        elif clock.now >= 125.0:  # a trickle at 60 or 45 per second: grants all through
            queued += rng.random() < (0.3 if clock.now < 140.0 else 0.225)  # each window
        elif rng.random() < 0.05:
            queued += rng.choice([1, 1, 2, 5, 30, 60])
        while queued and budget.delay(final=True) == 0.0:
            slot = await budget.acquire(final=True)
            queued -= 1
            if rng.random() < 0.03:
                budget.refund(slot)  # failed before it was sent
                continue
            if 111.0 <= clock.now < 124.0:
                granted_in_backlog += 1
            arrive = clock.now + rng.uniform(0.0, STRADDLE_S * 0.95)
            slow = rng.random() < 0.02
            done = arrive + (rng.uniform(0.3, 2.5) if slow else rng.uniform(0.002, 0.12))
            tie += 1
            heapq.heappush(events, (arrive, tie, "arrive", slot))
            heapq.heappush(events, (done, tie, "done", slot))
        if 125.0 <= clock.now < 125.01:
            queued = 0  # the standing queue is gone
    # 13 s of standing queue: whole windows of 50, each 1 s + the first response (≤ 0.37 s).
    assert granted_in_backlog >= 13 * limit / (window_s + 0.37)


async def test_after_a_refusal_it_counts_a_sliding_window() -> None:
    clock = Clock()
    budget = FixedWindowBudget(2, 1.0, clock=clock)
    await _open_a_window(budget, clock)
    clock.now = 100.5
    (second,) = await _take(budget, 1)
    clock.now = 100.51
    budget.settle(second)
    budget.distrust(1.05)  # Discord answered a global 429 all the same
    clock.now = 101.1  # the fixed window ended at 101.01; sliding, one slot is free again
    await _take(budget, 1)
    assert budget.delay(final=True) == pytest.approx(100.51 + 1.05 - 101.1)
