"""Records and rate-limit primitives shared by the fake Slack server (`tests/fakes/slack.py`).

Limits follow docs/slack.md §1–§4; every clock value comes from the fake's injected clock so
tests can move time instead of sleeping.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MARKDOWN_MAX_CHARS",
    "MAX_BLOCKS",
    "POST_MAX_CHARS",
    "RATE_WINDOW_S",
    "UPDATE_MAX_CHARS",
    "Call",
    "FakeMessage",
    "SlackError",
    "SlidingWindow",
    "TokenBucket",
    "retry_after_header",
]

UPDATE_MAX_CHARS = 4_000  # chat.update `text`, else msg_too_long
POST_MAX_CHARS = 40_000  # chat.postMessage `text`, truncated above with a warning
MARKDOWN_MAX_CHARS = 12_000  # `markdown_text` per call
MAX_BLOCKS = 50
RATE_WINDOW_S = 60.0  # Slack tiers are "per minute"
#: What Slack notifies people for: broadcasts, user groups, users, and (in markdown) the bare
#: words @channel/@here/@everyone, also inside emphasis (`_@here_`, `__@channel__`).
PING = re.compile(
    r"<!(?:channel|here|everyone|subteam\^\w+)(?:\|[^>]*)?>|<@[UW]\w+(?:\|[^>]*)?>"
    r"|(?<![^\W_]|@)@(?:channel|here|everyone)(?![^\W_])",
    re.IGNORECASE,
)


class SlackError(Exception):
    """A Web API failure the fake answers with `{"ok": false, "error": ...}`."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        retry_after: float | None = None,
        messages: list[str] | None = None,
    ) -> None:
        super().__init__(error, *(messages or []))
        self.error = error
        self.status = status
        self.retry_after = retry_after
        self.messages = messages or []  # Slack's `response_metadata.messages` (invalid_blocks)


@dataclass
class Call:
    """One Web API request as the fake saw it."""

    method: str
    args: dict[str, Any]
    token: str | None
    t: float
    ok: bool = True
    error: str | None = None
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeMessage:
    """A message the bot wrote; `history` holds the visible text after each change."""

    channel: str
    ts: str
    text: str = ""
    markdown_text: str | None = None
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    user: str = ""
    bot_id: str = ""
    streaming: bool = False
    stream_started_at: float | None = None
    stream_chunks: list[dict[str, Any]] = field(default_factory=list)
    stopped_by_user: bool = False
    deleted: bool = False
    ephemeral_user: str | None = None
    history: list[str] = field(default_factory=list)

    @property
    def visible_text(self) -> str:
        if self.deleted:
            return ""
        if self.markdown_text is not None:
            return self.markdown_text
        if self.text:
            return self.text
        return "".join(_block_texts(self.blocks or []))

    @property
    def pings(self) -> list[str]:
        """The mentions in this message Slack would notify someone for."""
        texts = [self.visible_text, *_block_texts(self.blocks or [])]
        return [m.group(0) for text in texts for m in PING.finditer(text)]

    def snapshot(self) -> None:
        self.history.append(self.visible_text)


def _block_texts(node: Any) -> list[str]:
    if isinstance(node, list):
        return [t for item in node for t in _block_texts(item)]
    if isinstance(node, dict):
        text = node.get("text")
        if isinstance(text, str):
            return [text]
        return [t for value in node.values() for t in _block_texts(value)]
    return []


class SlidingWindow:
    """At most `limit` requests in any `window_s` span (Slack's per-minute tiers)."""

    def __init__(self, limit: int, window_s: float = RATE_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()

    def acquire(self, now: float) -> float | None:
        """Take a slot and return None, or return seconds until the oldest slot frees."""
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return self._times[0] + self.window_s - now
        self._times.append(now)
        return None


class TokenBucket:
    """`rate_per_s` sustained with bursts of `burst` (chat.postMessage per channel)."""

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def acquire(self, now: float) -> float | None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
        self._updated = now
        if self._tokens < 1.0:
            return (1.0 - self._tokens) / self.rate_per_s
        self._tokens -= 1.0
        return None


def retry_after_header(seconds: float) -> str:
    # Slack sends whole seconds and slack_sdk parses the header with int(); never promise 0.
    return str(max(1, math.ceil(seconds - 1e-9)))
