"""Gateway side of the fake Discord: HELLO, heartbeat ACK, IDENTIFY → READY, RESUME → RESUMED.

One session per shard (IDENTIFY's ``shard: [id, count]``, ``[0, 1]`` when absent); a new IDENTIFY
of a shard replaces that shard's session. An event goes to every session whose shard owns its
guild, ``(guild_id >> 22) % count == id``; events without a guild (DMs) go to shard 0
(docs/discord.md §5). A shard id outside its count is refused with close code 4010, a count
below ``required_shards`` (a bot in too many guilds for one shard) with 4011. When
``identify_interval_s`` is set, Discord's session start rate is enforced: one IDENTIFY per
interval per bucket ``shard_id % max_concurrency``; one more is answered INVALID_SESSION.

Every dispatch gets the session's next sequence number and is kept in the session log, so a
RESUME replays what the client missed while disconnected (as Discord does). Frames go out through
one queue per connection, drained by a single sender task, so dispatching is synchronous and frame
order is the order of `dispatch()` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord_guild import shard_of
from tests.fakes.discord_model import PRIVILEGED_INTENTS

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME = 0, 1, 2, 6
OP_REQUEST_MEMBERS, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 8, 9, 10, 11
HEARTBEAT_INTERVAL_MS = 41250
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_INVALID_SHARD = 4010
CLOSE_SHARDING_REQUIRED = 4011
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
        self.session: _Session | None = None

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


@dataclass
class _Session:
    """One shard's session: its sequence, its log for RESUME, its live connection (if any)."""

    session_id: str
    shard: tuple[int, int]
    order: int  # identified as the n-th session
    seq: int = 0
    log: list[Frame] = field(default_factory=list)
    live: _Connection | None = None

    def receives(self, guild_id: str | None) -> bool:
        shard_id, count = self.shard
        return shard_of(guild_id, count) == shard_id

    def send(self, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        frame = {"op": OP_DISPATCH, "t": event, "s": self.seq, "d": data}
        self.log.append(frame)
        if self.live is not None:
            self.live.send(frame)


ReadyEvents = Callable[[str, tuple[int, int]], list[tuple[str, dict[str, Any]]]]


class FakeGateway:
    """Serves `/gw`. `ready_events` builds READY and the GUILD_CREATEs of a new session."""

    def __init__(
        self,
        *,
        token: str,
        require_intents_allowed: int | None,
        ready_events: ReadyEvents,
        members: Callable[[str], list[dict[str, Any]]],
        on_change: Callable[[], None],
        max_concurrency: Callable[[], int] = lambda: 1,
    ) -> None:
        self._token = token
        self._allowed = require_intents_allowed
        self._ready_events = ready_events
        self._members = members
        self._on_change = on_change
        self._max_concurrency = max_concurrency
        self._sessions: dict[tuple[int, int], _Session] = {}
        self._connections: set[_Connection] = set()
        self.identify: dict[str, Any] | None = None
        self.identifies: list[dict[str, Any]] = []  # every accepted IDENTIFY, in order
        self.identify_count = 0
        self.resume_count = 0
        self.close_codes: list[int] = []  # codes the fake closed connections with
        self.required_shards = 1  # the fewest shards Discord accepts for this bot
        #: Session start rate (GET /gateway/bot's session_start_limit): None = not enforced.
        self.identify_interval_s: float | None = None
        self.identify_refused = 0  # IDENTIFYs answered INVALID_SESSION for coming too soon
        self._identified_at: dict[int, float] = {}  # bucket → loop time of its last IDENTIFY

    @property
    def session_id(self) -> str | None:
        """The newest session's id (None before the first IDENTIFY)."""
        newest = max(self._sessions.values(), key=lambda s: s.order, default=None)
        return None if newest is None else newest.session_id

    @property
    def is_connected(self) -> bool:
        """A client is attached to a session (identified or resumed)."""
        return any(s.live is not None for s in self._sessions.values())

    @property
    def live_shards(self) -> list[tuple[int, int]]:
        """The shards ``[id, count]`` with a client attached, sorted."""
        return sorted(k for k, s in self._sessions.items() if s.live is not None)

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an op-0 event to every session whose shard owns its guild, now if connected;
        it is logged either way for RESUME replay.

        Without a session (REST-only clients) there is nobody to receive it: it is dropped.
        """
        guild_id = data.get("guild_id")
        for session in self._sessions.values():
            if session.receives(None if guild_id is None else str(guild_id)):
                session.send(event, data)
        self._on_change()

    async def drop(self, code: int) -> None:
        """Close every live connection with `code`; the sessions stay resumable."""
        live = [s.live for s in self._sessions.values() if s.live is not None]
        if not live:
            raise RuntimeError("drop_gateway: no live gateway connection")
        for session in self._sessions.values():
            session.live = None
        for conn in live:
            conn.close(code)
        await asyncio.gather(*(conn.done.wait() for conn in live))

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
            if conn.session is not None and conn.session.live is conn:
                conn.session.live = None
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
        elif op == OP_REQUEST_MEMBERS and conn.session is not None:
            self._members_chunk(conn.session, data)

    def _identify(self, conn: _Connection, data: dict[str, Any]) -> None:
        self.identify = data
        if data.get("token") != self._token:
            conn.close(CLOSE_AUTHENTICATION_FAILED)
            return
        asked = int(data.get("intents", 0)) & PRIVILEGED_INTENTS
        if self._allowed is not None and asked & ~self._allowed:
            conn.close(CLOSE_DISALLOWED_INTENTS)
            return
        shard = _shard(data.get("shard"))
        if shard is None:
            conn.close(CLOSE_INVALID_SHARD)
            return
        if shard[1] < self.required_shards:
            conn.close(CLOSE_SHARDING_REQUIRED)
            return
        if self._too_soon(shard[0]):
            self.identify_refused += 1
            conn.send({"op": OP_INVALID_SESSION, "d": False})
            return
        self.identify_count += 1
        self.identifies.append(data)
        session = _Session(f"sess{self.identify_count}", shard, self.identify_count)
        self._sessions[shard] = session
        self._attach(conn, session)
        for event, payload in self._ready_events(session.session_id, shard):
            session.send(event, payload)
        self._on_change()

    def _too_soon(self, shard_id: int) -> bool:
        """Whether this IDENTIFY breaks the session start rate (it is counted if not)."""
        if self.identify_interval_s is None:
            return False
        bucket, now = shard_id % self._max_concurrency(), asyncio.get_running_loop().time()
        if now - self._identified_at.get(bucket, -math.inf) < self.identify_interval_s:
            return True
        self._identified_at[bucket] = now
        return False

    def _resume(self, conn: _Connection, data: dict[str, Any]) -> None:
        session = next(
            (s for s in self._sessions.values() if s.session_id == data.get("session_id")), None
        )
        if data.get("token") != self._token or session is None:
            conn.send({"op": OP_INVALID_SESSION, "d": False})
            return
        last_seen = int(data.get("seq") or 0)
        for frame in session.log:
            if frame["s"] > last_seen:
                conn.send(frame)
        self._attach(conn, session)
        self.resume_count += 1
        session.send("RESUMED", {})
        self._on_change()

    @staticmethod
    def _attach(conn: _Connection, session: _Session) -> None:
        conn.session = session
        session.live = conn

    def _members_chunk(self, session: _Session, data: dict[str, Any]) -> None:
        chunk = {
            "guild_id": data.get("guild_id"),
            "members": self._members(str(data.get("guild_id"))),
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
            "presences": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        session.send("GUILD_MEMBERS_CHUNK", chunk)
        self._on_change()


def _shard(value: object) -> tuple[int, int] | None:
    """IDENTIFY's ``shard`` as ``(id, count)``; ``(0, 1)`` when absent; None when invalid."""
    if value is None:
        return (0, 1)
    if not isinstance(value, list) or len(value) != 2:
        return None
    shard_id, count = value
    if not isinstance(shard_id, int) or not isinstance(count, int) or not 0 <= shard_id < count:
        return None
    return (shard_id, count)
