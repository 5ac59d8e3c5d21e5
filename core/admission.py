"""Admission: what may become a Voiceflow turn at all.

Checked by the bridge before a user's text reaches Voiceflow:

* allowlists of guilds/workspaces and channels (configuration; DMs are always allowed when
  no workspace allowlist excludes them);
* a per-user rate limit (``USER_RATE_LIMIT_PER_MINUTE``, off by default): a flooding user gets
  one polite reply per window and Voiceflow sees a bounded number of turns; other users are
  unaffected;
* input bounds: control characters are removed and messages longer than
  :data:`MAX_INPUT_CHARS` are refused with a clear reply instead of being sent.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.config import Settings

__all__ = [
    "MAX_INPUT_CHARS",
    "Admission",
    "Verdict",
    "clean_input",
    "is_allowed_place",
]

MAX_INPUT_CHARS = 4000
RATE_WINDOW_S = 60.0
TOO_LONG = "Your message is too long ({n:,} characters); please keep it under {max:,}."
TOO_FAST = "You're sending messages faster than I can answer — please wait a moment."
EMPTY = "I didn't catch any text in that message."

# C0/C1 control characters except tab and newline; also bidi overrides used to spoof text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_input(text: str) -> str:
    """The user's text without control characters; line endings normalized."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()


def is_allowed_place(
    settings: Settings, *, platform: str, workspace: str | None, channel: str, is_dm: bool
) -> bool:
    """Whether the bot may answer in this place (allowlists from configuration)."""
    allowed_workspaces = (
        settings.allowed_guilds if platform == "discord" else settings.allowed_workspaces
    )
    if allowed_workspaces and not is_dm and workspace not in allowed_workspaces:
        return False
    return is_dm or not settings.allowed_channels or channel in settings.allowed_channels


@dataclass(frozen=True)
class Verdict:
    """``text`` to send to Voiceflow, or ``reply`` to show instead (None: stay silent)."""

    text: str | None = None
    reply: str | None = None
    empty: bool = False  # nothing but a mention (or whitespace)


class Admission:
    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._recent: dict[str, collections.deque[float]] = {}
        self._warned: dict[str, float] = {}

    def check(self, user: str, text: str) -> Verdict:
        """Admit or refuse one message from ``user`` (a platform-qualified user id)."""
        if not self._take(user):
            return Verdict(reply=self._warn_once(user))
        cleaned = clean_input(text)
        if len(cleaned) > MAX_INPUT_CHARS:
            return Verdict(reply=TOO_LONG.format(n=len(cleaned), max=MAX_INPUT_CHARS))
        if not cleaned:
            return Verdict(reply=EMPTY, empty=True)
        return Verdict(text=cleaned)

    def _take(self, user: str) -> bool:
        if self._per_minute <= 0:
            return True  # no limit configured
        now = self._clock()
        recent = self._recent.setdefault(user, collections.deque())
        while recent and recent[0] <= now - RATE_WINDOW_S:
            recent.popleft()
        if len(recent) >= self._per_minute:
            return False
        recent.append(now)
        if len(self._recent) > 10_000:  # forget idle users; bounded memory under abuse
            self._recent = {u: q for u, q in self._recent.items() if q}
        return True

    def _warn_once(self, user: str) -> str | None:
        now = self._clock()
        if now - self._warned.get(user, -RATE_WINDOW_S) < RATE_WINDOW_S:
            return None
        self._warned[user] = now
        return TOO_FAST
