"""Lower bounds on the mean visible lag of a streamed answer under rate buckets.

Model. A stream's characters arrive at known times (``Arrivals``). A *write* (an edit, or a
native-stream append) at time ``e`` makes every character that arrived by ``e`` visible; the
last write must come after the last arrival. A character's lag is the time of the first write
at or after its arrival minus its arrival. With writes ``e_1 < … < e_k`` the total lag is a
sum of pairwise terms::

    cost(e', e) = (A(e) − A(e'))·e − (S(e) − S(e'))

where ``A`` counts the characters arrived by a time and ``S`` sums their arrival times. Writes
are free of latency, hold-back and splitting rules — everything a real strategy pays on top.
The placeholder (posted at completion start, SPEC §5) shows no text and is not a write.

The bounds:

* :func:`fixed_window_bound` — one stream alone in a FIXED-window bucket (the fake Discord's
  model: a window opens at the first request, takes ``limit`` requests, ends ``window_s``
  later). Exact dynamic programme on a time grid of ``grid_s``; see its docstring for why the
  returned figure (grid optimum − ``grid_s``) is a valid bound for continuous time.
* :func:`shared_bound` — several streams sharing buckets (one channel, one workspace, the
  global limit). A Lagrangian/knapsack relaxation over per-stream *k-write curves*
  (:func:`k_write_curve`): valid, not necessarily tight. It knows only how many writes each
  horizon allows, not when.
* :func:`time_indexed_bound` — several streams sharing fixed-window buckets, with the
  buckets' limits on every interval of time priced by Lagrange multipliers (a write's price
  depends on when it is made). Valid for any multipliers; the better ones are found by
  subgradient ascent. Tighter where the buckets bind over time (500 answers on a global 50/s).
* :func:`minute_tier_bound` — answers sharing a per-minute tier within one minute (Slack),
  where the tier caps only the number of writes: exact by knapsack.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Arrivals",
    "Bound",
    "SharedLimit",
    "fixed_window_bound",
    "k_write_curve",
    "max_writes_fixed",
    "max_writes_sliding",
    "minute_tier_bound",
    "schedule_cost",
    "shared_bound",
    "time_indexed_bound",
]


@dataclass(frozen=True)
class Arrivals:
    """When each chunk of one answer arrived (seconds, one monotonic clock)."""

    start: float  # completion start: the placeholder goes out here
    times: tuple[float, ...]  # chunk arrival times, non-decreasing, all >= start
    chars: tuple[int, ...]  # characters in each chunk (> 0)

    @property
    def total(self) -> int:
        return int(sum(self.chars))

    @property
    def last(self) -> float:
        return self.times[-1]

    def cumulative(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(A, S)`` at each time in ``at``: chars arrived by then, and their arrival-time sum."""
        times = np.asarray(self.times, dtype=float)
        chars = np.asarray(self.chars, dtype=float)
        a_cum = np.concatenate([[0.0], np.cumsum(chars)])
        s_cum = np.concatenate([[0.0], np.cumsum(chars * times)])
        upto = np.searchsorted(times, at, side="right")
        return a_cum[upto], s_cum[upto]


@dataclass(frozen=True)
class Bound:
    """A lower bound on the mean per-character lag (seconds) and how it was obtained."""

    mean_lag_s: float
    method: str
    schedule: tuple[float, ...] = ()  # write times of a schedule achieving the grid optimum


def schedule_cost(arrivals: Arrivals, writes: Sequence[float]) -> float:
    """Total lag (char·s) of a write schedule; inf if the last write precedes an arrival."""
    writes = sorted(writes)
    if not writes or writes[-1] < arrivals.last:
        return math.inf
    total = 0.0
    for t, n in zip(arrivals.times, arrivals.chars, strict=True):
        index = int(np.searchsorted(writes, t, side="left"))
        total += n * (writes[index] - t)
    return total


# -- one stream, fixed windows: exact DP on a grid ----------------------------------------------


def fixed_window_bound(
    arrivals: Arrivals, *, limit: int, window_s: float, grid_s: float = 0.01
) -> Bound:
    """The least mean lag of one stream alone in a fixed-window bucket, minus ``grid_s``.

    Writes are restricted to the grid ``start + j·grid_s`` (``window_s`` must be a multiple)
    and, at an offset of exactly ``window_s`` from a window's start, a write may count either
    in that window or open the next (relaxation R). Validity for continuous time: round every
    write of any feasible continuous schedule UP to the grid. Offsets from a window start
    change by less than one step, so a write that was inside a window (offset < W) lands at
    offset <= W and an opener (offset >= W) at >= W: the rounded schedule is feasible under R
    with the same windows, and each character waits less than ``grid_s`` longer. Hence
    (grid optimum − grid_s) <= the continuous optimum. Arrival times are used exactly.

    DP: state = (last write e, its window's start s, writes c in that window). Within a
    window, non-opening writes need only sit at the first grid point after some arrival
    (moving one earlier to there keeps its characters and its window). Window openers may sit
    anywhere on the grid; an opener at s' draws on every state whose window started by
    s' − W (a running minimum ``closed`` over last-write positions).
    """
    steps = round(window_s / grid_s)
    if steps < 1 or abs(steps * grid_s - window_s) > 1e-9:
        raise ValueError("window_s must be a positive multiple of grid_s")
    dp = _GridDP(arrivals, limit=limit, steps=steps, grid_s=grid_s)
    total, schedule = dp.solve()
    grid_mean = total / arrivals.total
    method = f"exact DP, {grid_s * 1000:.0f} ms grid, minus one step"
    return Bound(max(0.0, grid_mean - grid_s), method, schedule)


class _GridDP:
    def __init__(self, arrivals: Arrivals, *, limit: int, steps: int, grid_s: float) -> None:
        self.limit, self.steps = limit, steps
        last = math.ceil((arrivals.last - arrivals.start) / grid_s - 1e-9)
        self.size = last + steps + 1
        self.times = arrivals.start + grid_s * np.arange(self.size)
        self.a, s_sum = arrivals.cumulative(self.times)
        self.q = self.a * self.times - s_sum  # lag of all arrived chars if shown at each point
        self.n = float(arrivals.total)
        offsets = np.ceil((np.asarray(arrivals.times) - arrivals.start) / grid_s - 1e-9)
        self.arrival_points = np.unique(np.clip(offsets.astype(int), 0, self.size - 1))

    def cost(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Total lag of the chars arriving in (t_i, t_j] shown at t_j (broadcasting)."""
        return self.q[j] - self.q[i] - self.a[i] * (self.times[j] - self.times[i])

    def solve(self) -> tuple[float, tuple[float, ...]]:
        size = self.size
        closed = np.full(size, np.inf)  # best value with last write here, its window closed
        closed_from = np.full((size, 2), -1)  # (window start, chain position) achieving it
        opener_from: list[tuple[int, int] | None] = [None] * size
        chains: list[_Chain] = []
        everything = np.arange(size)
        for s in range(size):
            if s >= self.steps:
                chains[s - self.steps].close_into(closed, closed_from, s - self.steps)
            first = float(self.cost(np.array([0]), np.array([s]))[0])
            finite = everything[: s + 1][np.isfinite(closed[: s + 1])]
            best, origin = first, None
            if finite.size:
                values = closed[finite] + self.cost(finite, np.full(finite.size, s))
                k = int(np.argmin(values))
                if values[k] < best:
                    best, origin = (
                        float(values[k]),
                        (
                            int(closed_from[finite[k], 0]),
                            int(closed_from[finite[k], 1]),
                        ),
                    )
            opener_from[s] = origin
            chains.append(self._chain(s, best))
        return self._finish(chains, opener_from)

    def _chain(self, s: int, opened: float) -> _Chain:
        points = self.arrival_points
        inside = points[(points > s) & (points <= s + self.steps)]
        index = np.concatenate([[s], inside])
        layer = np.full(index.size, np.inf)
        layer[0] = opened
        layers, parents = [layer], [np.zeros(index.size, dtype=int)]
        pair_cost = self.cost(index[:, None], index[None, :])
        upper = np.triu(np.ones((index.size, index.size), dtype=bool), k=1)
        for _ in range(1, self.limit):
            totals = np.where(upper, layers[-1][:, None] + pair_cost, np.inf)
            parent = np.argmin(totals, axis=0)
            layers.append(totals[parent, np.arange(index.size)])
            parents.append(parent)
        stack = np.vstack(layers)
        return _Chain(index, stack, np.vstack(parents))

    def _finish(
        self, chains: list[_Chain], opener_from: list[tuple[int, int] | None]
    ) -> tuple[float, tuple[float, ...]]:
        best, at = math.inf, (-1, -1)
        for s, chain in enumerate(chains):
            complete = self.a[chain.index] >= self.n
            values = np.where(complete, chain.best, np.inf)
            j = int(np.argmin(values))
            if values[j] < best - 1e-9:  # ties: keep the earliest, not a trailing no-op write
                best, at = float(values[j]), (s, j)
        return best, self._trace(chains, opener_from, at)

    def _trace(
        self,
        chains: list[_Chain],
        opener_from: list[tuple[int, int] | None],
        at: tuple[int, int] | None,
    ) -> tuple[float, ...]:
        writes: list[float] = []
        while at is not None:
            s, j = at
            chain = chains[s]
            c = int(chain.best_layer[j])
            while c > 0:
                writes.append(float(self.times[chain.index[j]]))
                j, c = int(chain.parents[c, j]), c - 1
            writes.append(float(self.times[s]))
            at = opener_from[s]
        return tuple(sorted(writes))


@dataclass
class _Chain:
    """The writes of one window: positions, best value per (writes so far, position)."""

    index: np.ndarray
    layers: np.ndarray  # [c − 1, position]
    parents: np.ndarray

    @property
    def best(self) -> np.ndarray:
        return self.layers.min(axis=0)

    @property
    def best_layer(self) -> np.ndarray:
        return self.layers.argmin(axis=0)

    def close_into(self, closed: np.ndarray, origin: np.ndarray, s: int) -> None:
        best = self.best
        better = best < closed[self.index]
        closed[self.index[better]] = best[better]
        origin[self.index[better], 0] = s
        origin[self.index[better], 1] = np.arange(self.index.size)[better]


# -- shared buckets: relaxation ---------------------------------------------------------------


def k_write_curve(arrivals: Arrivals, horizon: float, k_max: int) -> np.ndarray:
    """``g[k]``: least total lag with ``k`` writes in [start, horizon] and no other rule.

    Characters not shown by the last of them are charged ``max(0, horizon − arrival)``: in any
    schedule whose first write after ``horizon`` comes later, they wait at least that long. So
    ``g[k]`` is a lower bound for every schedule that spends ``k`` writes by ``horizon``.
    Writes sit at arrival times (moving one earlier to the last arrival it shows keeps its
    characters), so the curve is exact for this relaxed problem.
    """
    times = np.asarray([t for t in arrivals.times if t <= horizon], dtype=float)
    points = np.unique(times)
    a, s = arrivals.cumulative(points)
    a_h, s_h = arrivals.cumulative(np.array([horizon]))
    tail = (a_h[0] - a) * horizon - (s_h[0] - s)  # after the last write, charged to horizon
    curve = np.full(k_max + 1, np.inf)
    curve[0] = a_h[0] * horizon - s_h[0]
    if points.size == 0:
        curve[:] = curve[0]
        return curve
    layer = a * points - s  # one write at point j
    pair = a[None, :] * points[None, :] - s[None, :] - a[:, None] * points[None, :] + s[:, None]
    upper = np.triu(np.ones((points.size, points.size), dtype=bool), k=1)
    pair = np.where(upper, pair, np.inf)
    for k in range(1, k_max + 1):
        curve[k] = min(curve[k - 1], float(np.min(layer + tail)))
        if k == k_max or k >= points.size:
            curve[k:] = curve[k]
            break
        layer = np.min(layer[:, None] + pair, axis=0)
    return curve


def max_writes_fixed(span_s: float, limit: int, window_s: float) -> int:
    """Most requests a fixed-window bucket takes within a closed span of ``span_s`` seconds."""
    return limit * (math.floor(span_s / window_s + 1e-9) + 1)


def max_writes_sliding(span_s: float, limit: int, window_s: float) -> int:
    """Most requests a sliding-window bucket (<= limit in any window_s) takes in ``span_s``."""
    return limit * (math.floor(span_s / window_s + 1e-9) + 1)


@dataclass(frozen=True)
class Stream:
    """One stream in a shared-bucket bound: its arrivals and writes that cost no bucket."""

    arrivals: Arrivals
    free_writes: int = 0  # e.g. continuation posts that carry text (a separate bucket)
    own_cap: Callable[[float], int] | None = None  # bucket only this stream uses, by span


def shared_bound(
    streams: Sequence[Stream],
    *,
    shared_cap: Callable[[float], int],
    horizons: Sequence[float],
) -> Bound:
    """A lower bound on the mean lag over all characters of ``streams`` sharing one bucket.

    For a horizon H, any joint schedule spends k_i bucket writes of stream i by H with
    Σ k_i <= shared_cap(H − first start) (and k_i <= own_cap), so the total lag is at least
    min over such k of Σ g_i(k_i + free_i; H). That minimum is computed exactly by a knapsack
    for few streams, and bounded from below by Lagrangian duality (valid for any multiplier)
    for many. The best bound over ``horizons`` is returned.
    """
    first = min(s.arrivals.start for s in streams)
    total_chars = sum(s.arrivals.total for s in streams)
    best = 0.0
    for horizon in horizons:
        cap = shared_cap(horizon - first)
        curves = []
        for stream in streams:
            own = cap if stream.own_cap is None else min(cap, stream.own_cap(horizon - first))
            raw = k_write_curve(stream.arrivals, horizon, own + stream.free_writes)
            curves.append(raw[stream.free_writes :])
        value = _knapsack(curves, cap) if len(curves) <= 8 else _lagrangian(curves, cap)
        best = max(best, value / total_chars)
    how = "knapsack" if len(streams) <= 8 else "Lagrangian dual"
    return Bound(best, f"relaxation: per-stream k-write curves, shared cap ({how})")


def minute_tier_bound(
    streams: Sequence[Arrivals],
    *,
    shared: int,
    free: Sequence[int] | None = None,
    final_shared: bool = False,
) -> Bound:
    """The least mean lag of answers that share ``shared`` writes of a per-minute tier.

    When the whole row spans less than the tier's minute, the tier limits only how many writes
    there are, never when. So the optimum is a knapsack over each answer's k-write curve with
    its horizon at its own last arrival (``g[k]`` counts the writes besides the final one,
    which sits at the last arrival at best; the curves are exact, see :func:`k_write_curve`).

    * Slack's native streaming: each answer's text goes out in one ``startStream``, appends
      drawn from the tier and one ``stopStream`` in a tier of its own: ``shared`` = appends +
      one start per answer, and the final is not drawn from it.
    * Post + update (``final_shared``): every write that shows text is a ``chat.update`` of
      the shared tier, the final one too, except ``free[i]`` continuation posts (another
      tier's, counted here as free: then the bound is a relaxation, not exact). An answer
      that spends ``u`` updates has ``u + free − 1`` writes besides its final.
    """
    free = [0] * len(streams) if free is None else list(free)
    curves = []
    for arrivals, extra in zip(streams, free, strict=True):
        shift = extra - (1 if final_shared else 0)
        raw = k_write_curve(arrivals, arrivals.last, shared + max(shift, 0))
        curve = np.full(shared + 1, np.inf)
        lo = max(0, -shift)
        curve[lo:] = raw[lo + shift : shared + 1 + shift]
        curves.append(curve)
    total = _knapsack(curves, shared)
    exact = "exact" if not any(free) else "relaxation (continuation posts free)"
    return Bound(
        total / sum(a.total for a in streams), f"{exact}: per-answer k-write curves, knapsack"
    )


def _knapsack(curves: list[np.ndarray], cap: int) -> float:
    best = np.zeros(cap + 1)  # best[k]: least total with k shared writes spent so far
    for curve in curves:
        nxt = np.full(cap + 1, np.inf)
        for k in range(min(cap, curve.size - 1) + 1):
            shifted = best[: cap + 1 - k] + curve[k]
            nxt[k:] = np.minimum(nxt[k:], shifted)
        best = nxt
    return float(np.min(best))


def _lagrangian(curves: list[np.ndarray], cap: int) -> float:
    """max over λ >= 0 of Σ_i min_k (g_i(k) + λk) − λ·cap: a lower bound by weak duality.

    The dual is concave and piecewise linear with breakpoints at the curves' marginal gains,
    so a ternary search over the sorted breakpoints finds its maximum.
    """
    gains = [-np.diff(c) for c in curves]
    candidates = np.unique(np.concatenate([[0.0], *[g[g > 0] for g in gains]]))

    def dual(lam: float) -> float:
        return sum(float(np.min(c + lam * np.arange(c.size))) for c in curves) - lam * cap

    lo, hi = 0, candidates.size - 1
    while hi - lo > 2:
        m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
        if dual(candidates[m1]) < dual(candidates[m2]):
            lo = m1 + 1
        else:
            hi = m2
    return max(dual(candidates[i]) for i in range(lo, hi + 1))


# -- shared fixed windows over time: a time-indexed Lagrangian ----------------------------------


@dataclass(frozen=True)
class SharedLimit:
    """A fixed-window bucket (``limit`` per ``window_s``) drawn on by some of the streams."""

    limit: int
    window_s: float
    members: tuple[int, ...]  # indices into the streams


def time_indexed_bound(
    streams: Sequence[Stream],
    limits: Sequence[SharedLimit],
    *,
    cell_s: float = 0.5,
    horizon_s: float = 20.0,
    iterations: int = 80,
    step: float = 10.0,
) -> Bound:
    """A lower bound on the mean lag of ``streams`` under shared fixed-window ``limits``.

    Constraints (valid for every schedule a fixed-window bucket accepts, whose windows open at
    its own writes, spaced at least ``window_s`` apart): on the cells ``[t0 + k·c, t0 +
    (k+1)·c)`` from the first start ``t0`` up to ``end`` = last arrival + ``horizon_s``,

    * prefix ``[t0, X)``: at most ``limit·⌈(X − first member start)/W⌉`` writes (windows
      starting in ``[first start, X)``);
    * any interval ``[A, B)`` of one or two windows' length: at most ``limit·(⌈(B − A)/W⌉ +
      1)`` (windows starting in ``(A − W, B)``).

    Writes after ``end`` are unconstrained. Pricing each constraint with a multiplier λ >= 0
    gives, for every λ, ``Σ_i min_schedule (lag_i + Σ price(write)) − Σ λ·cap`` <= the true
    optimum (weak duality). Each stream's minimum is exact: with prices constant on cells,
    a write that shows arrivals up to ``t`` sits either at ``t`` or at the first instant of a
    cheaper cell before the next arrival, so those points suffice; a dynamic programme over
    them (layered by ``free_writes``, which cost nothing) finds it. ``own_cap`` is ignored (a
    relaxation). ``iterations`` steps of projected subgradient ascent look for good λ; the
    best value seen is returned.
    """
    problem = _Priced(streams, limits, cell_s=cell_s, horizon_s=horizon_s)
    multipliers = np.zeros(problem.caps.size)
    best = 0.0
    step0 = problem.step_scale * step
    for it in range(iterations):
        value, counts = problem.solve(multipliers)
        dual = value - float(multipliers @ problem.caps)
        best = max(best, dual)
        slope = problem.slope(counts)
        slope = np.where((multipliers > 0) | (slope > 0), slope, 0.0)
        norm = float(np.linalg.norm(slope))
        if norm == 0.0:  # feasible and complementary: optimal
            break
        multipliers = np.maximum(0.0, multipliers + step0 / math.sqrt(it + 1) * slope / norm)
    method = f"time-indexed Lagrangian ({cell_s * 1000:.0f} ms cells, {iterations} steps)"
    return Bound(best / problem.total, method)


class _Priced:
    """Candidate write points and constraint rows for :func:`time_indexed_bound`."""

    def __init__(
        self,
        streams: Sequence[Stream],
        limits: Sequence[SharedLimit],
        *,
        cell_s: float,
        horizon_s: float,
    ) -> None:
        first = min(s.arrivals.start for s in streams)
        last = max(s.arrivals.last for s in streams)
        self.cells = cells = math.ceil((last + horizon_s - first) / cell_s)
        self.total = float(sum(s.arrivals.total for s in streams))
        self.members = [list(limit.members) for limit in limits]
        blocks = [_window_rows(limit, streams, first, cells, cell_s) for limit in limits]
        self.rows = [rows for rows, _ in blocks]  # per limit: [constraint, cell]
        self.caps = np.concatenate([caps for _, caps in blocks])
        edges = first + cell_s * np.arange(cells + 1)
        points = [
            np.unique(np.concatenate([s.arrivals.times, edges[edges > s.arrivals.start]]))
            for s in streams
        ]
        n, size = len(streams), max(p.size for p in points)
        at, shown, summed = np.zeros((n, size)), np.zeros((n, size)), np.zeros((n, size))
        self.pad = np.ones((n, size), dtype=bool)
        self.done = np.zeros((n, size), dtype=bool)  # the last arrival is shown
        self.cell = np.full((n, size), cells)  # index ``cells``: after the end, unpriced
        for i, (stream, x) in enumerate(zip(streams, points, strict=True)):
            a, s = stream.arrivals.cumulative(x)
            at[i, : x.size], self.pad[i, : x.size] = x, False
            shown[i, : x.size], summed[i, : x.size] = a, s
            shown[i, x.size :], summed[i, x.size :] = a[-1], s[-1]
            self.done[i, : x.size] = x >= stream.arrivals.last
            offsets = np.floor((x - first) / cell_s + 1e-9).astype(int)
            self.cell[i, : x.size] = np.minimum(offsets, cells)
        # total lag of the chars a write at v shows first: after none (source), after one at u
        self.source = np.where(self.pad, np.inf, shown * at - summed)
        self.pair = (shown[:, None, :] - shown[:, :, None]) * at[:, None, :] - (
            summed[:, None, :] - summed[:, :, None]
        )
        free = np.array([s.free_writes for s in streams])
        self.layers = int(free.max()) + 1
        self.allowed = np.arange(self.layers)[None, :] <= free[:, None]
        # a multiplier step of the order of one write's worth: a stream's characters times
        # the spacing the tightest limit allows
        self.step_scale = self.total / n * min(lim.window_s / lim.limit for lim in limits)

    def slope(self, counts: list[np.ndarray]) -> np.ndarray:
        """Each constraint's writes minus its cap: a subgradient of the dual."""
        used = [rows @ c for rows, c in zip(self.rows, counts, strict=True)]
        return np.concatenate(used) - self.caps

    def solve(self, multipliers: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """Each stream's least priced lag, summed, and its paid writes per limit and cell."""
        n, size = self.pad.shape
        per_cell = np.zeros((n, self.cells + 1))
        offset = 0
        for members, rows in zip(self.members, self.rows, strict=True):
            per_cell[members, : self.cells] += multipliers[offset : offset + len(rows)] @ rows
            offset += len(rows)
        price = np.where(self.pad, np.inf, np.take_along_axis(per_cell, self.cell, axis=1))
        value = np.full((n, self.layers, size), np.inf)
        parent = np.full((n, self.layers, size), -1)
        paid = np.zeros((n, self.layers, size), dtype=bool)
        for v in range(size):
            came = np.full((n, self.layers), np.inf)
            came_from = np.full((n, self.layers), -1)
            if v:
                reach = value[:, :, :v] + self.pair[:, None, :v, v]
                came_from = np.argmin(reach, axis=2)
                came = np.take_along_axis(reach, came_from[:, :, None], axis=2)[:, :, 0]
            source = self.source[:, v]
            # a paid write stays in its layer (layer 0 may start from nothing) ...
            bucket, bucket_from = came.copy(), came_from.copy()
            first = source < bucket[:, 0]
            bucket[:, 0] = np.where(first, source, bucket[:, 0])
            bucket_from[:, 0] = np.where(first, -1, bucket_from[:, 0])
            bucket += price[:, v, None]
            # ... a free write (a continuation post) moves one layer up
            free = np.full((n, self.layers), np.inf)
            free_from = np.full((n, self.layers), -1)
            if self.layers > 1:
                free[:, 1:], free_from[:, 1:] = came[:, :-1], came_from[:, :-1]
                first = source < free[:, 1]
                free[:, 1] = np.where(first, source, free[:, 1])
                free_from[:, 1] = np.where(first, -1, free_from[:, 1])
            pay = bucket <= free
            value[:, :, v] = np.where(self.allowed, np.where(pay, bucket, free), np.inf)
            parent[:, :, v] = np.where(pay, bucket_from, free_from)
            paid[:, :, v] = pay
        final = np.where(self.done[:, None, :], value, np.inf).reshape(n, -1)
        end = np.argmin(final, axis=1)
        streams = np.arange(n)
        total = float(final[streams, end].sum())
        layer, point = end // size, end % size
        writes = np.zeros((n, self.cells + 1))
        live = streams
        while live.size:
            here = (live, layer[live], point[live])
            bought = paid[here]
            np.add.at(writes, (live[bought], self.cell[live[bought], point[live[bought]]]), 1)
            layer[live] -= ~bought
            point[live] = parent[here]
            live = live[point[live] >= 0]
        return total, [writes[m, : self.cells].sum(axis=0) for m in self.members]


def _window_rows(
    limit: SharedLimit, streams: Sequence[Stream], first: float, cells: int, cell_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Prefix and one- and two-window interval rows over the cells, with their caps."""
    opened = min(streams[i].arrivals.start for i in limit.members)
    rows, caps = [], []
    for hi in range(1, cells + 1):
        row = np.zeros(cells)
        row[:hi] = 1.0
        rows.append(row)
        span = max(0.0, first + hi * cell_s - opened)
        caps.append(limit.limit * math.ceil(span / limit.window_s - 1e-9))
    for windows in (1, 2):
        length = max(1, round(windows * limit.window_s / cell_s))
        for lo in range(1, cells - length + 1):
            row = np.zeros(cells)
            row[lo : lo + length] = 1.0
            rows.append(row)
            caps.append(limit.limit * (math.ceil(length * cell_s / limit.window_s - 1e-9) + 1))
    return np.array(rows), np.array(caps, dtype=float)
