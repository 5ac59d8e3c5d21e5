"""Rate budgets: one per destination, shared by every message that writes there.

A :class:`RateBudget` is a sliding window of ``limit`` requests per ``window_s`` seconds
(Discord: 5 per 5 s per channel, learned from ``X-RateLimit-*``; Slack: ``chat.update`` ~50 per
60 s per workspace). Invariants:

* interim writes may use at most ``limit - reserve`` slots of any window, so a final write
  always finds a free slot within one window — the "slot kept for the final edit";
* interim writes are spaced at least ``window_s / limit`` apart, so a steady stream spends
  the budget evenly instead of bursting it and then going dark for a whole window;
* a waiting final holds interim writes back, so finals are never starved by interim edits;
* time comes from the event loop, so tests may drive it with a fake loop clock.
"""

from __future__ import annotations

import asyncio
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
        self._changed = asyncio.Event()
        self._waiting_finals = 0
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
            if self._waiting_finals:
                wait = max(wait, self.window_s / self.limit)
        return wait

    def has_capacity(self, *, final: bool = False) -> bool:
        return self.delay(final=final) == 0.0

    # -- spending ------------------------------------------------------------------------
    async def acquire(self, *, final: bool = False) -> None:
        """Wait for a slot and spend it. Cancelling the wait spends nothing."""
        if final:
            self._waiting_finals += 1
        try:
            while (wait := self.delay(final=final)) > 0:
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
        finally:
            if final:
                self._waiting_finals -= 1
        self._sent.append(self._clock())
        self.spent += 1
        self.spent_final += final

    def refund(self) -> None:
        """Give back the newest slot: the request never reached the platform."""
        if self._sent:
            self._sent.pop()
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
        self._changed.set()
