"""RedisStore: the conversation store for several processes (``STATE_URL=redis://…``).

Same contract and semantics as :class:`core.store.SqliteStore`. Every write is one command, a
MULTI/EXEC transaction or one Lua script, so concurrent processes never see half a record.
Keys are namespaced ``vfb:``; stored buttons and places expire after :data:`BUTTON_TTL_S`.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.errors import ConfigError
from core.store import BUTTON_TTL_S, Conversation, InFlight, StoredButton
from core.traces import Button

__all__ = ["RedisStore"]

PREFIX = "vfb:"

# Reset: bump the generation (a new conversation starts at 2, as in SQLite) and mark ended.
_ROTATE = """
local old = redis.call('HMGET', KEYS[1], 'generation', 'ended')
if old[1] then
  redis.call('HINCRBY', KEYS[1], 'generation', 1)
else
  redis.call('HSET', KEYS[1], 'generation', 2)
end
redis.call('HSET', KEYS[1], 'ended', 1)
return old
"""

# A lease: taken when free (expired keys are gone), renewed by its holder, or taken from
# ``take_from`` (ARGV[3], "" for none); returns nil when taken, else who holds it.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if (not current) or current == ARGV[1] or current == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return false
end
return current
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._rotate = client.register_script(_ROTATE)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    @classmethod
    async def open(cls, url: str) -> RedisStore:
        try:
            client = aioredis.Redis.from_url(url, decode_responses=True)
        except ValueError as exc:  # an option of the query string (the message names it)
            raise ConfigError("STATE_URL", f"is not a usable Redis URL: {exc}") from None
        try:
            await client.ping()
        except RedisError as exc:
            await client.aclose()
            raise ConfigError("STATE_URL", f"cannot reach Redis ({exc})") from None
        return cls(client)

    @staticmethod
    def _conv(key: str) -> str:
        return f"{PREFIX}conv:{key}"

    async def conversation(self, key: str) -> Conversation | None:
        generation, ended = await self._redis.hmget(self._conv(key), ["generation", "ended"])
        if generation is None:
            return None
        return Conversation(key, int(generation), ended == "1")

    async def begin(self, key: str) -> Conversation:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(self._conv(key), "generation", 1)
            pipe.hset(self._conv(key), "ended", 0)
            pipe.hget(self._conv(key), "generation")
            *_, generation = await pipe.execute()
        return Conversation(key, int(generation), False)

    async def set_ended(self, key: str, ended: bool) -> None:
        if await self._redis.exists(self._conv(key)):
            await self._redis.hset(self._conv(key), "ended", int(ended))

    async def rotate(self, key: str) -> Conversation | None:
        generation, ended = await self._rotate(keys=[self._conv(key)])
        if generation is None:
            return None
        return Conversation(key, int(generation), ended == "1")

    async def save_buttons(self, conversation: str, buttons: list[tuple[str, Button]]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for button_id, button in buttons:
                record = {
                    "conversation": conversation,
                    "name": button.name,
                    "request": button.request,
                    "url": button.url,
                }
                pipe.set(f"{PREFIX}button:{button_id}", json.dumps(record), ex=BUTTON_TTL_S)
            await pipe.execute()

    async def button(self, button_id: str) -> StoredButton | None:
        raw = await self._redis.get(f"{PREFIX}button:{button_id}")
        if raw is None:
            return None
        record: dict[str, Any] = json.loads(raw)
        button = Button(record["name"], record["request"], record["url"])
        return StoredButton(button_id, record["conversation"], button)

    async def remember_place(self, place: str) -> None:
        await self._redis.set(f"{PREFIX}place:{place}", 1, ex=BUTTON_TTL_S)

    async def knows_place(self, place: str) -> bool:
        return bool(await self._redis.exists(f"{PREFIX}place:{place}"))

    async def put_inflight(self, item: InFlight) -> None:
        record = json.dumps({"data": item.data, "created": time.time()})
        await self._redis.hset(f"{PREFIX}inflight:{item.platform}", item.id, record)

    async def drop_inflight(self, platform: str, item_id: str) -> None:
        await self._redis.hdel(f"{PREFIX}inflight:{platform}", item_id)

    async def inflight(self, platform: str) -> list[InFlight]:
        rows = await self._redis.hgetall(f"{PREFIX}inflight:{platform}")
        items = [(json.loads(raw), str(item_id)) for item_id, raw in rows.items()]
        items.sort(key=lambda pair: pair[0]["created"])
        return [InFlight(item_id, platform, record["data"]) for record, item_id in items]

    async def journals(self, prefix: str) -> list[str]:
        base = f"{PREFIX}inflight:"
        pattern = base + re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
        names = {str(key)[len(base) :] async for key in self._redis.scan_iter(match=pattern)}
        return sorted(names)  # a hash whose last field is deleted is gone: none is empty

    async def claim(
        self, name: str, holder: str, ttl_s: float, *, take_from: str | None = None
    ) -> str | None:
        keys = [f"{PREFIX}lease:{name}"]
        current = await self._claim(keys=keys, args=[holder, int(ttl_s * 1000), take_from or ""])
        return None if current is None else str(current)

    async def release(self, name: str, holder: str) -> None:
        await self._release(keys=[f"{PREFIX}lease:{name}"], args=[holder])

    async def close(self) -> None:
        await self._redis.aclose()
