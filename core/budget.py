"""Rate budgets: one per destination, shared by every message that writes there.

A :class:`RateBudget` is a sliding window of ``limit`` requests per ``window_s`` seconds
(Discord: 5 per 5 s per channel, learned from ``X-RateLimit-*``; Slack: ``chat.update`` ~50 per
60 s per workspace). Invariants:

* interim writes may use at most ``limit - reserve`` slots of any window, so a final write
  always finds a free slot within one window — the "slot kept for the final edit" — except
  when the window's oldest slot frees within one interim spacing: then the kept slot goes to
  the interim write too (a final would wait at most that spacing, which the interim write
  would otherwise have waited for its next slot anyway);
* interim writes are spaced at least ``window_s / limit`` apart, so a steady stream spends
  the budget evenly instead of bursting it and then going dark for a whole window;
* waiters are served in order — finals first, then interims, then cues (writes that show no
  new text, such as a placeholder) in arrival order. Among finals and among interims the one
  with the most to show goes first (its ``weight``: a message that just wrote has little, so
  streams take turns, and a stream that piled up text goes before one that has a word to
  add): every second a write waits, each character it would show waits too, so the heaviest
  first keeps the mean lag per character least. A final that has waited
  :data:`FINAL_AGING_S` goes before every final that has not, in arrival order, so a short
  answer behind a queue of long ones (500 DMs under the global limit) waits bounded;
* with ``burst_s`` (budgets whose window is longer than an answer: Slack's per-minute tiers)
  interim writes are spaced ``burst_s / free slots`` apart instead: a quiet window lets one
  answer write often, and the pace falls smoothly as the window fills — the free slots are
  always spread over the next ``burst_s`` seconds, so the budget never runs dry mid-answer;
* a granted slot counts until its request completes (:meth:`RateBudget.settle`), however long
  that takes — under load a request may reach the platform long after its slot was granted —
  and from then on for one window; a slot never settled stops counting after
  ``UNSETTLED_MAX_S``;
* a platform that reports its window (``observe``: Discord's ``Remaining`` and
  ``Reset-After``) is trusted when it says a *new* window has opened: slots settled before it
  opened belong to the old window and stop counting (Discord's windows are fixed: they reset
  whole, they do not slide), so a final edit right after a window turned over goes at once;
* cues give way to demand: while more streams are open (:meth:`RateBudget.expect`) than the
  budget takes in one window, each of them still owes at least one write, and a cue (a
  placeholder, a typing indicator) would push some answer's text further back — so no cue is
  granted until the open streams fit again (for Discord's global 50 per second: 500 answers
  at once are posted whole instead of as placeholders followed by final edits); interim
  writes give way the same once the open streams outnumber :data:`INTERIM_DEMAND_WINDOWS`
  windows' worth of slots;
* a budget may have a ``parent`` (Discord's global 50 requests per second above every
  channel's bucket): a slot is granted only when both have one, and settles or refunds both;
* time comes from the event loop, so tests may drive it with a fake loop clock.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import itertools
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["CUE_RECHECK_S", "FINAL_AGING_S", "UNSETTLED_MAX_S", "Rank", "RateBudget", "Weight"]

log = logging.getLogger(__name__)

#: A granted slot nobody settled or refunded stops counting after this long (longer than any
#: request's timeouts), so a forgotten settle costs one slot for a while, never the budget.
UNSETTLED_MAX_S = 60.0
#: Float slack when comparing window edges.
_EPS = 1e-9
#: How often a cue held back by demand looks again (demand may fall in a parent budget).
CUE_RECHECK_S = 0.25
#: Interim writes give way once more streams are open than this many windows could give one
#: write each: they would come too seldom to matter, and each pushes some answer's end back.
INTERIM_DEMAND_WINDOWS = 2
#: A final write that has waited this long goes before every final that has waited less.
FINAL_AGING_S = 5.0

Weight = Callable[[], float]


class Rank(IntEnum):
    """Service classes of waiters, served in this order."""

    FINAL = 0  # shows the end of a message: no spacing, may use the kept slot
    INTERIM = 1  # shows more of a growing message: spaced, leaves the kept slot
    CUE = 2  # shows no new text (a placeholder): spends like a final, but goes last


@dataclass(eq=False)
class _Waiter:
    rank: Rank
    weight: Weight | None
    order: int
    since: float  # when it began to wait
    granted: asyncio.Future[float]  # the slot, set by :meth:`RateBudget._dispatch`

    def key(self, now: float) -> tuple[int, bool, float, int]:
        if self.rank is Rank.FINAL and now - self.since >= FINAL_AGING_S:
            return (self.rank, False, 0.0, self.order)  # overdue: before the rest, in order
        weight = self.weight() if self.rank is not Rank.CUE and self.weight else 0.0
        return (self.rank, True, -weight, self.order)


class RateBudget:
    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        reserve: int = 1,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
        parent: RateBudget | None = None,
        burst_s: float | None = None,
    ) -> None:
        if limit < 1 or window_s <= 0 or not 0 <= reserve < max(limit, 2):
            raise ValueError("RateBudget needs limit >= 1, window_s > 0, 0 <= reserve < limit")
        if burst_s is not None and burst_s <= 0:
            raise ValueError("RateBudget needs burst_s > 0")
        self.limit = limit
        self.window_s = window_s
        self.reserve = min(reserve, limit - 1)
        self.name = name
        self.burst_s = burst_s
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()  # settled, sorted
        self._pending: list[float] = []  # granted, not yet settled or refunded (grant order)
        self._blocked_until = 0.0
        self._queue: list[_Waiter] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the last acquire
        self._timer: asyncio.TimerHandle | None = None  # looks again when the head may go
        self._order = itertools.count()
        self.spent = 0
        self._parent = parent
        self._parent_slots: dict[float, list[float]] = {}
        self._last_response = -math.inf  # when :meth:`observe` last saw a platform response
        self._open_streams = 0  # streams that still owe at least one write (:meth:`expect`)
        self._window_resets_at = -math.inf  # when the platform said its window resets
        self._last_activity = clock()  # the last grant, settle or observation

    # -- queries -------------------------------------------------------------------------
    def delay(self, *, final: bool) -> float:
        """Seconds until a write of this kind may go (0 = now). Never blocks."""
        now = self._clock()
        self._expire(now)
        earliest = max(now, self._blocked_until)
        ends = sorted([s + self.window_s for s in self._sent] + self._pending_ends())
        spacing = self._spacing(live=len(ends))
        if not final:
            latest = max(self._sent[-1] if self._sent else -math.inf, *self._pending, -math.inf)
            earliest = max(earliest, latest + spacing)
        if final or self.reserve == 0:
            cap = self.limit if final else self.limit - self.reserve
            if len(ends) >= cap:
                earliest = max(earliest, ends[len(ends) - cap])
            return earliest - now
        return self._interim_time(earliest, ends, spacing) - now

    def _spacing(self, *, live: int) -> float:
        """The least time between two interim writes, with ``live`` slots counting now."""
        if self.burst_s is None:
            return self.window_s / self.limit
        return self.burst_s / max(1, self.limit - self.reserve - live)

    def _pending_ends(self) -> list[float]:
        """When each unsettled slot stops counting (it counts until it settles, at most this)."""
        return [p + UNSETTLED_MAX_S for p in self._pending]

    def _interim_time(self, earliest: float, ends: list[float], spacing: float) -> float:
        """The first time from ``earliest`` at which the window lets an interim write go.

        It may once fewer than ``limit - reserve`` slots count, or fewer than ``limit`` with
        the first of them ending within one spacing. Both change only when a slot ends
        (``end``) or comes within a spacing of it (``end - spacing``).
        """
        changes = (t for end in ends for t in (end - spacing, end))
        for t in sorted({earliest, *(t for t in changes if t > earliest)}):
            live = [end for end in ends if end > t]
            if len(live) < self.limit - self.reserve:
                return t
            if len(live) < self.limit and live[0] - t <= spacing + _EPS:
                return t
        return max(earliest, ends[-1]) if ends else earliest

    def has_capacity(self, *, final: bool = False, cue: bool = False) -> bool:
        """Whether :meth:`acquire` would grant a slot at once (nobody queued ahead)."""
        rank = Rank.CUE if cue else Rank.FINAL if final else Rank.INTERIM
        ahead = any(waiter.rank <= rank for waiter in self._queue)
        if ahead or self._held_back(rank):
            return False
        return self.delay(final=rank is not Rank.INTERIM) == 0.0

    def _held_back(self, rank: Rank) -> bool:
        """Whether writes of ``rank`` give way to the open streams' demand (module docstring)."""
        if rank is Rank.FINAL:
            return False
        streams = self.limit if rank is Rank.CUE else self.limit * INTERIM_DEMAND_WINDOWS
        if self._open_streams > streams:
            return True
        return self._parent is not None and self._parent._held_back(rank)

    def idle_for(self, seconds: float) -> bool:
        """Whether nobody waits, nothing is in flight and nothing happened for ``seconds``:
        a per-destination budget that may be forgotten (its next user starts afresh)."""
        quiet = self._clock() - self._last_activity >= seconds
        return quiet and not self._queue and not self._pending and self._open_streams == 0

    def expect(self, streams: int) -> None:
        """``streams`` more (or, negative, fewer) open streams will each write at least once."""
        self._open_streams = max(0, self._open_streams + streams)
        self._dispatch()

    # -- spending ------------------------------------------------------------------------
    async def acquire(
        self, *, final: bool = False, cue: bool = False, weight: Weight | None = None
    ) -> float:
        """Wait for a slot and spend it; returns the slot (for :meth:`refund`).

        ``final`` writes end a message; ``cue`` writes show no new text and are served after
        every other waiter; ``weight`` (finals and interims) says how much the write would show.
        Cancelling the wait spends nothing.
        """
        rank = Rank.CUE if cue else Rank.FINAL if final else Rank.INTERIM
        self._loop = asyncio.get_running_loop()
        me = _Waiter(rank, weight, next(self._order), self._clock(), self._loop.create_future())
        self._queue.append(me)
        self._dispatch()
        try:
            slot = await me.granted
        except BaseException:
            if me in self._queue:
                self._queue.remove(me)
            elif me.granted.done() and not me.granted.cancelled():
                self._take_back(me.granted.result())  # granted as the cancel came: unspent
            self._dispatch()
            raise
        if self._parent is not None:
            try:
                parent_slot = await self._parent.acquire(final=final, cue=cue, weight=weight)
            except BaseException:
                self.refund(slot)  # cancelled while waiting for the parent: nothing spent
                raise
            self._parent_slots.setdefault(slot, []).append(parent_slot)
        return slot

    def settle(self, slot: float) -> None:
        """``slot``'s request has completed: count it from now, when the platform surely saw it.

        Platforms count a request when it arrives, which may be long after its slot was
        granted (a busy event loop, a slow connection): until it settles a slot counts
        regardless of time, afterwards for one window from the stamp.
        The stamp is the latest response :meth:`observe` saw since the slot was granted, if
        any (the platform counted the request before answering it): a client library may
        hold the call long after the response — discord.py sleeps until the bucket resets
        when it reads ``Remaining: 0`` — and that wait is no request.
        """
        now = self._last_activity = self._clock()
        if slot not in self._pending:
            return  # refunded, settled already, or given up on (UNSETTLED_MAX_S)
        self._pending.remove(slot)
        stamp = self._last_response if slot <= self._last_response <= now else now
        bisect.insort(self._sent, stamp)
        if (parent_slot := self._pop_parent_slot(slot)) is not None:
            assert self._parent is not None
            self._parent.settle(parent_slot)
        self._dispatch()

    @contextlib.asynccontextmanager
    async def slot(self, *, final: bool = False) -> AsyncIterator[float]:
        """``async with budget.slot():`` — acquire, make the request, settle however it ends."""
        slot = await self.acquire(final=final)
        try:
            yield slot
        finally:
            self.settle(slot)

    def refund(self, slot: float) -> None:
        """Give back ``slot``: its request never reached the platform."""
        if (parent_slot := self._pop_parent_slot(slot)) is not None:
            assert self._parent is not None
            self._parent.refund(parent_slot)
        if self._take_back(slot):
            self._dispatch()

    def _take_back(self, slot: float) -> bool:
        """Stop counting ``slot`` as spent, its parent's left alone (a refund, or a grant whose
        waiter was cancelled before it took the slot); False if it no longer counted."""
        if slot not in self._pending:
            return False  # settled already, or given up on
        self._pending.remove(slot)
        self.spent -= 1
        return True

    def _pop_parent_slot(self, slot: float) -> float | None:
        parent_slots = self._parent_slots.get(slot)
        if not parent_slots:
            return None
        parent_slot = parent_slots.pop()
        if not parent_slots:
            del self._parent_slots[slot]
        return parent_slot

    # -- learning ------------------------------------------------------------------------
    def observe(
        self,
        *,
        limit: int | None = None,
        remaining: int | None = None,
        reset_after_s: float | None = None,
    ) -> None:
        """Adopt what the platform says (rate-limit headers) in a response that just arrived."""
        now = self._last_activity = self._clock()
        self._last_response = now
        if limit is not None and limit >= 1 and limit != self.limit:
            self.limit = limit
            self.reserve = min(self.reserve, max(0, limit - 1))
        if remaining is not None and reset_after_s is not None:
            self._expire(now)
            self._turn_over(now + reset_after_s)
            used = self.limit - remaining
            # The platform counts more requests than we did (another process, a restart):
            # pretend they were sent so that the window frees exactly at its reset.
            while len(self._sent) + len(self._pending) < used:
                self._sent.appendleft(now + reset_after_s - self.window_s)
        self._dispatch()

    def _turn_over(self, resets_at: float) -> None:
        """Forget settled slots of a window the platform says has been replaced by a new one.

        A reset time later than the known one by more than half a window can only belong to a
        window that opened after the old one ended, at ``resets_at - window_s`` at the latest
        (our window is never shorter than the platform's), and everything settled before that
        was counted in the old one. Slots still in flight keep counting: conservative.
        """
        is_new = resets_at > self._window_resets_at + self.window_s / 2
        self._window_resets_at = max(self._window_resets_at, resets_at)
        if is_new:
            opened = resets_at - self.window_s
            while self._sent and self._sent[0] < opened:
                self._sent.popleft()

    def count_unbudgeted(self) -> None:
        """A request went out without a slot (a client library's own): count it from now."""
        bisect.insort(self._sent, self._clock())

    def block_for(self, seconds: float) -> None:
        """After a 429: nothing goes to this destination for ``seconds``."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)
        self._dispatch()

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] + self.window_s <= now:
            self._sent.popleft()
        while self._pending and self._pending[0] + UNSETTLED_MAX_S <= now:
            log.warning("a %s slot was never settled; it stops counting", self.name or "budget")
            self._pop_parent_slot(self._pending.pop(0))

    def _dispatch(self) -> None:
        """Hand slots to waiters, best first, for as long as the window lets them go now.

        Every grant happens here, synchronously, whenever the window may have changed: a slot
        that frees goes straight to the next waiter, and twenty freed at once go to twenty
        waiters in one pass — not one per trip through a busy event loop. When the best waiter
        must wait, one timer per budget looks again when it may go.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._queue:
            return
        now = self._clock()
        for head in sorted(self._queue, key=lambda waiter: waiter.key(now)):
            if head.granted.done():  # cancelled: its acquire removes it
                continue
            wait = self.delay(final=head.rank is not Rank.INTERIM)
            if wait == 0.0 and self._held_back(head.rank):
                wait = CUE_RECHECK_S
            if wait > 0.0:
                assert self._loop is not None
                self._timer = self._loop.call_later(wait, self._dispatch)
                return
            self._queue.remove(head)
            head.granted.set_result(self._grant())

    def _grant(self) -> float:
        """Spend one slot now; returns it (its grant time)."""
        slot = self._last_activity = self._clock()
        self._pending.append(slot)
        self.spent += 1
        return slot
