"""The results table (Markdown) and the chart (PNG)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.harness import JobResult
from bench.lower_bound import Arrivals, Bound, schedule_cost
from bench.measure import _char_lags, _p95

__all__ = ["Row", "chart", "table"]


@dataclass
class Row:
    result: JobResult
    bound: Bound | None

    @property
    def lags(self) -> np.ndarray:
        parts = [_char_lags(a.arrivals, a.visible, a.chars) for a in self.result.answers]
        return np.concatenate(parts) if parts else np.array([])

    def cells(self) -> list[str]:
        r = self.result
        if r.error is not None:
            return [r.strategy, "error: " + r.error.strip().splitlines()[-1][:80]] + [""] * 10
        lags = self.lags
        n = len(r.answers)
        mean = float(np.mean(lags))
        bound = self.bound.mean_lag_s if self.bound else math.nan
        first = [a.first_visible_s for a in r.answers]
        return [
            r.strategy,
            f"{np.mean(first):.2f} / {np.max(first):.2f}",
            f"{mean:.2f}",
            f"{_p95(lags):.2f}",
            f"{bound:.2f}",
            f"{mean / bound:.2f}×" if bound > 0 else "–",
            f"{np.mean([a.edits for a in r.answers]):.1f}",
            f"{np.mean([a.writes for a in r.answers]):.1f}",
            str(r.count_429),
            f"{sum(a.exact for a in r.answers)}/{n}",
            f"{1000 * r.bridge_cpu_s / max(1, r.chars) * 1000:.0f}",
            f"{r.rss_per_stream / 1024:.0f} ({r.peak_live})",
        ]


HEADER = [
    "strategy",
    "first text s (mean / max)",
    "mean lag s",
    "p95 lag s",
    "lower bound s",
    "ratio",
    "edits / answer",
    "API writes / answer",
    "429s",
    "final exact",
    "bridge CPU ms / 1k chars",
    "RSS KiB / stream (peak live)",
]


def table(sections: list[tuple[str, str, list[Row]]]) -> str:
    lines: list[str] = []
    for title, note, rows in sections:
        lines += [f"### {title}", "", note, ""]
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("|" + "---|" * len(HEADER))
        lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
        methods = sorted({row.bound.method for row in rows if row.bound is not None})
        lines += [""] + [f"Bound: {m}." for m in methods] + [""]
    return "\n".join(lines)


def chart(
    rows: list[Row],
    bound_arrivals: Arrivals,
    bound: Bound,
    path: Path,
    *,
    reference: Sequence[float] = (),
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6))
    arr = bound_arrivals
    times = np.array(arr.times) - arr.start
    ax.step(times, np.cumsum(arr.chars), where="post", color="black", lw=1, ls=":",
            label="arrived from Voiceflow")  # fmt: skip
    if bound.schedule:
        sched = np.array(bound.schedule)
        reach, _ = arr.cumulative(sched)
        xs = np.concatenate([[0.0], sched - arr.start])
        ys = np.concatenate([[0.0], reach])
        ax.step(xs, ys, where="post", color="black", lw=2,
                label=f"lower-bound schedule (mean lag {bound.mean_lag_s:.2f} s)")  # fmt: skip
    if reference:
        reach, _ = arr.cumulative(np.array(reference))
        xs = np.concatenate([[0.0], np.array(reference) - arr.start])
        ys = np.concatenate([[0.0], reach])
        mean = schedule_cost(arr, reference) / arr.total
        ax.step(xs, ys, where="post", color="grey", lw=2, ls="--",
                label=f"online reference (mean lag {mean:.2f} s)")  # fmt: skip
    for row in rows:
        if row.result.error is not None or not row.result.answers:
            continue
        answer = row.result.answers[0]
        xs = np.array([0.0] + [t - answer.start for t, _ in answer.visible])
        ys = np.maximum.accumulate(np.array([0] + [v for _, v in answer.visible]))
        ax.step(xs, ys, where="post", lw=1.5,
                label=f"{row.result.strategy} (mean lag {answer.mean_lag_s:.2f} s)")  # fmt: skip
    ax.set_xlabel("seconds since completion start")
    ax.set_ylabel("characters visible")
    ax.set_title("One Discord answer (5 edits / 5 s): visible characters over time")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
