"""Slack's rate limits as shared budgets (docs/slack.md §1, §7 "rate-limit storms").

Tiers are per method, per workspace, per app — so every stream in a workspace draws from the
same :class:`~core.budget.RateBudget`, never one per message:

* ``chat.update`` (Tier 3): ~50/min for the whole workspace;
* ``chat.startStream`` + ``chat.stopStream`` (Tier 2): ~20/min together, split evenly: every
  start implies one stop later, so starts get 10/min and stops the other 10 — a stream that
  started can always be stopped. Both are spent as finals (no spacing): five mentions at once
  may all start natively; the eleventh in a minute falls back to post + update;
* ``chat.appendStream`` (Tier 4): ~100/min;
* per-minute windows are longer than most answers, so ``chat.update`` and ``appendStream``
  burst (``burst_s``): a quiet workspace lets one answer write several times a second, and
  the pace falls as the minute fills — five answers at once share what is left;
* ``chat.postMessage``: ~1/s per channel with short bursts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.budget import RateBudget

__all__ = ["SlackBudgets", "WorkspaceBudgets"]

MINUTE_S = 60.0
UPDATES_PER_MIN = 50
START_STOP_PER_MIN = 20
STARTS_PER_MIN = STOPS_PER_MIN = START_STOP_PER_MIN // 2
APPENDS_PER_MIN = 100
#: Interim writes spread the window's free slots over this many seconds (RateBudget.burst_s).
BURST_S = 15.0
#: chat.postMessage: a burst of this many, then one per second, per channel.
POST_BURST = 3
POST_INTERVAL_S = 1.0
#: A channel's post budget is forgotten after this long unused, checked every FORGET_EVERY.
FORGET_IDLE_S = 2 * 3600.0
FORGET_EVERY = 1_000


@dataclass
class WorkspaceBudgets:
    team_id: str
    update: RateBudget = field(init=False)
    start: RateBudget = field(init=False)
    stop: RateBudget = field(init=False)
    append: RateBudget = field(init=False)
    _posts: dict[str, RateBudget] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.update = RateBudget(
            UPDATES_PER_MIN, MINUTE_S, burst_s=BURST_S, name=f"{self.team_id} chat.update"
        )
        self.start = RateBudget(
            STARTS_PER_MIN, MINUTE_S, reserve=0, name=f"{self.team_id} chat.startStream"
        )
        self.stop = RateBudget(
            STOPS_PER_MIN, MINUTE_S, reserve=0, name=f"{self.team_id} chat.stopStream"
        )
        self.append = RateBudget(
            APPENDS_PER_MIN, MINUTE_S, burst_s=BURST_S, name=f"{self.team_id} appendStream"
        )

    def post(self, channel: str) -> RateBudget:
        """The ``chat.postMessage`` budget of one channel (shared by every turn posting there)."""
        budget = self._posts.get(channel)
        if budget is None:
            budget = RateBudget(
                POST_BURST, POST_BURST * POST_INTERVAL_S, name=f"{self.team_id}/{channel} post"
            )
            self._posts[channel] = budget
            if len(self._posts) % FORGET_EVERY == 0:
                self._posts = {
                    c: b for c, b in self._posts.items() if not b.idle_for(FORGET_IDLE_S)
                }
        return budget


@dataclass
class SlackBudgets:
    """Every workspace's budgets, created on first use."""

    _teams: dict[str, WorkspaceBudgets] = field(default_factory=dict)

    def workspace(self, team_id: str) -> WorkspaceBudgets:
        found = self._teams.get(team_id)
        if found is None:
            found = self._teams[team_id] = WorkspaceBudgets(team_id)
        return found
