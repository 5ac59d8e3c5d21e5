"""Discord's size limits and rate-limit windows as the fake enforces them (docs/discord.md §1, §2).

Rate windows are FIXED windows that open at the first request after the previous window expired,
which matches how Discord's `X-RateLimit-Reset` stays put while `Remaining` counts down. This is a
behavioural model, not Discord's algorithm.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

MAX_CONTENT_CHARS = 2000
MAX_EMBEDS = 10
MAX_EMBED_DESCRIPTION_CHARS = 4096
MAX_EMBED_TITLE_CHARS = 256
MAX_EMBED_TOTAL_CHARS = 6000
MAX_ACTION_ROWS = 5
MAX_ROW_COMPONENTS = 5
MAX_CUSTOM_ID_CHARS = 100
FLAG_COMPONENTS_V2 = 1 << 15

Errors = dict[str, Any]


class FormError(Exception):
    """A Discord JSON error body (status, code, message, optional `errors` tree)."""

    def __init__(self, status: int, code: int, message: str, errors: Errors | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"code": code, "message": message}
        if errors is not None:
            self.body["errors"] = errors


def _leaf(code: str, message: str) -> Errors:
    return {"_errors": [{"code": code, "message": message}]}


def _nest(path: list[str], leaf: Errors) -> Errors:
    for key in reversed(path):
        leaf = {key: leaf}
    return leaf


def invalid_form(path: list[str], code: str, message: str) -> FormError:
    return FormError(400, 50035, "Invalid Form Body", _nest(path, _leaf(code, message)))


def _too_long(path: list[str], limit: int) -> FormError:
    return invalid_form(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _bad_length(path: list[str], low: int, high: int) -> FormError:
    message = f"Must be between {low} and {high} in length."
    return invalid_form(path, "BASE_TYPE_BAD_LENGTH", message)


def validate_message(body: dict[str, Any], *, existing: dict[str, Any] | None = None) -> None:
    """Raise FormError like Discord for an over-limit create/edit body or an empty result.

    `existing` is the message state before an edit (fields absent from the PATCH are kept).
    """
    content = body.get("content")
    if isinstance(content, str) and len(content) > MAX_CONTENT_CHARS:
        raise _too_long(["content"], MAX_CONTENT_CHARS)
    _validate_embeds(body.get("embeds") or [])
    flags = int(body.get("flags") or (existing or {}).get("flags") or 0)
    if not flags & FLAG_COMPONENTS_V2:
        _validate_rows(body.get("components") or [])
    merged = {**(existing or {}), **body}  # an explicit null clears the field on PATCH
    # Discord trims content before its emptiness check: whitespace alone is empty too.
    if not (
        str(merged.get("content") or "").strip() or merged.get("embeds") or merged.get("components")
    ):
        raise FormError(400, 50006, "Cannot send an empty message")


def _validate_embeds(embeds: list[dict[str, Any]]) -> None:
    if len(embeds) > MAX_EMBEDS:
        raise _bad_length(["embeds"], 0, MAX_EMBEDS)
    for i, embed in enumerate(embeds):
        if len(embed.get("description") or "") > MAX_EMBED_DESCRIPTION_CHARS:
            raise _too_long(["embeds", str(i), "description"], MAX_EMBED_DESCRIPTION_CHARS)
        if len(embed.get("title") or "") > MAX_EMBED_TITLE_CHARS:
            raise _too_long(["embeds", str(i), "title"], MAX_EMBED_TITLE_CHARS)
    total = sum(len(e.get("title") or "") + len(e.get("description") or "") for e in embeds)
    if total > MAX_EMBED_TOTAL_CHARS:
        raise invalid_form(
            ["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
        )


def _validate_rows(rows: list[dict[str, Any]]) -> None:
    if len(rows) > MAX_ACTION_ROWS:
        raise _bad_length(["components"], 1, MAX_ACTION_ROWS)
    for r, row in enumerate(rows):
        items = row.get("components") or []
        if len(items) > MAX_ROW_COMPONENTS:
            raise _bad_length(["components", str(r), "components"], 1, MAX_ROW_COMPONENTS)
        for c, item in enumerate(items):
            custom_id = item.get("custom_id")
            if custom_id is not None and not 1 <= len(custom_id) <= MAX_CUSTOM_ID_CHARS:
                path = ["components", str(r), "components", str(c), "custom_id"]
                raise _bad_length(path, 1, MAX_CUSTOM_ID_CHARS)


def ceil_ms(seconds: float) -> float:
    """Round up to whole milliseconds: a client sleeping this long never arrives early."""
    return math.ceil(max(seconds, 0.0) * 1000) / 1000


@dataclass
class FixedWindow:
    """`limit` requests per `window_s`, the window opening at the first request (loop time)."""

    limit: int
    window_s: float
    opened: float | None = None
    used: int = 0

    def take(self, now: float) -> bool:
        """Consume one request if the window has room; False means the caller gets a 429."""
        if self.opened is None or now >= self.opened + self.window_s:
            self.opened, self.used = now, 0
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def reset_after(self, now: float) -> float:
        opened = now if self.opened is None else self.opened
        return ceil_ms(opened + self.window_s - now)

    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


def bucket_hash(group: str) -> str:
    """Stable per-route hash, like Discord's X-RateLimit-Bucket (channels partition it)."""
    return hashlib.sha1(group.encode()).hexdigest()[:16]


def bucket_headers(window: FixedWindow, group: str, now: float) -> dict[str, str]:
    reset_after = window.reset_after(now)
    return {
        "X-RateLimit-Limit": str(window.limit),
        "X-RateLimit-Remaining": str(window.remaining()),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket_hash(group),
    }


def too_many(retry_after: float, *, is_global: bool) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body of a Discord 429 (with `Via`, so discord.py retries it)."""
    headers = {
        "Retry-After": str(math.ceil(retry_after)),
        "X-RateLimit-Scope": "global" if is_global else "user",
        "Via": "1.1 google",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
    }
    return headers, body
