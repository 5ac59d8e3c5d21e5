"""Discord's session starts: how many IDENTIFYs are left today, and how fast they may come.

``GET /gateway/bot`` reports the bot's ``session_start_limit`` (docs/discord.md §5): 1,000
IDENTIFYs per 24 h — using them all up makes Discord reset the bot's token — and
``max_concurrency`` IDENTIFYs per 5 s, one per bucket ``shard_id % max_concurrency``.

* :func:`prepare_session_starts` asks once, after login (``auto`` learns its shard count
  there too);
* :func:`refuse_if_used_up` stops a start that would spend the last ones: a process stuck in a
  crash loop must not cost the operator the token;
* :class:`IdentifyQueue` spaces the IDENTIFYs of a sharded bot across every process that
  shares the store: one claim per bucket, held for the 5 s and never released (discord.py on
  its own spaces only the shards of one process, and lets each process's first shard go at
  once — on a deploy that restarts them all, their IDENTIFYs would collide).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import discord

from bots.discord.shards import ShardPlan
from core.config import Secret
from core.errors import PlatformError
from core.lease import holder_id, lease_name
from core.store import Store

__all__ = [
    "IdentifyQueue",
    "SessionStarts",
    "prepare_session_starts",
    "read_session_starts",
    "refuse_if_used_up",
    "used_up",
]

log = logging.getLogger(__name__)

#: Discord's window for ``max_concurrency`` IDENTIFYs, plus a margin for clocks and latency.
IDENTIFY_INTERVAL_S = 5.0
IDENTIFY_MARGIN_S = 0.25
#: How often a shard waiting for its bucket asks again.
POLL_S = 0.1


@dataclass(frozen=True)
class SessionStarts:
    """What ``GET /gateway/bot`` said."""

    recommended_shards: int
    remaining: int
    total: int
    reset_after_s: float
    max_concurrency: int

    @classmethod
    def from_wire(cls, shards: object, limit: Any) -> SessionStarts:
        """From the answer's ``shards`` and ``session_start_limit``."""
        raw: dict[str, Any] = dict(limit or {})
        return cls(
            recommended_shards=int(str(shards)),
            remaining=int(raw.get("remaining", 1)),
            total=int(raw.get("total", 1000)),
            reset_after_s=float(raw.get("reset_after", 0)) / 1000,
            max_concurrency=max(1, int(raw.get("max_concurrency", 1))),
        )


async def read_session_starts(client: discord.Client) -> SessionStarts:
    """Ask Discord (after login); a failure is a :class:`PlatformError`."""
    try:
        shards, _, limit = await client.http.get_bot_gateway()
        return SessionStarts.from_wire(shards, limit)
    except discord.GatewayNotFound as exc:
        raise PlatformError(f"Discord: GET /gateway/bot failed ({exc})") from exc
    except (KeyError, TypeError, ValueError) as exc:  # discord.py indexes the fields itself
        raise PlatformError(
            f"Discord: GET /gateway/bot answered an unknown shape ({exc!r})"
        ) from exc


async def prepare_session_starts(
    client: discord.Client, plan: ShardPlan, store: Store, token: Secret
) -> tuple[ShardPlan, IdentifyQueue]:
    """After login: the plan (``auto`` resolved to Discord's count) and the IDENTIFY queue;
    raises when the session starts left are too few. Given no count, discord.py would connect
    to the URL Discord returns and pass over a configured DISCORD_GATEWAY_URL, so ``auto``
    hands it the count."""
    try:
        starts: SessionStarts | None = await read_session_starts(client)
    except PlatformError as exc:
        if plan.auto:
            raise
        log.warning("%s: connecting without knowing the session starts left", exc)
        starts = None
    if starts is None:
        return plan, IdentifyQueue(store, token, 1)
    plan = plan.resolved(starts.recommended_shards)
    refuse_if_used_up(starts, len(plan.served()))
    return plan, IdentifyQueue(store, token, starts.max_concurrency)


def refuse_if_used_up(starts: SessionStarts, connections: int) -> None:
    """Raise if connecting ``connections`` shards would spend the session starts left."""
    if (problem := used_up(starts, connections)) is not None:
        raise PlatformError(f"Discord: {problem}. Not connecting: {_WHY}")


def used_up(starts: SessionStarts, connections: int) -> str | None:
    """What is wrong if ``connections`` need more session starts than are left, else None."""
    if starts.remaining >= connections:
        return None
    hours = starts.reset_after_s / 3600
    return (
        f"{starts.remaining} of the bot's {starts.total} session starts per 24 h are left,"
        f" {connections} needed; they come back in {hours:.1f} h"
    )


_WHY = "using them all up makes Discord reset the bot token. Is a process restarting in a loop?"


class IdentifyQueue:
    """One IDENTIFY per bucket per :data:`IDENTIFY_INTERVAL_S`, for every process on ``store``."""

    def __init__(self, store: Store, token: Secret, max_concurrency: int) -> None:
        self._store = store
        self._name = f"{lease_name('discord', token)}:identify"
        self._max_concurrency = max_concurrency

    async def turn(self, shard_id: int) -> None:
        """Return when shard ``shard_id`` may IDENTIFY (its bucket's slot is then taken)."""
        name = f"{self._name}{shard_id % self._max_concurrency}"
        ttl_s = IDENTIFY_INTERVAL_S + IDENTIFY_MARGIN_S
        waited = False
        # A new holder each time: another shard of this process must wait as well.
        while await self._store.claim(name, holder_id(), ttl_s) is not None:
            if not waited:
                log.debug("Discord: shard %s waits for its IDENTIFY slot", shard_id)
                waited = True
            await asyncio.sleep(POLL_S)
