"""Messages in flight: recorded while they stream, finalized after a crash.

A :class:`StoreJournal` records each live streamed message in the store; at startup an
adapter calls :func:`finalize_dangling` with a function that edits one such message into its
final "interrupted" state. So a process killed mid-stream (``kill -9``) leaves no
placeholder spinning once it is back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from core.store import InFlight, Store

__all__ = ["StoreJournal", "finalize_dangling"]

log = logging.getLogger(__name__)


class StoreJournal:
    """A :class:`core.platform.Journal` over the store; ``location`` says where messages live."""

    def __init__(self, store: Store, platform: str, location: dict[str, Any]) -> None:
        self._store = store
        self._platform = platform
        self._location = location

    def _id(self, message_id: str) -> str:
        return f"{self._platform}|{self._location.get('channel', '')}|{message_id}"

    async def opened(self, message_id: str) -> None:
        data = {**self._location, "message_id": message_id}
        await self._store.put_inflight(InFlight(self._id(message_id), self._platform, data))

    async def closed(self, message_id: str) -> None:
        await self._store.drop_inflight(self._platform, self._id(message_id))


async def finalize_dangling(
    store: Store, platform: str, finalize: Callable[[dict[str, Any]], Awaitable[None]]
) -> int:
    """Finalize every message of ``platform`` left in flight by a previous process."""
    count = 0
    for item in await store.inflight(platform):
        try:
            await finalize(item.data)
            count += 1
        except Exception:  # one broken message must not stop the others or the start
            log.exception("could not finalize dangling message %s", item.id)
        await store.drop_inflight(platform, item.id)
    if count:
        log.info("finalized %d %s message(s) left streaming by a previous process", count, platform)
    return count
