"""Rate budgets: one per destination, shared by every message that writes there.

A :class:`RateBudget` is a sliding window of ``limit`` requests per ``window_s`` seconds
(Discord: 5 per 5 s per channel, learned from ``X-RateLimit-*``; Slack: ``chat.update`` ~50 per
60 s per workspace). Invariants:

* interim writes may use at most ``limit - reserve`` slots of any window, so a final write
  always finds a free slot within one window — the "slot kept for the final edit";
* interim writes are spaced at least ``window_s / limit`` apart, so a steady stream spends
  the budget evenly instead of bursting it and then going dark for a whole window;
* waiters are served in order — finals first, then interims, each in arrival order — so
  a message that just wrote queues behind the others (round robin between streams);
* time comes from the event loop, so tests may drive it with a fake loop clock.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import time
from collections.abc import Callable

__all__ = ["RateBudget"]


class RateBudget:
    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        reserve: int = 1,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
    ) -> None:
        if limit < 1 or window_s <= 0 or not 0 <= reserve < max(limit, 2):
            raise ValueError("RateBudget needs limit >= 1, window_s > 0, 0 <= reserve < limit")
        self.limit = limit
        self.window_s = window_s
        self.reserve = min(reserve, limit - 1)
        self.name = name
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()
        self._blocked_until = 0.0
        # Waiters in service order: finals first, then interims, each in arrival order.
        self._queue: list[tuple[asyncio.Event, bool]] = []
        self.spent = 0
        self.spent_final = 0

    # -- queries -------------------------------------------------------------------------
    def delay(self, *, final: bool) -> float:
        """Seconds until a write of this kind may go (0 = now). Never blocks."""
        now = self._clock()
        self._expire(now)
        wait = max(0.0, self._blocked_until - now)
        cap = self.limit if final else self.limit - self.reserve
        if len(self._sent) >= cap:
            wait = max(wait, self._sent[len(self._sent) - cap] + self.window_s - now)
        if not final and self._sent:
            wait = max(wait, self._sent[-1] + self.window_s / self.limit - now)
        return wait

    @property
    def _waiting_finals(self) -> int:
        return sum(is_final for _, is_final in self._queue)

    def has_capacity(self, *, final: bool = False) -> bool:
        """Whether :meth:`acquire` would grant a slot at once (nobody queued ahead)."""
        ahead = self._waiting_finals if final else len(self._queue)
        return ahead == 0 and self.delay(final=final) == 0.0

    # -- spending ------------------------------------------------------------------------
    async def acquire(self, *, final: bool = False) -> float:
        """Wait for a slot and spend it; returns the slot (for :meth:`refund`).

        Cancelling the wait spends nothing.
        """
        me = asyncio.Event()
        position = self._waiting_finals if final else len(self._queue)
        self._queue.insert(position, (me, final))
        try:
            while True:
                is_head = self._queue[0][0] is me
                wait = self.delay(final=final) if is_head else None
                if wait == 0.0:
                    break
                me.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(me.wait(), wait)
        finally:
            self._queue = [entry for entry in self._queue if entry[0] is not me]
            self._wake()
        slot = self._clock()
        self._sent.append(slot)
        self.spent += 1
        self.spent_final += final
        return slot

    def settle(self, slot: float) -> None:
        """``slot``'s request has completed: count it from now, when the platform surely saw it.

        Slots are stamped when granted, platforms count a request when it arrives; without
        settling, a few milliseconds of skew let the window free early and draw a 429.
        """
        with contextlib.suppress(ValueError):
            self._sent.remove(slot)
        bisect.insort(self._sent, self._clock())

    def refund(self, slot: float) -> None:
        """Give back ``slot``: its request never reached the platform."""
        try:
            self._sent.remove(slot)
        except ValueError:  # already expired from the window
            return
        self.spent -= 1
        self._wake()

    # -- learning ------------------------------------------------------------------------
    def observe(
        self,
        *,
        limit: int | None = None,
        remaining: int | None = None,
        reset_after_s: float | None = None,
    ) -> None:
        """Adopt what the platform says (rate-limit headers) about this destination."""
        now = self._clock()
        if limit is not None and limit >= 1 and limit != self.limit:
            self.limit = limit
            self.reserve = min(self.reserve, max(0, limit - 1))
        if remaining is not None and reset_after_s is not None:
            self._expire(now)
            used = self.limit - remaining
            # The platform counts more requests than we did (another process, a restart):
            # pretend they were sent so that the window frees exactly at its reset.
            while len(self._sent) < used:
                self._sent.appendleft(now + reset_after_s - self.window_s)
        self._wake()

    def block_for(self, seconds: float) -> None:
        """After a 429: nothing goes to this destination for ``seconds``."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)
        self._wake()

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] + self.window_s <= now:
            self._sent.popleft()

    def _wake(self) -> None:
        for event, _ in self._queue:
            event.set()
