"""From what the fakes recorded to per-answer figures: visibility over time, lag, writes.

Visibility is reconstructed from the fake's own request log, identically for every strategy:
after each write the fake applied (stamped on arrival, the monotonic clock), the answer's
messages are read in order and the visible source is the longest prefix of the answer that
they show (a reopened code fence at the start of a continuation message is decoration; a
cursor or an interim closer simply ends the match). A character is visible from the first
write after which the prefix covers it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["AnswerResult", "MessageLog", "answer_result"]

_FENCE_CLOSER = re.compile(r"^\n?(```|~~~)\s*$")


@dataclass
class MessageLog:
    """One answer's messages in order, and every content they had: (time, message, text)."""

    order: list[str] = field(default_factory=list)
    events: list[tuple[float, str, str]] = field(default_factory=list)
    writes: int = 0
    edits: int = 0

    def record(self, t: float, message: str, text: str, *, is_edit: bool) -> None:
        if message not in self.order:
            self.order.append(message)
        self.events.append((t, message, text))
        self.writes += 1
        self.edits += is_edit


@dataclass
class AnswerResult:
    key: str
    chars: int
    start: float
    arrivals: list[tuple[float, int]]  # (simulator write time, chars)
    visible: list[tuple[float, int]]  # (fake time, source chars visible)
    first_visible_s: float
    mean_lag_s: float
    p95_lag_s: float
    writes: int
    edits: int
    exact: bool


def _strip_reopened(shown: str, source_rest: str) -> str:
    if shown.startswith(("```", "~~~")) and not source_rest.startswith(shown.partition("\n")[0]):
        return shown.partition("\n")[2]
    return shown


def _common(a: str, b: str) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # binary search on the longest equal prefix
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _visible(source: str, order: list[str], contents: dict[str, str]) -> tuple[int, bool]:
    """(source chars shown as a prefix, whether the messages show exactly the source)."""
    offset, exact = 0, True
    for message in order:
        if message not in contents:
            return offset, False
        shown = _strip_reopened(contents[message], source[offset:])
        matched = _common(shown, source[offset:])
        tail = shown[matched:]
        offset += matched
        if tail and _FENCE_CLOSER.match(tail) is None:
            return offset, False  # a cursor or interim closer: the growing message ends here
    return offset, exact and offset == len(source)


def answer_result(
    key: str, source: str, start: float, arrivals: list[tuple[float, int]], log: MessageLog
) -> AnswerResult:
    contents: dict[str, str] = {}
    visible: list[tuple[float, int]] = []
    exact = False
    for t, message, text in sorted(log.events, key=lambda e: e[0]):
        contents[message] = text
        shown, exact = _visible(source, log.order, contents)
        visible.append((t, shown))
    lags = _char_lags(arrivals, visible, len(source))
    first = next((t for t, v in visible if v > 0), math.inf)
    return AnswerResult(
        key=key,
        chars=len(source),
        start=start,
        arrivals=arrivals,
        visible=visible,
        first_visible_s=first - start,
        mean_lag_s=float(np.mean(lags)) if lags.size else math.inf,
        p95_lag_s=_p95(lags),
        writes=log.writes,
        edits=log.edits,
        exact=exact and bool(np.all(np.isfinite(lags))),
    )


def _p95(lags: np.ndarray) -> float:
    """The 95th percentile; inf when any character never became visible (a wrong answer)."""
    return float(np.percentile(lags, 95)) if lags.size and np.all(np.isfinite(lags)) else math.inf


def _char_lags(
    arrivals: list[tuple[float, int]], visible: list[tuple[float, int]], total: int
) -> np.ndarray:
    """Per character: first time the visible prefix covered it, minus its arrival."""
    if not arrivals or not visible:
        return np.full(total, np.inf)
    arrived = np.repeat([t for t, _ in arrivals], [n for _, n in arrivals])
    times = np.array([t for t, _ in visible])
    reach = np.maximum.accumulate(np.array([v for _, v in visible]))
    index = np.searchsorted(reach, np.arange(1, arrived.size + 1), side="left")
    seen = np.where(index < times.size, times[np.minimum(index, times.size - 1)], np.inf)
    return seen - arrived


def discord_logs(requests: list[Any], messages: dict[str, Any]) -> dict[str, MessageLog]:
    """Per bot message id: the create and edits the fake applied, keyed by message id."""
    by_nonce = {m.nonce: m.id for m in messages.values() if m.nonce}
    logs: dict[str, MessageLog] = {}
    for r in requests:
        if r.status != 200 or not isinstance(r.json, dict) or "content" not in r.json:
            continue
        if r.route == "POST /channels/{id}/messages":
            mid = by_nonce.get(r.json.get("nonce"))
        elif r.route == "PATCH /channels/{id}/messages/{mid}":
            mid = r.path.rstrip("/").rsplit("/", 1)[-1]
        else:
            continue
        if mid is not None:
            logs.setdefault(mid, MessageLog()).record(
                r.t, mid, str(r.json["content"] or ""), is_edit=r.method == "PATCH"
            )
    return logs


def merge(logs: list[MessageLog]) -> MessageLog:
    merged = MessageLog()
    for log in logs:
        merged.order += log.order
        merged.events += log.events
        merged.writes += log.writes
        merged.edits += log.edits
    return merged


_WRITES = {
    "chat.postMessage",
    "chat.update",
    "chat.delete",
    "chat.startStream",
    "chat.appendStream",
    "chat.stopStream",
}


def slack_logs(calls: list[Any]) -> dict[tuple[str, str], MessageLog]:
    """Per (channel, thread_ts): every message write the fake applied, in order."""
    thread_of: dict[str, tuple[str, str]] = {}
    text_of: dict[str, str] = {}
    logs: dict[tuple[str, str], MessageLog] = {}
    for call in calls:
        if call.method not in _WRITES or not call.ok:
            continue
        args = call.args
        channel = str(args.get("channel"))
        if call.method in ("chat.postMessage", "chat.startStream"):
            ts = str(call.response.get("ts"))
            thread_of[ts] = (channel, str(args.get("thread_ts") or ts))
        else:
            ts = str(args.get("ts"))
        place = thread_of.get(ts)
        if place is None:
            continue
        if call.method in ("chat.appendStream", "chat.stopStream"):
            text_of[ts] = text_of.get(ts, "") + _stream_text(args)
        elif call.method == "chat.delete":
            text_of[ts] = ""
        elif call.method == "chat.startStream":
            text_of[ts] = _stream_text(args)
        else:
            text_of[ts] = _message_text(args)
        is_edit = call.method in ("chat.update", "chat.appendStream", "chat.stopStream")
        logs.setdefault(place, MessageLog()).record(call.t, ts, text_of[ts], is_edit=is_edit)
    return logs


def _stream_text(args: dict[str, Any]) -> str:
    if args.get("markdown_text") is not None:
        return str(args["markdown_text"])
    chunks = args.get("chunks") or []
    return "".join(str(c.get("text", "")) for c in chunks if c.get("type") == "markdown_text")


def _message_text(args: dict[str, Any]) -> str:
    if args.get("markdown_text") is not None:
        return str(args["markdown_text"])
    for block in args.get("blocks") or []:
        if isinstance(block, dict) and block.get("type") == "markdown":
            return str(block.get("text", ""))
    return str(args.get("text") or "")
