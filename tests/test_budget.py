"""RateBudget: the sliding window, the final reserve, spacing, learning and blocking."""

from __future__ import annotations

import asyncio

import pytest

from core.budget import RateBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_interim_writes_keep_a_slot_for_the_final() -> None:
    clock = Clock()
    budget = RateBudget(5, 5.0, reserve=1, clock=clock)
    for _ in range(4):
        assert budget.delay(final=False) == 0.0
        budget._sent.append(clock.now)
        clock.now += 1.0
    assert budget.delay(final=False) > 0
    assert budget.delay(final=True) == 0.0


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
    assert budget.delay(final=False) == pytest.approx(2.0)
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
    await budget.acquire(final=True)
    second = await budget.acquire(final=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    third = await budget.acquire(final=True)
    assert loop.time() - started >= 0.15
    budget.refund(third)
    assert budget.spent == 2 and third not in budget._sent
    budget.refund(second)  # expired from the window already: nothing to give back
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
    await budget.acquire(final=True)
    await budget.acquire(final=True)
    served: list[str] = []

    async def take(name: str, final: bool) -> None:
        await budget.acquire(final=final)
        served.append(name)

    tasks = [asyncio.create_task(take("interim-a", False))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(take("interim-b", False)))
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(take("final", True)))
    await asyncio.gather(*tasks)
    assert served == ["final", "interim-a", "interim-b"]
    assert not budget.has_capacity(final=False)
