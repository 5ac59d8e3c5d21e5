"""A reference online pacer: our policy with no overhead, on a row's own arrivals.

The lower bound (:mod:`bench.lower_bound`) knows the whole arrival timeline in advance: it
writes right after each burst, skips pauses and spends the last window's writes in the
answer's final second. An online pacer knows only what has arrived. :func:`reference_pacer`
plays, on the same arrivals and the same buckets, the policy ours follows (core/budget.py,
core/paced_message.py, bots/slack/native_stream.py) — but with none of a real pacer's costs:
zero request latency, no word hold-back, every write at the very moment the policy allows
it (event-driven: exact, no time step). Its ratio to the
bound is the part of the gap that comes from not knowing the future; ours over it is what
latency, whole-word interim text and the real event loop cost.

The policy, per :class:`Bucket` (one rate budget) and :class:`RefStream` (one answer):

* a write shows everything arrived so far; the final write goes as soon as the answer ended
  (its last chunk arrived), may use any free slot and is served before interim writes —
  finals that waited ``FINAL_AGING_S`` first in the order their answers ended, then the one
  with the most unseen characters;
* an interim write comes at least one spacing after the bucket's previous write (``window_s
  / limit``; with ``burst_s``, ``burst_s`` over the slots still free: Slack's per-minute
  tiers), at least ``min_gap_s`` after the message's own previous write, and leaves
  ``reserve`` slots of the window for final writes unless a slot frees within one spacing;
* when several answers wait for one bucket, the one with the most unseen characters goes first;
* interim writes wait while more answers are open than :data:`INTERIM_DEMAND_WINDOWS` windows
  of a bucket could give one write each (the 500-DM row: answers are posted whole).

Named simplifications: each answer is one message (Discord continuation posts and Slack
rotations are not played); placeholders and typing are not played (other buckets, except
Discord's global limit, where ours holds them back under load); a write whose text was all
shown already is skipped.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.lower_bound import Arrivals, schedule_cost
from core.budget import FINAL_AGING_S, INTERIM_DEMAND_WINDOWS

__all__ = ["Bucket", "RefStream", "even_pacer", "even_pacer_writes", "reference_pacer"]

_EPS = 1e-9


@dataclass(eq=False)
class Bucket:
    """One rate budget: ``limit`` writes per ``window_s``, fixed (Discord) or sliding (Slack)."""

    limit: int
    window_s: float
    fixed: bool = True
    reserve: int = 1
    burst_s: float | None = None
    open_streams: int = 0  # answers that still owe their final write
    _taken: collections.deque[float] = field(default_factory=collections.deque)
    _opened: float = -math.inf  # fixed: when the current window opened
    _last: float = -math.inf

    def _used(self, t: float) -> int:
        if self.fixed:
            return len(self._taken) if t < self._opened + self.window_s else 0
        return sum(1 for s in self._taken if s > t - self.window_s)

    def free(self, t: float) -> int:
        return self.limit - self._used(t)

    def spacing(self, t: float) -> float:
        if self.burst_s is None:
            return self.window_s / self.limit
        return self.burst_s / max(1, self.limit - self.reserve - self._used(t))

    def admits(self, t: float, *, final: bool) -> bool:
        free = self.free(t)
        if final:
            return free > 0
        spacing = self.spacing(t)
        if t < self._last + spacing - _EPS:
            return False
        return free > self.reserve or (free > 0 and self.free(t + spacing) > self.reserve)

    def changes(self, t: float) -> list[float]:
        """Times after ``t`` at which :meth:`admits` may change: a spacing ends, a slot frees
        or comes within a spacing of freeing."""
        spacing = self.spacing(t)
        frees = (
            [self._opened + self.window_s]
            if self.fixed
            else [s + self.window_s for s in self._taken]
        )
        return [self._last + spacing, *frees, *(f - spacing for f in frees)]

    def take(self, t: float) -> None:
        if self.fixed and t >= self._opened + self.window_s:
            self._opened = t
            self._taken.clear()
        self._taken.append(t)
        if not self.fixed:
            while self._taken and self._taken[0] <= t - self.window_s:
                self._taken.popleft()
        self._last = t


@dataclass(eq=False)
class RefStream:
    """One answer: its arrivals and the buckets each kind of write draws on."""

    arrivals: Arrivals
    interim: tuple[Bucket, ...]
    final: tuple[Bucket, ...]
    first: tuple[Bucket, ...] | None = None  # the first write's buckets, if not ``interim``
    first_unspaced: bool = False  # the first write spends like a final (Slack's startStream)
    min_gap_s: float = 0.0
    writes: list[float] = field(default_factory=list)
    arrived: int = 0  # chunks arrived by now
    shown: int = 0  # chunks shown by the writes so far
    opened: bool = False

    def __post_init__(self) -> None:
        self._prefix = [0, *itertools.accumulate(self.arrivals.chars)]
        self.buckets_all = {*self.interim, *self.final, *(self.first or ())}

    def open(self) -> None:
        """The answer started: it owes a final write, and counts as demand until then."""
        self.opened = True
        for bucket in self.buckets_all:
            bucket.open_streams += 1

    def close(self) -> None:
        for bucket in self.buckets_all:
            bucket.open_streams -= 1

    def held_back(self) -> bool:
        """Whether its interim writes give way to the open answers' demand."""
        return any(b.open_streams > b.limit * INTERIM_DEMAND_WINDOWS for b in self.interim)

    def unseen(self) -> int:
        return self._prefix[self.arrived] - self._prefix[self.shown]

    def ended(self) -> bool:
        return self.arrived == len(self.arrivals.times)

    def next_arrival(self) -> float:
        return self.arrivals.times[self.arrived]

    def may_write(self, t: float, *, final: bool) -> tuple[Bucket, ...] | None:
        """The buckets a write at ``t`` would spend, if every one of them admits it now."""
        buckets, as_final = self.final if final else self.interim, final
        if not self.writes and self.first is not None:
            buckets, as_final = self.first, final or self.first_unspaced
        elif self.writes and not final and t < self.writes[-1] + self.min_gap_s - _EPS:
            return None
        return buckets if all(b.admits(t, final=as_final) for b in buckets) else None

    def write(self, buckets: tuple[Bucket, ...], t: float) -> None:
        for bucket in buckets:
            bucket.take(t)
        self.writes.append(t)
        self.shown = self.arrived


def reference_pacer(streams: Sequence[RefStream]) -> float:
    """Play the policy (module docstring) on ``streams``; their mean lag per character (s).

    Event-driven and exact: time moves to the next start or arrival, or to the next moment at
    which a bucket or a message's own gap may let a waiting write go.
    """
    events = [(s.arrivals.start, i) for i, s in enumerate(streams)]  # next start or arrival
    heapq.heapify(events)
    # Open, with text unseen; a dict, not a set: insertion order breaks ties the same every run.
    waiting: dict[RefStream, None] = {}
    t = events[0][0]
    while events or waiting:
        while events and events[0][0] <= t + _EPS:
            _, i = heapq.heappop(events)
            s = streams[i]
            if not s.opened:
                s.open()
            while not s.ended() and s.next_arrival() <= t + _EPS:
                s.arrived += 1
            if not s.ended():
                heapq.heappush(events, (s.next_arrival(), i))
            if s.unseen():
                waiting[s] = None
        _write_all(waiting, t)
        for s in [s for s in waiting if not s.unseen()]:
            del waiting[s]
            if s.ended():
                s.close()
        t = min(_changes(waiting, t) + ([events[0][0]] if events else []), default=t)
    total = sum(schedule_cost(s.arrivals, s.writes) for s in streams)
    return total / sum(s.arrivals.total for s in streams)


def _write_all(waiting: dict[RefStream, None], t: float) -> None:
    """Finals first (overdue ones in the order their answers ended, then most unseen first),
    then interims, most unseen first."""

    def final_order(s: RefStream) -> tuple[bool, float, float]:
        overdue = t - s.arrivals.last >= FINAL_AGING_S - _EPS
        return (not overdue, 0.0 if overdue else -s.unseen(), s.arrivals.last)

    ended = sorted((s for s in waiting if s.ended()), key=final_order)
    for s in ended:
        if (buckets := s.may_write(t, final=True)) is not None:
            s.write(buckets, t)
    growing = [s for s in waiting if not s.ended() and not s.held_back()]
    for s in sorted(growing, key=lambda s: -s.unseen()):
        if (buckets := s.may_write(t, final=False)) is not None:
            s.write(buckets, t)


def _changes(waiting: dict[RefStream, None], t: float) -> list[float]:
    """Times after ``t`` at which a waiting write may become possible."""
    buckets: set[Bucket] = set()
    found = []
    for s in waiting:
        if s.ended() or not s.held_back():  # a held-back write waits for a close: an event
            buckets.update(s.buckets_all)
            if s.writes:
                found.append(s.writes[-1] + s.min_gap_s)
    found += [c for bucket in buckets for c in bucket.changes(t)]
    return [c for c in found if c > t + _EPS]


# -- one stream alone in a fixed-window bucket ---------------------------------------------


def even_pacer_writes(arrivals: Arrivals, *, limit: int, window_s: float) -> list[float]:
    """The write times of the reference pacer on one stream alone in a fixed-window bucket."""
    bucket = Bucket(limit, window_s)
    stream = RefStream(arrivals, interim=(bucket,), final=(bucket,))
    reference_pacer([stream])
    return stream.writes


def even_pacer(arrivals: Arrivals, *, limit: int, window_s: float) -> float:
    """Mean lag (s) of the reference pacer on one stream alone in a fixed-window bucket."""
    writes = even_pacer_writes(arrivals, limit=limit, window_s=window_s)
    return schedule_cost(arrivals, writes) / arrivals.total


def study(answers: int = 24, *, seed: int = 1) -> list[float]:
    """The reference pacer ÷ the exact bound on ``answers`` seeded timelines, one stream each.

    Answers of 300–6,000 characters (bench/streams.py) as one message in a 5-per-5 s fixed
    window: how far an online pacer with no overhead stays from the clairvoyant optimum.
    """
    from bench.lower_bound import fixed_window_bound
    from bench.streams import make_timeline

    rng = random.Random(seed)
    ratios = []
    for i in range(answers):
        timeline = make_timeline(rng.randrange(1 << 30), rng.randint(300, 6_000), key=f"s{i}")
        arrivals = Arrivals(0.0, timeline.offsets, tuple(len(c) for c in timeline.chunks))
        bound = fixed_window_bound(arrivals, limit=5, window_s=5.0)
        ratios.append(even_pacer(arrivals, limit=5, window_s=5.0) / bound.mean_lag_s)
    return ratios
