"""Writing one simulated turn as an SSE response, with the faults switched on.

The order of work: :func:`decorate` adds noise and injected traces to the agent's answer, then
:class:`TurnStream` writes one event per trace (flushing each, pausing ``token_delay_s`` before
every completion chunk) and the closing ``end`` event — or breaks the stream on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from core.simulator.faults import Faults
from core.simulator.wire import (
    WireFormat,
    compact_json,
    encode_comment,
    encode_end,
    encode_event,
    encode_retry,
    encode_trace,
    split_bytes,
)

__all__ = ["SSE_HEADERS", "RawEvent", "TurnStream", "decorate"]

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}
INTERNAL_ERROR_MESSAGE = "An internal error occurred."
#: What a broken proxy or a buggy runtime might put on the wire (``malformed_lines``): a line
#: without a colon, an unknown field, ``trace`` events whose data is JSON but not a trace
#: object, a completion of an unknown state, and an event type nobody documented.
MALFORMED_LINES = (
    "this line has no colon\n"
    "bogus-field: 1\n\n"
    "event: trace\ndata: [1, 2, 3]\n\n"
    'event: trace\ndata: "just a string"\n\n'
    'event: trace\ndata: {"type": "completion", "payload": null}\n\n'
    'event: trace\ndata: {"type": "completion", "payload": {"state": "sideways"}}\n\n'
    'event: surprise\ndata: {"type": "text"}\n\n'
    "data: an unnamed message event\n\n"
)


@dataclass(frozen=True)
class RawEvent:
    """A ``trace`` event sent with exactly this data (used for the non-JSON fault)."""

    data: str


Event = dict[str, Any] | RawEvent


def _noise(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "payload": payload}


def _with_noise(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """flow + block first, a path after every completion end, a debug before the last trace."""
    noisy = [
        _noise("flow", {"diagramID": "000000000000000000000001", "name": "main"}),
        _noise("block", {"blockID": "sim-block-1"}),
    ]
    for trace in traces:
        noisy.append(trace)
        if trace.get("type") == "completion" and (trace.get("payload") or {}).get("state") == "end":
            noisy.append(_noise("path", {"path": "next"}))
    debug = _noise("debug", {"type": "api", "message": "simulated step finished"})
    noisy.insert(max(len(noisy) - 1, 0), debug)
    return noisy


def decorate(traces: list[dict[str, Any]], faults: Faults) -> list[Event]:
    """The events of one streamed turn, before the ``end`` event."""
    decorated: list[Event] = list(_with_noise(traces) if faults.noise else traces)
    if faults.internal_error:
        debug = _noise("debug", {"message": INTERNAL_ERROR_MESSAGE})
        decorated = [*decorated[: faults.internal_error_after], debug]
    if faults.unknown_trace:
        decorated.insert(0, _noise("x-simulator-unknown", {"note": "café 👋"}))
    if faults.non_json_data:
        decorated.insert(0, RawEvent("{not json: café 👋"))
    return decorated


def _stamped(trace: dict[str, Any]) -> dict[str, Any]:
    if "time" in trace:
        return trace
    return {**trace, "time": int(time.time() * 1000)}


def _is_chunk(event: Event) -> bool:
    if isinstance(event, RawEvent) or event.get("type") != "completion":
        return False
    return bool((event.get("payload") or {}).get("state") == "content")


class _Writer:
    """Applies the batching and byte-splitting faults to every write."""

    def __init__(self, response: web.StreamResponse, faults: Faults) -> None:
        self._response = response
        self._faults = faults
        self._pending = bytearray()

    async def write(self, data: bytes) -> None:
        if self._faults.batch_events:
            self._pending += data
        elif self._faults.split_writes_bytes > 0:
            for piece in split_bytes(data, self._faults.split_writes_bytes):
                await self._response.write(piece)
        else:
            await self._response.write(data)

    async def flush(self) -> None:
        if self._pending:
            await self._response.write(bytes(self._pending))
            self._pending.clear()


@dataclass
class TurnStream:
    """One streamed turn in progress."""

    request: web.Request
    faults: Faults
    token_delay_s: float
    closing: asyncio.Event
    state: dict[str, Any] | None = None  # emitted as `event: state` when set (`?state=true`)
    has_client_gone: bool = False

    async def run(self, events: list[Event]) -> web.StreamResponse:
        """Write the turn; a client that went away ends it quietly (``has_client_gone``)."""
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(self.request)
        try:
            await self._write_events(response, events)
        except ConnectionResetError:
            self.has_client_gone = True
        return response

    async def _write_events(self, response: web.StreamResponse, events: list[Event]) -> None:
        fmt = self.faults.wire_format()
        writer = _Writer(response, self.faults)
        if self.faults.send_bom:
            await writer.write("\ufeff".encode())
        if self.faults.send_retry_line:
            await writer.write(encode_retry(fmt))
        if self.faults.malformed_lines:
            await writer.write(MALFORMED_LINES.replace("\n", fmt.newline).encode())
        for sent, event in enumerate(events):
            if sent == self.faults.close_after_events:
                await self._break(response, writer)
                return
            await self._pause(event, sent, writer, fmt)
            await writer.write(self._encode(sent + 1, event, fmt))
        if len(events) == self.faults.close_after_events:
            await self._break(response, writer)
            return
        await self._finish(len(events) + 1, writer, fmt)
        await response.write_eof()

    def _encode(self, event_id: int, event: Event, fmt: WireFormat) -> bytes:
        if isinstance(event, RawEvent):
            return encode_event(event_id, "trace", event.data, fmt)
        return encode_trace(event_id, _stamped(event), fmt)

    async def _pause(self, event: Event, sent: int, writer: _Writer, fmt: WireFormat) -> None:
        if sent == self.faults.stall_after_events:
            await writer.flush()
            await self._stall(writer, fmt)
        if _is_chunk(event) and self.token_delay_s > 0 and not self.faults.batch_events:
            await asyncio.sleep(self.token_delay_s)
        if sent > 0 and self.faults.send_keepalives:
            await writer.write(encode_comment(fmt))

    async def _stall(self, writer: _Writer, fmt: WireFormat) -> None:
        """Say nothing (but one keep-alive, if on) for ``stall_s``; stop early on close."""
        half = self.faults.stall_s / 2
        await self._wait_closing(half)
        if self.faults.send_keepalives:
            await writer.write(encode_comment(fmt))
        await self._wait_closing(half)

    async def _wait_closing(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), timeout_s)

    async def _finish(self, event_id: int, writer: _Writer, fmt: WireFormat) -> None:
        if self.state is not None:
            await writer.write(encode_event(event_id, "state", compact_json(self.state), fmt))
            event_id += 1
        await writer.write(encode_end(event_id, fmt))
        await writer.flush()

    async def _break(self, response: web.StreamResponse, writer: _Writer) -> None:
        """End the response without an ``end`` event: clean EOF, or a reset connection."""
        await writer.flush()
        transport = self.request.transport
        if self.faults.abort_on_close and transport is not None:
            transport.abort()
            return
        await response.write_eof()
