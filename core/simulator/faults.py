"""Switchable faults of the simulator and the error responses of docs/voiceflow-api.md §6.

All faults are off by default (``noise`` — the debug/path/block/flow traces the real stream
carries — is on). Tests flip fields between requests; ``vf-bridge simulator --fault NAME[=VALUE]``
sets them for the whole run (:func:`parse_fault`); nothing is read at import time.
"""

from __future__ import annotations

import collections
import time
import typing
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta

from aiohttp import web

from core.simulator.wire import EndData, WireFormat, compact_json

__all__ = ["Faults", "error_response", "parse_fault"]

RATE_LIMIT_PER_MINUTE = 500  # general-runtime's OSS default per Authorization value


@dataclass
class Faults:
    """What the simulator does wrong (or differently) on purpose."""

    # Wire variants (§4.1).
    end_data: EndData = "none"
    send_retry_line: bool = False
    send_keepalives: bool = False
    omit_space_after_colon: bool = False
    use_crlf: bool = False
    use_bare_cr: bool = False
    put_event_first: bool = False
    send_bom: bool = False  # a UTF-8 byte order mark before the first byte of the stream
    batch_events: bool = False  # the whole turn in one write
    split_writes_bytes: int = 0  # > 0: every event in writes of this many bytes
    # Mid-stream failures (§10.13).
    close_after_events: int | None = None  # stop after K events, no `end`
    abort_on_close: bool = False  # with close_after_events: reset the connection instead of EOF
    stall_after_events: int | None = None
    stall_s: float = 0.0
    internal_error: bool = False  # `debug` "An internal error occurred." then `end`
    internal_error_after: int = 2  # with internal_error: the traces sent before it
    non_json_data: bool = False  # a `trace` event whose data is not JSON, first in the turn
    unknown_trace: bool = False  # a trace of an unknown type, first in the turn
    malformed_lines: bool = False  # junk SSE lines and trace events of the wrong shape, first
    noise: bool = True  # debug/path/block/flow traces interleaved
    # Pre-stream failures (§6).
    production_unpublished: bool = False  # environment=production -> 404
    retry_after_s: int = 1
    pending_statuses: collections.deque[int] = field(default_factory=collections.deque)

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests (any route) with ``status`` instead."""
        self.pending_statuses.extend([status] * times)

    def wire_format(self) -> WireFormat:
        return WireFormat(
            end_data=self.end_data,
            has_space_after_colon=not self.omit_space_after_colon,
            uses_crlf=self.use_crlf,
            uses_bare_cr=self.use_bare_cr,
            puts_event_first=self.put_event_first,
        )


_TRUE, _FALSE = ("", "1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_fault(spec: str) -> tuple[str, object]:
    """``NAME`` (a switch turned on) or ``NAME=VALUE`` → the :class:`Faults` field and its value.

    Raises ValueError with a one-line reason (an unknown name lists the known ones).
    """
    name, _, text = spec.partition("=")
    hints = typing.get_type_hints(Faults)
    known = [f.name for f in fields(Faults) if f.name != "pending_statuses"]
    if name not in known:
        raise ValueError(f"unknown fault {name!r}; the faults are: {', '.join(known)}")
    kind = hints[name]
    text = text.strip().lower() if kind is bool else text.strip()
    if kind is bool:
        if text not in _TRUE + _FALSE:
            raise ValueError(f"{name} is a switch: give no value, or true or false")
        return name, text in _TRUE
    choices = typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else ()
    if choices:
        if text not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}")
        return name, text
    number = float if kind is float else int  # the rest are counts (int, int | None) and seconds
    try:
        value = number(text)
    except ValueError:
        what = "a number" if number is float else "a whole number"
        raise ValueError(f"{name} needs {what}, e.g. {name}=2") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return name, value


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_DEFAULT_DATA = {
    401: "Auth Key Required",
    404: "Model not found. Ensure project is properly rendered.",
}


def backend_utils_body(status: int, data: str) -> str:
    """The ``responseBuilder`` error body of voiceflow/backend-utils."""
    now = datetime.now(UTC)
    body = {
        "code": status,
        "status": _REASONS.get(status, "Error"),
        "dateTime": now.isoformat(),
        "timestamp": int(time.time() * 1000),
        "data": data,
    }
    return compact_json(body)


def verror_body(message: str) -> str:
    return compact_json({"name": "verror", "message": message, "requestID": "sim0req0id"})


def error_response(status: int, data: str | None = None, *, retry_after_s: int = 1) -> web.Response:
    """A pre-stream error as the runtime sends it: VError for 400, text for 408, else JSON."""
    if status == 408:
        return web.Response(status=408, text="response timeout", content_type="text/plain")
    if status == 400:
        message = data or "Voiceflow project was not published to production"
        return _json(400, verror_body(message))
    text = data or _DEFAULT_DATA.get(status) or _REASONS.get(status, "Error")
    response = _json(status, backend_utils_body(status, text))
    if status == 429:
        reset = datetime.now(UTC) + timedelta(seconds=retry_after_s)
        response.headers["Retry-After"] = str(retry_after_s)
        response.headers["X-RateLimit-Limit"] = str(RATE_LIMIT_PER_MINUTE)
        response.headers["X-RateLimit-Remaining"] = "0"
        response.headers["X-RateLimit-Reset"] = reset.isoformat()
    return response


def _json(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="application/json")
