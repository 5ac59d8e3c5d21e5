"""An ideal online pacer: what even spacing could reach for one stream, with no overhead.

The lower bound (:mod:`bench.lower_bound`) knows the whole arrival timeline in advance: it
writes right after each burst, skips pauses and spends the last window's writes in the
answer's final second. An online pacer knows only what has arrived. :func:`even_pacer` scores,
on the same arrivals and the same fixed-window bucket, the policy ours follows — one interim
write per ``window_s / limit`` while there is unseen text, a slot kept for the final write,
the final write as soon as the answer ends — but with none of a real pacer's costs: zero
request latency and no word hold-back. Its ratio to the bound is the part of the gap that
comes from not knowing the future; ours minus it is what latency and whole-word interim text
cost.
"""

from __future__ import annotations

from bench.lower_bound import Arrivals, schedule_cost
from tests.fakes.discord_limits import FixedWindow

__all__ = ["even_pacer", "even_pacer_writes"]


def _free_at(window: FixedWindow, t: float, *, keep: int) -> float:
    """The earliest time from ``t`` at which a write leaves ``keep`` slots of ``window`` unused."""
    if window.opened is None or t >= window.opened + window.window_s:
        return t
    return t if window.used < window.limit - keep else window.opened + window.window_s


def even_pacer(arrivals: Arrivals, *, limit: int, window_s: float) -> float:
    """Mean lag (s) of the ideal even pacer on one stream alone in a fixed-window bucket."""
    writes = even_pacer_writes(arrivals, limit=limit, window_s=window_s)
    return schedule_cost(arrivals, writes) / arrivals.total


def even_pacer_writes(arrivals: Arrivals, *, limit: int, window_s: float) -> list[float]:
    """The write times of the ideal even pacer (see the module docstring)."""
    spacing = window_s / limit
    window = FixedWindow(limit, window_s)  # the fake Discord's own bucket model
    times, end = arrivals.times, arrivals.last
    writes: list[float] = []
    shown = 0  # arrivals covered by the writes so far
    while shown < len(times):
        earliest = max(times[shown], writes[-1] + spacing if writes else times[shown])
        if earliest >= end:  # the answer has ended: the final write, unspaced, any slot
            t = _free_at(window, max(end, times[shown]), keep=0)
        else:  # an interim write leaves the last slot of its window for the final one,
            t = _free_at(window, earliest, keep=1)  # unless the window ends within a spacing
            if t > earliest and t - earliest <= spacing:  # t is then the window's end
                t = _free_at(window, earliest, keep=0)
            if t >= end:
                t = _free_at(window, end, keep=0)
        taken = window.take(t)
        assert taken, t  # _free_at chose a time the window admits
        writes.append(t)
        while shown < len(times) and times[shown] <= t:
            shown += 1
    return writes
