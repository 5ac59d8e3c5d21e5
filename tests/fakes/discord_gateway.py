"""Gateway side of the fake Discord: HELLO, heartbeat ACK, IDENTIFY → READY, RESUME → RESUMED.

One session at a time. Every dispatch gets the next sequence number and is kept in the session log,
so a RESUME replays what the client missed while disconnected (as Discord does). Frames go out
through one queue per connection, drained by a single sender task, so dispatching is synchronous and
frame order is the order of `dispatch()` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord_model import PRIVILEGED_INTENTS

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME = 0, 1, 2, 6
OP_REQUEST_MEMBERS, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 8, 9, 10, 11
HEARTBEAT_INTERVAL_MS = 41250
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_DISALLOWED_INTENTS = 4014

Frame = dict[str, Any]


@dataclass(frozen=True)
class _Close:
    code: int


class _Connection:
    """One client websocket; `send`/`close` only enqueue, the pump task does the I/O in order."""

    def __init__(self, ws: web.WebSocketResponse, close_codes: list[int]) -> None:
        self.ws = ws
        self._close_codes = close_codes
        self._queue: asyncio.Queue[Frame | _Close] = asyncio.Queue()
        self.done = asyncio.Event()

    def send(self, frame: Frame) -> None:
        self._queue.put_nowait(frame)

    def close(self, code: int) -> None:
        self._queue.put_nowait(_Close(code))

    async def pump(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _Close):
                    if not self.ws.closed:
                        self._close_codes.append(item.code)
                        await self.ws.close(code=item.code)
                    return
                if self.ws.closed:
                    continue  # the client went away; RESUME replays from the session log
                with contextlib.suppress(ConnectionResetError):
                    await self.ws.send_str(json.dumps(item))
        finally:
            self.done.set()


class FakeGateway:
    """Serves `/gw`. `world` builds READY and the GUILD_CREATEs for a new session."""

    def __init__(
        self,
        *,
        token: str,
        require_intents_allowed: int | None,
        ready_events: Callable[[str], list[tuple[str, dict[str, Any]]]],
        members: Callable[[], list[dict[str, Any]]],
        on_change: Callable[[], None],
    ) -> None:
        self._token = token
        self._allowed = require_intents_allowed
        self._ready_events = ready_events
        self._members = members
        self._on_change = on_change
        self._live: _Connection | None = None
        self._connections: set[_Connection] = set()
        self._log: list[Frame] = []
        self._seq = 0
        self.session_id: str | None = None
        self.identify: dict[str, Any] | None = None
        self.identify_count = 0
        self.resume_count = 0
        self.close_codes: list[int] = []  # codes the fake closed connections with

    @property
    def is_connected(self) -> bool:
        """A client is attached to the current session (identified or resumed)."""
        return self._live is not None

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an op-0 event now if connected; it is logged either way for RESUME replay.

        Without a session (REST-only clients) there is nobody to receive it: it is dropped.
        """
        if self.session_id is None:
            return
        self._seq += 1
        frame = {"op": OP_DISPATCH, "t": event, "s": self._seq, "d": data}
        self._log.append(frame)
        if self._live is not None:
            self._live.send(frame)
        self._on_change()

    async def drop(self, code: int) -> None:
        """Close the live connection with `code`; the session stays resumable."""
        conn = self._live
        if conn is None:
            raise RuntimeError("drop_gateway: no live gateway connection")
        self._live = None
        conn.close(code)
        await conn.done.wait()

    async def close_all(self) -> None:
        for conn in list(self._connections):
            conn.close(1001)
        await asyncio.gather(*(c.done.wait() for c in list(self._connections)))

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _Connection(ws, self.close_codes)
        self._connections.add(conn)
        pump = asyncio.create_task(conn.pump())
        conn.send({"op": OP_HELLO, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self._on_frame(conn, json.loads(msg.data))
        finally:
            if self._live is conn:
                self._live = None
            conn.close(1000)  # no-op if already closed; lets the pump finish in order
            await pump
            self._connections.discard(conn)
            self._on_change()
        return ws

    def _on_frame(self, conn: _Connection, frame: Frame) -> None:
        op, data = frame.get("op"), frame.get("d") or {}
        if op == OP_HEARTBEAT:
            conn.send({"op": OP_HEARTBEAT_ACK})
        elif op == OP_IDENTIFY:
            self._identify(conn, data)
        elif op == OP_RESUME:
            self._resume(conn, data)
        elif op == OP_REQUEST_MEMBERS:
            self._members_chunk(data)

    def _identify(self, conn: _Connection, data: dict[str, Any]) -> None:
        self.identify = data
        if data.get("token") != self._token:
            conn.close(CLOSE_AUTHENTICATION_FAILED)
            return
        asked = int(data.get("intents", 0)) & PRIVILEGED_INTENTS
        if self._allowed is not None and asked & ~self._allowed:
            conn.close(CLOSE_DISALLOWED_INTENTS)
            return
        self.identify_count += 1
        self.session_id = f"sess{self.identify_count}"
        self._seq, self._log = 0, []
        self._live = conn
        for event, payload in self._ready_events(self.session_id):
            self.dispatch(event, payload)

    def _resume(self, conn: _Connection, data: dict[str, Any]) -> None:
        valid = data.get("token") == self._token and data.get("session_id") == self.session_id
        if not valid or self.session_id is None:
            conn.send({"op": OP_INVALID_SESSION, "d": False})
            return
        last_seen = int(data.get("seq") or 0)
        for frame in self._log:
            if frame["s"] > last_seen:
                conn.send(frame)
        self._live = conn
        self.resume_count += 1
        self.dispatch("RESUMED", {})

    def _members_chunk(self, data: dict[str, Any]) -> None:
        chunk = {
            "guild_id": data.get("guild_id"),
            "members": self._members(),
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
            "presences": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        self.dispatch("GUILD_MEMBERS_CHUNK", chunk)
