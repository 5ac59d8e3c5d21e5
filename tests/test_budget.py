"""RateBudget: the sliding window, the final reserve, spacing, learning and blocking."""

from __future__ import annotations

import asyncio

import pytest

from core.budget import CUE_RECHECK_S, FINAL_AGING_S, RateBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_interim_writes_keep_a_slot_for_the_final() -> None:
    clock = Clock()
    budget = RateBudget(5, 5.0, reserve=1, clock=clock)
    budget._sent.extend([100.0, 100.2, 100.4, 100.6])  # a burst (learned from the headers)
    clock.now = 101.6
    # The fifth slot is kept until the oldest frees within one spacing (at 104), not now.
    assert budget.delay(final=False) == pytest.approx(2.4)
    assert budget.delay(final=True) == 0.0


def test_the_kept_slot_goes_to_an_interim_write_when_the_window_frees_within_a_spacing() -> None:
    clock = Clock()
    budget = RateBudget(5, 5.0, reserve=1, clock=clock)
    budget._sent.extend([100.0, 101.0, 102.0, 103.0])
    clock.now = 104.0  # oldest frees at 105: a final after this write waits at most 1 s
    assert budget.delay(final=False) == 0.0
    budget._sent.append(clock.now)
    assert budget.delay(final=True) == pytest.approx(1.0)
    assert budget.delay(final=False) == pytest.approx(1.0)


async def test_a_parent_budget_caps_every_child() -> None:
    parent = RateBudget(3, 0.3, reserve=0)
    children = [RateBudget(5, 5.0, reserve=0, parent=parent) for _ in range(3)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    slots = [await child.acquire(final=True) for child in children]
    assert loop.time() - started < 0.1
    for child, slot in zip(children, slots, strict=True):
        child.settle(slot)
    fourth = await children[0].acquire(final=True)  # the parent's window is full
    assert loop.time() - started >= 0.25
    assert parent.spent == 4
    children[0].refund(fourth)
    assert parent.spent == 3 and children[0].spent == 1
    assert not parent._pending  # the first three settled (and have expired since)


async def test_cancelled_while_waiting_for_the_parent_spends_nothing() -> None:
    parent = RateBudget(1, 10.0, reserve=0)
    child = RateBudget(5, 5.0, reserve=0, parent=parent)
    await parent.acquire(final=True)
    waiter = asyncio.create_task(child.acquire(final=True))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert child.spent == 0 and parent.spent == 1 and not child._pending


async def test_a_slot_counts_until_its_request_completes() -> None:
    budget = RateBudget(1, 0.1, reserve=0)
    slot = await budget.acquire(final=True)
    await asyncio.sleep(0.2)  # two windows, and the request has still not completed
    assert budget.delay(final=True) > 1.0
    budget.settle(slot)
    assert budget.delay(final=True) == pytest.approx(0.1, abs=0.02)
    async with budget.slot(final=True):  # the context manager settles however it ends
        pass
    assert not budget._pending


def test_interim_writes_are_spaced_evenly() -> None:
    clock = Clock()
    budget = RateBudget(5, 5.0, clock=clock)
    budget._sent.append(clock.now)
    assert budget.delay(final=False) == pytest.approx(1.0)
    clock.now += 0.4
    assert budget.delay(final=False) == pytest.approx(0.6)
    assert budget.delay(final=True) == 0.0


def test_window_frees_slots() -> None:
    clock = Clock()
    budget = RateBudget(2, 1.0, reserve=0, clock=clock)
    budget._sent.extend([clock.now, clock.now])
    assert budget.delay(final=True) == pytest.approx(1.0)
    clock.now += 1.0
    assert budget.delay(final=True) == 0.0


def test_observe_adopts_the_platforms_count() -> None:
    clock = Clock()
    budget = RateBudget(5, 5.0, clock=clock)
    budget.observe(limit=5, remaining=1, reset_after_s=2.0)
    assert budget.delay(final=False) == pytest.approx(1.0)  # the window frees in 2 s
    assert budget.delay(final=True) == 0.0
    budget.observe(limit=10, remaining=10, reset_after_s=5.0)
    assert budget.limit == 10


def test_block_for_holds_everything() -> None:
    clock = Clock()
    budget = RateBudget(5, 5.0, clock=clock)
    budget.block_for(3.0)
    assert budget.delay(final=True) == pytest.approx(3.0)


def test_bad_arguments_fail_at_once() -> None:
    with pytest.raises(ValueError):
        RateBudget(0, 5.0)
    with pytest.raises(ValueError):
        RateBudget(5, 0.0)


async def test_acquire_waits_and_refund_returns_the_slot() -> None:
    budget = RateBudget(2, 0.2, reserve=0)
    budget.settle(await budget.acquire(final=True))
    second = await budget.acquire(final=True)
    budget.settle(second)
    loop = asyncio.get_running_loop()
    started = loop.time()
    third = await budget.acquire(final=True)
    assert loop.time() - started >= 0.15
    budget.refund(third)
    assert budget.spent == 2 and third not in budget._pending
    budget.refund(second)  # settled already: nothing to give back
    assert budget.spent == 2


async def test_cancelled_acquire_spends_nothing() -> None:
    budget = RateBudget(1, 10.0, reserve=0)
    await budget.acquire(final=True)
    waiter = asyncio.create_task(budget.acquire(final=True))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert budget.spent == 1


async def test_waiters_are_served_in_order_with_finals_first() -> None:
    budget = RateBudget(2, 0.3, reserve=0)
    budget.settle(await budget.acquire(final=True))
    budget.settle(await budget.acquire(final=True))
    served: list[str] = []

    async def take(name: str, final: bool) -> None:
        budget.settle(await budget.acquire(final=final))
        served.append(name)

    tasks = [asyncio.create_task(take("interim-a", False))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(take("interim-b", False)))
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(take("final", True)))
    await asyncio.gather(*tasks)
    assert served == ["final", "interim-a", "interim-b"]
    assert not budget.has_capacity(final=False)


async def test_interims_with_most_to_show_go_first_and_cues_go_last() -> None:
    budget = RateBudget(2, 0.3, reserve=0)
    budget.settle(await budget.acquire(final=True))
    budget.settle(await budget.acquire(final=True))
    served: list[str] = []
    unseen = {"small": 3.0, "big": 300.0}

    async def take(name: str, **kind: object) -> None:
        budget.settle(await budget.acquire(**kind))  # type: ignore[arg-type]
        served.append(name)

    tasks = [asyncio.create_task(take("cue", cue=True))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(take("small", weight=lambda: unseen["small"])))
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(take("big", weight=lambda: unseen["big"])))
    await asyncio.sleep(0)
    unseen["small"] = 900.0  # weights are read when a slot frees, not when the wait began
    await asyncio.gather(*tasks)
    assert served == ["small", "big", "cue"]


async def test_the_heaviest_final_goes_first_but_an_overdue_one_before_it() -> None:
    clock = Clock()
    budget = RateBudget(1, 1.0, reserve=0, clock=clock)
    held = await budget.acquire(final=True)  # the only slot, in flight
    served: list[str] = []

    async def take(name: str, weight: float) -> None:
        slot = await budget.acquire(final=True, weight=lambda: weight)
        served.append(name)
        budget.refund(slot)  # hands the slot straight to the next waiter

    tasks = [asyncio.create_task(take("old-small", 10.0))]
    await asyncio.sleep(0)
    clock.now += FINAL_AGING_S  # it has waited long enough to go before heavier ones
    for name, weight in (("small", 20.0), ("big", 400.0), ("medium", 100.0)):
        tasks.append(asyncio.create_task(take(name, weight)))
        await asyncio.sleep(0)
    clock.now += FINAL_AGING_S / 2  # the others have not
    budget.refund(held)
    await asyncio.gather(*tasks)
    assert served == ["old-small", "big", "medium", "small"]


def test_a_burst_budget_spreads_its_free_slots_over_burst_s() -> None:
    clock = Clock()
    budget = RateBudget(100, 60.0, reserve=1, clock=clock, burst_s=15.0)
    budget._sent.append(clock.now)
    # 98 slots free: the next interim write may go 15 / 98 s after the last one ...
    assert budget.delay(final=False) == pytest.approx(15.0 / 98)
    budget._sent.extend([clock.now] * 73)
    # ... and as the minute fills up, the pace falls: 25 free, 0.6 s apart (the steady rate).
    assert budget.delay(final=False) == pytest.approx(0.6)
    assert budget.delay(final=True) == 0.0


async def test_a_new_fixed_window_frees_the_old_windows_slots() -> None:
    clock = Clock()
    budget = RateBudget(5, 5.0, clock=clock)
    for t in (100.0, 101.0, 102.0, 103.0, 104.0):  # one fixed window, opened at 100
        clock.now = t
        budget.settle(await budget.acquire(final=True))
        budget.observe(limit=5, remaining=5 - int(t - 99), reset_after_s=105.0 - t)
    clock.now = 105.1
    # This write opens the next window: Discord says 4 remain for 5 s.
    budget.settle(await budget.acquire(final=True))
    budget.observe(limit=5, remaining=4, reset_after_s=5.0)
    assert budget.delay(final=True) == 0.0  # a sliding window would say: wait until 106
    assert budget.delay(final=False) == pytest.approx(1.0)  # interim spacing still holds
    budget.observe(limit=5, remaining=3, reset_after_s=4.5)  # a later answer, same window
    assert len(budget._sent) == 2  # ... forgets nothing


async def test_an_unsettled_slot_of_the_old_window_keeps_counting() -> None:
    clock = Clock()
    budget = RateBudget(2, 5.0, reserve=0, clock=clock)
    budget.observe(limit=2, remaining=1, reset_after_s=5.0)
    # No response yet: the platform may count it in either window.
    in_flight = await budget.acquire(final=True)
    clock.now = 106.0
    budget.observe(limit=2, remaining=1, reset_after_s=5.0)
    assert in_flight in budget._pending
    budget.settle(await budget.acquire(final=True))
    assert budget.delay(final=True) > 0.0


async def test_cues_wait_while_more_streams_are_open_than_a_window_takes() -> None:
    parent = RateBudget(3, 1.0, reserve=0)
    child = RateBudget(5, 5.0, reserve=0, parent=parent)
    parent.expect(4)  # four open streams each owe a write: a placeholder would delay one
    assert not child.has_capacity(cue=True) and child.has_capacity(final=True)
    cue = asyncio.create_task(child.acquire(cue=True))
    final = await child.acquire(final=True)  # finals are not held back
    await asyncio.sleep(CUE_RECHECK_S * 1.2)  # past a recheck: still held back
    assert not cue.done()
    parent.expect(-1)  # one stream finished: three fit in a window again
    await asyncio.wait_for(cue, 2.0)
    assert child.spent == 2 and parent.spent == 2
    child.settle(final)


async def test_interims_wait_while_the_open_streams_outnumber_two_windows() -> None:
    parent = RateBudget(3, 0.1, reserve=0)  # interims spaced 33 ms apart
    child = RateBudget(100, 1.0, reserve=0, parent=parent)  # and 10 ms
    parent.expect(6)  # two windows' worth: interim writes still go (cues do not)
    first = await asyncio.wait_for(child.acquire(), 1.0)
    parent.expect(1)  # seven: an interim write would push some answer's end back
    interim = asyncio.create_task(child.acquire())
    await asyncio.sleep(CUE_RECHECK_S * 1.2)
    assert not interim.done()
    final = await child.acquire(final=True)  # finals are not held back
    parent.expect(-1)
    await asyncio.wait_for(interim, 2.0)
    for slot in (first, final, interim.result()):
        child.settle(slot)


async def test_slots_that_free_together_go_to_as_many_waiters_in_one_pass() -> None:
    """Under load a slot per event-loop trip would starve the window; one pass grants all."""
    budget = RateBudget(20, 0.1, reserve=0)
    for _ in range(20):
        budget.settle(await budget.acquire(final=True))
    spent_when_granted: list[int] = []
    twenty_granted = asyncio.Event()

    async def write() -> None:
        await budget.acquire(final=True)
        spent_when_granted.append(budget.spent)
        if len(spent_when_granted) == 20:
            twenty_granted.set()

    tasks = [asyncio.create_task(write()) for _ in range(30)]
    await asyncio.wait_for(twenty_granted.wait(), 1.0)
    assert spent_when_granted[:20] == [40] * 20  # the whole freed window, before any ran
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert budget.spent == 40 and not budget._queue  # the cancelled ten spent nothing


async def test_a_budget_is_idle_only_with_nothing_waiting_in_flight_or_recent() -> None:
    clock = Clock()
    budget = RateBudget(5, 5.0, clock=clock)
    slot = await budget.acquire(final=True)
    clock.now += 100.0
    assert not budget.idle_for(10.0)  # a request still in flight
    budget.settle(slot)
    assert not budget.idle_for(10.0)  # it just completed
    clock.now += 10.0
    assert budget.idle_for(10.0)
    budget.expect(1)
    assert not budget.idle_for(10.0)  # a stream still owes a write


async def test_channels_idle_long_enough_are_forgotten_the_busy_ones_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bots.discord import ratelimits

    monkeypatch.setattr(ratelimits, "FORGET_IDLE_S", 0.0)
    budgets = ratelimits.ChannelBudgets()
    busy = budgets.edit("busy")
    slot = await busy.acquire(final=True)  # in flight: must survive every sweep
    for n in range(ratelimits.FORGET_EVERY):
        budgets.post(f"dm{n}")
    assert budgets.edit("busy") is busy
    assert len(budgets._channels) < 10
    busy.settle(slot)
