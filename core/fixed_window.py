"""A rate budget for a limit counted in fixed windows that the platform never reports.

Discord's global limit — 50 requests per second per bot (docs/discord.md §2) — has no headers:
a bot learns of it only from a 429. Its window is fixed, like the per-route buckets: it opens
at the first request after the last window ended and takes ``limit`` requests. discord.js
(@discordjs/rest) models it the same way: ``globalReset = now + 1 s`` at the first request,
``globalRemaining`` counted down as requests go out. The sliding window of
:class:`~core.budget.RateBudget` would be safe under any model, but under a standing queue it
hands slots out again one by one at the spread-out times they were first used, where a fixed
window gives all of them back at once when it turns over: with 500 answers at once that cost
about half a second of mean lag (bench, "500 concurrent").

The platform's window cannot be seen, so each of ours is bounded from both sides. A request
is counted by the platform between its grant and its completion, so:

* our window closes at its *anchor* + ``window_s``: the anchor is the earliest completion of a
  request granted in it. The platform's window that counted that request opened at or before
  it arrived, so it has ended by then, and every later grant goes to a later platform window;
* a grant made within :data:`STRADDLE_S` of the earliest moment the platform's window could
  end may arrive after it ended: it counts in the next window as well, unless it completes
  before that moment. So does a request still in flight when the window closes. The platform's
  window opened no earlier than our first grant in it — or, if requests were carried in, than
  the end of the window before (one ``window_s`` after that one's earliest opening);
* a window left holding only such carried requests closes ``window_s`` after the last of them
  completed (the platform window they opened, if any, opened before that).

A window's end is known only once one of its own requests has been answered, and under a
standing queue the first answer to a burst of ``limit`` requests comes late: the event loop
writes all of them before it reads any response (500 answers at once: windows turned every
1.04–1.18 s). So when more than :data:`PROBE_QUEUE` × ``limit`` waiters stand at a fresh
window, its first grant goes alone, as a *probe*: the others wait for its answer (at most
:data:`PROBE_HOLD_S`), which then dates the window (1.01–1.09 s in the same bench). Only the
timing of grants changes, and only later: the bounds above stay as they are, and so does
safety.

The one assumption: a request reaches the platform within :data:`STRADDLE_S` of its grant.
If the platform ever refuses a request this model let through (:meth:`FixedWindowBudget.
distrust`), the budget counts a sliding window from then on, which is safe under any model.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.budget import UNSETTLED_MAX_S, RateBudget

__all__ = ["PROBE_HOLD_S", "PROBE_QUEUE", "STRADDLE_S", "FixedWindowBudget"]

log = logging.getLogger(__name__)

#: The longest a granted request may take to reach the platform (grant → request written →
#: platform reads it). Measured grant → response under the 500-answer bench load: p90 under
#: 0.16 s in the busiest second; one way is less.
STRADDLE_S = 0.25
#: A fresh window's first grant goes alone while more than this many waiters stand (a fraction
#: of the limit: below it the window may not fill, and its end matters little)...
PROBE_QUEUE = 0.5
#: ... and the rest wait for its answer at most this long.
PROBE_HOLD_S = 0.1


@dataclass(eq=False)
class _Request:
    granted: float  # when its slot was granted
    done: float = math.inf  # when it completed; inf while in flight
    straddles: bool = False  # may be counted in the platform's next window
    anchors: bool = True  # its completion may close the window (False: seen only afterwards)


class FixedWindowBudget(RateBudget):
    """``limit`` requests per fixed window of ``window_s`` seconds (reserve 0, no spacing)."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
    ) -> None:
        super().__init__(limit, window_s, reserve=0, clock=clock, name=name)
        self._members: list[_Request] = []  # requests counted in the current window
        self._own_from = -math.inf  # grants from here on are the current window's own
        self._answered = math.inf  # the first response seen to one of the window's own
        #: No earlier than this the platform's current window opened (None: no request yet).
        self._opened_after: float | None = None
        self._fixed = True  # False once the platform refused a request (see distrust)

    # -- queries -------------------------------------------------------------------------
    def delay(self, *, final: bool) -> float:
        if not self._fixed:
            return super().delay(final=final)
        now = self._clock()
        self._roll(now)
        earliest = max(now, self._blocked_until)
        if len(self._members) >= self.limit:
            return max(earliest, self._ends_at()) - now
        return max(earliest, self._probe_answered_by()) - now

    def _probe_answered_by(self) -> float:
        """Until when the window's other grants wait for its probe's answer (-inf: no wait)."""
        own = self._own()
        if (
            len(own) != 1
            or own[0].done != math.inf
            or self._answered != math.inf
            or len(self._queue) <= PROBE_QUEUE * self.limit
        ):
            return -math.inf
        return own[0].granted + PROBE_HOLD_S

    def _ends_at(self) -> float:
        """When the current window surely has ended on the platform too."""
        own = self._own()
        if own:
            first_done = min(min(r.done for r in own), self._answered)
            anchor = min(first_done, min(r.granted for r in own) + UNSETTLED_MAX_S)
        else:  # carried requests only: their platform window opened before they completed
            anchor = max(min(r.done, r.granted + UNSETTLED_MAX_S) for r in self._members)
        return anchor + self.window_s

    def _is_own(self, request: _Request) -> bool:
        """Granted in the current window, and able to close it when answered."""
        return request.granted >= self._own_from and request.anchors

    def _own(self) -> list[_Request]:
        return [r for r in self._members if self._is_own(r)]

    def _roll(self, now: float) -> None:
        """Close every window that has ended by ``now``, carrying what may count in the next."""
        while self._members and now >= self._ends_at():
            carried = [
                r
                for r in self._members
                if (r.straddles or r.done == math.inf) and r.granted + UNSETTLED_MAX_S > now
            ]
            for request in carried:
                request.straddles = False  # counted once more; a request still in flight
            self._members = carried  # is carried again if it is still in flight next time
            self._own_from = now
            self._answered = math.inf
            # A carried request may open the platform's next window, but not before this one
            # ended; without one, the next window opens with our next grant.
            assert self._opened_after is not None
            self._opened_after = self._opened_after + self.window_s if carried else None

    # -- spending ------------------------------------------------------------------------
    def _grant(self) -> float:
        slot = super()._grant()
        if not self._fixed:
            return slot
        if self._opened_after is None or slot < self._opened_after:
            self._opened_after = slot
        self._members.append(_Request(slot, straddles=self._straddles(slot)))
        return slot

    def _straddles(self, at: float) -> bool:
        return at >= self._earliest_end() - STRADDLE_S

    def settle(self, slot: float) -> None:
        if (request := self._in_flight(slot)) is not None:
            request.done = self._clock()
            if request.done < self._earliest_end():
                request.straddles = False  # it reached the platform inside this window
        super().settle(slot)

    def _earliest_end(self) -> float:
        """The earliest time the platform's current window can end."""
        assert self._opened_after is not None
        return self._opened_after + self.window_s

    def distrust(self, window_s: float) -> None:
        """The platform refused a request that this model let through (a global 429): count
        a sliding ``window_s`` from each request's completion from now on (RateBudget's rule)."""
        if self._fixed:
            log.warning(
                "%s: a 429 the fixed-window model did not foresee; sliding from now on",
                self.name or "budget",
            )
            self._fixed = False
            self.window_s = window_s
            self._members.clear()

    def saw_response(self) -> None:
        """A response to a request that holds a slot here has just arrived (an HTTP trace sees
        it before the caller settles). While every request in flight is the current window's
        own, it answers one of them: the window may close a window from now."""
        in_flight = [r for r in self._members if r.done == math.inf]
        if self._fixed and in_flight and all(self._is_own(r) for r in in_flight):
            self._answered = min(self._answered, self._clock())
            self._dispatch()

    def _take_back(self, slot: float) -> bool:
        if (request := self._in_flight(slot)) is not None:
            self._members.remove(request)
        return super()._take_back(slot)

    def count_unbudgeted(self) -> None:
        """A request of the client library's own completed: it counts here and in the next
        window (when it reached the platform is unknown), and it closes no window."""
        if not self._fixed:
            super().count_unbudgeted()
            return
        now = self._clock()
        self._roll(now)
        sent_by = now - self.window_s  # sent at some time before now: assume the earliest
        if self._opened_after is None or sent_by < self._opened_after:
            self._opened_after = sent_by
        self._members.append(_Request(now, done=now, straddles=True, anchors=False))
        self._dispatch()

    def _in_flight(self, slot: float) -> _Request | None:
        if slot not in self._pending:
            return None  # refunded, settled already, or given up on
        return next((r for r in self._members if r.granted == slot and r.done == math.inf), None)
