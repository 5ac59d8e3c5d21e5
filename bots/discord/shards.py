"""Which Discord shards this process connects, and what follows from that.

Discord sends a guild's events on shard ``(guild_id >> 22) % shard_count`` and DMs on shard 0
(docs/discord.md §5); a bot in more than 2,500 guilds must shard. ``DISCORD_SHARD_COUNT`` and
``DISCORD_SHARD_IDS`` choose the layout:

* neither set: one gateway connection (``discord.Client``), as Discord's shard 0 of 1;
* ``auto``: every shard Discord recommends (``GET /gateway/bot``, asked after login), all in
  this process (``discord.AutoShardedClient``);
* a number, optionally with ids: that many shards in all, this process connecting the listed
  ones (default: every one) — several processes, one per range, behind one Redis.

Unsharded and ``auto``, the process is the whole bot: one lease, one journal of messages in
flight. With a numeric count everything a process owns is per shard, so that processes given
any ranges leave each other alone:

* a lease per shard (core/lease.py): two processes never connect the same shard, whatever
  ranges they were given — a second one stands by until the first lets go;
* a journal per shard: a process that starts finalizes only its own shards' dangling
  messages, never the answers another process is streaming right now;
* its share of the global limit, in proportion to its shards: every process of the bot counts
  against the same per-token 50 requests per second.

Every process of one bot must use the same ``DISCORD_SHARD_COUNT`` (the leases of one layout
cannot see another's). When the layout changes (one connection or ``auto`` → a count, a count
→ another, or back), the process that connects shard 0 finalizes what the old layout's
processes left in flight: each old journal once the lease its process held is free
(:meth:`ShardPlan.journal_lease`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from bots.discord.ratelimits import GLOBAL_LIMIT
from core.config import Settings
from core.lease import lease_name

__all__ = ["PLATFORM", "ShardPlan"]

PLATFORM = "discord"
_SHARD_JOURNAL = re.compile(rf"{PLATFORM}:shard(\d+)/(\d+)")


@dataclass(frozen=True)
class ShardPlan:
    """``count`` None: not sharded. ``ids``: the shards this process connects (None: all)."""

    count: int | None = None
    ids: tuple[int, ...] | None = None
    auto: bool = False

    @classmethod
    def of(cls, settings: Settings) -> ShardPlan:
        count = settings.discord_shard_count
        if count == "auto":
            return cls(auto=True)
        return cls(count, settings.discord_shard_ids)

    @property
    def sharded(self) -> bool:
        """Whether the gateway connection is sharded (AutoShardedClient)."""
        return self.auto or self.count is not None

    @property
    def whole(self) -> bool:
        """Whether this process connects every shard of the bot."""
        return self.ids is None or self.count is None or len(self.ids) == self.count

    @property
    def per_shard(self) -> bool:
        """Whether leases and journals are per shard (a numeric DISCORD_SHARD_COUNT)."""
        return self.count is not None and not self.auto

    def resolved(self, count: int) -> ShardPlan:
        """``auto`` once Discord said how many shards: all of them, here."""
        return replace(self, count=count) if self.auto else self

    def shard_of(self, guild_id: int | None) -> int:
        if guild_id is None or not self.count:
            return 0
        return (guild_id >> 22) % self.count

    def journal(self, guild_id: int | None) -> str:
        """The journal a message in ``guild_id`` (None: a DM) is kept in."""
        if not self.per_shard:
            return PLATFORM
        return self._shard_journal(self.shard_of(guild_id))

    def journals(self) -> list[str]:
        """Every journal this process finalizes at start."""
        if not self.per_shard:
            return [PLATFORM]
        return [self._shard_journal(i) for i in self.served()]

    def lease_names(self, settings: Settings) -> list[str]:
        """The leases this process holds while connected (core/lease.py)."""
        assert settings.discord_token is not None
        base = lease_name(PLATFORM, settings.discord_token)
        if not self.per_shard:
            return [base]
        return [f"{base}:shard{i}/{self.count}" for i in self.served()]

    def journal_lease(self, journal: str, settings: Settings) -> str | None:
        """For a journal another layout of the bot keeps, the lease its process holds while it
        runs; None for this layout's journals (their own processes finalize them) and for
        journals that are not Discord's."""
        assert settings.discord_token is not None
        base = lease_name(PLATFORM, settings.discord_token)
        if journal == PLATFORM:
            return base if self.per_shard else None
        shard = _SHARD_JOURNAL.fullmatch(journal)
        if shard is None or (self.per_shard and int(shard[2]) == self.count):
            return None
        return f"{base}:shard{shard[1]}/{shard[2]}"

    def global_limit(self) -> int:
        """This process's share of Discord's global requests per second (one limit for the
        bot's token, whatever its shards and processes: docs/discord.md §2, §5)."""
        if self.whole or not self.count:
            return GLOBAL_LIMIT
        return max(1, GLOBAL_LIMIT * len(self.served()) // self.count)

    def describe(self) -> str:
        """For the log: ``"shards 0-3 of 8"``; empty when not sharded."""
        if not self.sharded:
            return ""
        if self.count is None:
            return "shards: as Discord recommends"
        return f"shards {_ranges(self.served())} of {self.count}"

    def served(self) -> tuple[int, ...]:
        """The shard ids this process connects."""
        if self.ids is not None:
            return self.ids
        return tuple(range(self.count or 1))

    def _shard_journal(self, shard: int) -> str:
        return f"{PLATFORM}:shard{shard}/{self.count}"


def _ranges(ids: tuple[int, ...]) -> str:
    """``(0, 1, 2, 5)`` → ``"0-2,5"``."""
    parts: list[str] = []
    start = prev = ids[0]
    for i in (*ids[1:], None):
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(parts)
