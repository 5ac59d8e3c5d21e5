"""SSE encoding for the simulator, with the wire variants of docs/voiceflow-api.md §4.1.

Every function returns bytes ready for one ``StreamResponse.write``. The default is the
documented form (``field: value``, ``\\n`` line endings, a data-less ``end``); a
:class:`WireFormat` switches the variants a client must tolerate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "EndData",
    "WireFormat",
    "compact_json",
    "encode_comment",
    "encode_end",
    "encode_event",
    "encode_retry",
    "encode_trace",
    "split_bytes",
]

EndData = Literal["none", "empty_object", "legacy"]

# The `end` event's data line in each mode: none (v2 docs), `{}` (v4 cookbook), legacy v2beta1.
_END_DATA: dict[EndData, str | None] = {
    "none": None,
    "empty_object": "{}",
    "legacy": '{"type":"end"}',
}


@dataclass(frozen=True)
class WireFormat:
    """How events are spelled on the wire."""

    end_data: EndData = "none"
    has_space_after_colon: bool = True
    uses_crlf: bool = False
    uses_bare_cr: bool = False  # the old Mac line ending, also valid SSE
    puts_event_first: bool = False  # `event:` before `id:`, as the docs page prints it

    @property
    def newline(self) -> str:
        if self.uses_bare_cr:
            return "\r"
        return "\r\n" if self.uses_crlf else "\n"

    def field(self, name: str, value: str) -> str:
        separator = ": " if self.has_space_after_colon else ":"
        return f"{name}{separator}{value}{self.newline}"


def compact_json(value: Any) -> str:
    """Single-line JSON without spaces, UTF-8 kept as is (so multi-byte characters hit the wire)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode_event(event_id: int, event: str, data: str | None, fmt: WireFormat) -> bytes:
    """One event: ``id``, ``event`` (or the other way round), an optional ``data`` line, then
    the blank line."""
    fields = (fmt.field("id", str(event_id)), fmt.field("event", event))
    text = "".join(reversed(fields) if fmt.puts_event_first else fields)
    if data is not None:
        text += fmt.field("data", data)
    return (text + fmt.newline).encode()


def encode_trace(event_id: int, trace: dict[str, Any], fmt: WireFormat) -> bytes:
    return encode_event(event_id, "trace", compact_json(trace), fmt)


def encode_end(event_id: int, fmt: WireFormat) -> bytes:
    return encode_event(event_id, "end", _END_DATA[fmt.end_data], fmt)


def encode_retry(fmt: WireFormat, retry_ms: int = 2000) -> bytes:
    """The ``retry:`` block better-sse sends at connect."""
    return (fmt.field("retry", str(retry_ms)) + fmt.newline).encode()


def encode_comment(fmt: WireFormat) -> bytes:
    """A ``:`` keep-alive comment followed by a blank line, as better-sse sends it."""
    return f":{fmt.newline}{fmt.newline}".encode()


def split_bytes(data: bytes, size: int) -> list[bytes]:
    """Cut ``data`` into ``size``-byte pieces, ignoring UTF-8 character boundaries on purpose."""
    return [data[i : i + size] for i in range(0, len(data), size)]
