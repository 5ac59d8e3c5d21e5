"""The conversation store: conversation generations, stored button requests, messages in flight.

:class:`Store` is the small contract; :class:`SqliteStore` (aiosqlite, WAL, one file) is the
default. Every write is one statement or one transaction, so a crash never leaves half a
record. The schema is created on open.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from core.errors import ConfigError
from core.traces import Button

__all__ = ["Conversation", "InFlight", "SqliteStore", "Store", "StoredButton", "open_store"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: Stored buttons older than this are forgotten (clicks then say "expired").
BUTTON_TTL_S = 30 * 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    key TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    ended INTEGER NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS buttons (
    id TEXT PRIMARY KEY,
    conversation TEXT NOT NULL,
    name TEXT NOT NULL,
    request TEXT NOT NULL,
    url TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS places (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS inflight (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    data TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Conversation:
    key: str
    generation: int
    ended: bool


@dataclass(frozen=True)
class StoredButton:
    id: str
    conversation: str
    button: Button


@dataclass(frozen=True)
class InFlight:
    """A streamed message that was not finalized yet (for recovery after a crash)."""

    id: str
    platform: str
    data: dict[str, Any]


class Store(Protocol):
    async def conversation(self, key: str) -> Conversation | None: ...

    async def begin(self, key: str) -> Conversation:
        """Create the conversation, or reopen an ended one (same generation); returns it."""

    async def set_ended(self, key: str, ended: bool) -> None: ...

    async def rotate(self, key: str) -> Conversation | None:
        """Reset or ``end``: bump the generation (a new Voiceflow userID) and mark the
        conversation ended, so the next message launches; returns the old record."""

    async def save_buttons(self, conversation: str, buttons: list[tuple[str, Button]]) -> None: ...

    async def button(self, button_id: str) -> StoredButton | None: ...

    async def remember_place(self, place: str) -> None:
        """Record a place (e.g. a Slack thread) the bot takes part in, whatever the scope."""

    async def knows_place(self, place: str) -> bool: ...

    async def put_inflight(self, item: InFlight) -> None: ...

    async def drop_inflight(self, platform: str, item_id: str) -> None: ...

    async def inflight(self, platform: str) -> list[InFlight]: ...

    async def journals(self, prefix: str) -> list[str]:
        """The names (``platform``) of the journals whose name starts with ``prefix`` and that
        hold any message in flight, sorted."""
        ...

    async def claim(
        self, name: str, holder: str, ttl_s: float, *, take_from: str | None = None
    ) -> str | None:
        """Take or renew the lease ``name`` for ``ttl_s`` if it is free, expired, already
        ``holder``'s or ``take_from``'s (one atomic step); None if taken, else who holds it."""
        ...

    async def release(self, name: str, holder: str) -> None:
        """Let the lease go, if ``holder`` still holds it."""
        ...

    async def close(self) -> None: ...


class SqliteStore:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: str | Path) -> SqliteStore:
        """Open (creating it if need be) the SQLite file; a path it cannot use is a
        :class:`~core.errors.ConfigError` naming ``STATE_URL``."""
        try:
            # Tried with plain sqlite3 first: when aiosqlite's own connect fails, its worker
            # thread reports back to the event loop later, and a process that exits at once
            # (`vf-bridge check`) could print that thread's traceback.
            await asyncio.to_thread(_try_open, path)
            db = await aiosqlite.connect(path)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError("STATE_URL", f"cannot open the SQLite file {path} ({exc})") from exc
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.executescript(_SCHEMA)
            await db.commit()
        except (sqlite3.Error, OSError) as exc:
            await db.close()
            raise ConfigError("STATE_URL", f"cannot use the SQLite file {path} ({exc})") from exc
        return cls(db)

    async def conversation(self, key: str) -> Conversation | None:
        async with self._db.execute(
            "SELECT generation, ended FROM conversations WHERE key = ?", (key,)
        ) as cur:
            row = await cur.fetchone()
        return Conversation(key, int(row[0]), bool(row[1])) if row else None

    async def begin(self, key: str) -> Conversation:
        await self._db.execute(
            "INSERT INTO conversations (key, generation, ended, updated) VALUES (?, 1, 0, ?) "
            "ON CONFLICT(key) DO UPDATE SET ended = 0, updated = excluded.updated",
            (key, time.time()),
        )
        await self._db.commit()
        found = await self.conversation(key)
        assert found is not None
        return found

    async def set_ended(self, key: str, ended: bool) -> None:
        await self._db.execute(
            "UPDATE conversations SET ended = ?, updated = ? WHERE key = ?",
            (int(ended), time.time(), key),
        )
        await self._db.commit()

    async def rotate(self, key: str) -> Conversation | None:
        old = await self.conversation(key)
        await self._db.execute(
            "INSERT INTO conversations (key, generation, ended, updated) VALUES (?, 2, 1, ?) "
            "ON CONFLICT(key) DO UPDATE SET generation = generation + 1, ended = 1, "
            "updated = excluded.updated",
            (key, time.time()),
        )
        await self._db.commit()
        return old

    async def save_buttons(self, conversation: str, buttons: list[tuple[str, Button]]) -> None:
        now = time.time()
        rows = [
            (bid, conversation, b.name, json.dumps(b.request), b.url, now) for bid, b in buttons
        ]
        await self._db.executemany("INSERT INTO buttons VALUES (?, ?, ?, ?, ?, ?)", rows)
        await self._db.execute("DELETE FROM buttons WHERE created < ?", (now - BUTTON_TTL_S,))
        await self._db.commit()

    async def button(self, button_id: str) -> StoredButton | None:
        async with self._db.execute(
            "SELECT conversation, name, request, url FROM buttons WHERE id = ?", (button_id,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return StoredButton(button_id, row[0], Button(row[1], json.loads(row[2]), row[3]))

    async def remember_place(self, place: str) -> None:
        await self._db.execute("INSERT OR IGNORE INTO places VALUES (?, ?)", (place, time.time()))
        await self._db.commit()

    async def knows_place(self, place: str) -> bool:
        async with self._db.execute("SELECT 1 FROM places WHERE id = ?", (place,)) as cur:
            return await cur.fetchone() is not None

    async def put_inflight(self, item: InFlight) -> None:
        await self._db.execute(
            "INSERT OR REPLACE INTO inflight VALUES (?, ?, ?, ?)",
            (item.id, item.platform, json.dumps(item.data), time.time()),
        )
        await self._db.commit()

    async def drop_inflight(self, platform: str, item_id: str) -> None:
        await self._db.execute(
            "DELETE FROM inflight WHERE platform = ? AND id = ?", (platform, item_id)
        )
        await self._db.commit()

    async def inflight(self, platform: str) -> list[InFlight]:
        async with self._db.execute(
            "SELECT id, data FROM inflight WHERE platform = ? ORDER BY created", (platform,)
        ) as cur:
            rows = await cur.fetchall()
        return [InFlight(r[0], platform, json.loads(r[1])) for r in rows]

    async def journals(self, prefix: str) -> list[str]:
        async with self._db.execute(
            "SELECT DISTINCT platform FROM inflight WHERE substr(platform, 1, ?) = ? "
            "ORDER BY platform",
            (len(prefix), prefix),
        ) as cur:
            rows = await cur.fetchall()
        return [str(r[0]) for r in rows]

    async def claim(
        self, name: str, holder: str, ttl_s: float, *, take_from: str | None = None
    ) -> str | None:
        now = time.time()
        async with self._db.execute(
            "INSERT INTO leases VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE"
            " SET holder = excluded.holder, expires = excluded.expires"
            " WHERE leases.holder IN (excluded.holder, ?) OR leases.expires < ?",
            (name, holder, now + ttl_s, take_from or holder, now),
        ) as cur:
            taken = cur.rowcount > 0
        await self._db.commit()
        if taken:
            return None
        async with self._db.execute("SELECT holder FROM leases WHERE name = ?", (name,)) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else ""

    async def release(self, name: str, holder: str) -> None:
        await self._db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
        await self._db.commit()

    async def close(self) -> None:
        await self._db.close()


def _try_open(path: str | Path) -> None:
    sqlite3.connect(path).close()


@asynccontextmanager
async def open_store(state_url: str) -> AsyncIterator[Store]:
    """Open the store named by ``STATE_URL``: ``sqlite:///path`` or ``redis://host:port/db``."""
    store: Store
    if state_url.startswith(REDIS_SCHEMES):
        from core.store_redis import RedisStore

        store = await RedisStore.open(state_url)
    else:
        store = await SqliteStore.open(state_url.removeprefix("sqlite:///"))
    try:
        yield store
    finally:
        await store.close()
