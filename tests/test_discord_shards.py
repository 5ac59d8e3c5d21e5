"""ShardPlan (bots/discord/shards.py): what a process's shards decide — leases, journals, the
share of Discord's global limit — for each layout an operator can configure; and the IDENTIFY
queue (bots/discord/session_starts.py) on a real SQLite file and a real Redis server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest

from bots.discord import session_starts
from bots.discord.session_starts import IdentifyQueue
from bots.discord.shards import ShardPlan
from core.config import Secret, Settings
from core.lease import lease_name
from core.store import Store, open_store
from tests.redis_server import redis_server

TOKEN = Secret("a.b.c")


def plan(
    count: int | Literal["auto"] | None = None, ids: tuple[int, ...] | None = None
) -> tuple[ShardPlan, Settings]:
    settings = Settings(discord_token=TOKEN, discord_shard_count=count, discord_shard_ids=ids)
    return ShardPlan.of(settings), settings


def test_the_journals_of_another_layout_name_the_lease_of_their_process() -> None:
    """What a process of shard 0 may finalize after a layout change: each old journal, under
    the lease its process held; never its own layout's (their processes come back for them)."""
    whole = lease_name("discord", TOKEN)
    unsharded, count_2, count_3, auto = plan(), plan(2, (1,)), plan(3, (0,)), plan("auto")
    for shards, settings in (unsharded, auto):
        lease = shards.journal_lease
        assert lease("discord", settings) is None
        assert lease("discord:shard1/2", settings) == f"{whole}:shard1/2"
    for shards, settings in (count_2, count_3):
        assert shards.journal_lease("discord", settings) == whole
    assert count_2[0].journal_lease("discord:shard0/2", count_2[1]) is None  # a neighbour's
    assert count_3[0].journal_lease("discord:shard0/2", count_3[1]) == f"{whole}:shard0/2"
    assert count_3[0].journal_lease("discord:shard2/3", count_3[1]) is None
    assert unsharded[0].journal_lease("slack", unsharded[1]) is None
    assert unsharded[0].journal_lease("discord:shard1", unsharded[1]) is None


def test_unsharded_or_auto_the_process_is_the_whole_bot() -> None:
    for shards, settings in (plan(), plan("auto"), (plan("auto")[0].resolved(4), plan()[1])):
        assert shards.whole
        assert shards.lease_names(settings) == [lease_name("discord", TOKEN)]
        assert shards.journals() == ["discord"]
        assert shards.journal(4194304) == shards.journal(None) == "discord"
        assert shards.global_limit() == 50
    assert not plan()[0].sharded and plan("auto")[0].sharded and plan(4)[0].sharded


def test_with_a_count_every_shard_has_its_lease_and_journal_even_all_in_one_process() -> None:
    base = lease_name("discord", TOKEN)
    for shards, settings in (plan(2), plan(2, (0, 1))):
        assert shards.whole and shards.global_limit() == 50
        assert shards.lease_names(settings) == [f"{base}:shard0/2", f"{base}:shard1/2"]
        assert shards.journals() == ["discord:shard0/2", "discord:shard1/2"]
        assert shards.journal(1 << 22) == "discord:shard1/2"


def test_a_process_with_some_shards_owns_a_lease_a_journal_and_a_share_per_shard() -> None:
    shards, settings = plan(8, (2, 3, 4, 7))
    base = lease_name("discord", TOKEN)
    assert shards.lease_names(settings) == [f"{base}:shard{i}/8" for i in (2, 3, 4, 7)]
    assert shards.journals() == [f"discord:shard{i}/8" for i in (2, 3, 4, 7)]
    assert shards.journal((3 << 22) | 12345) == "discord:shard3/8"
    assert shards.journal(None) == "discord:shard0/8"  # DMs arrive on shard 0
    assert shards.global_limit() == 25
    assert plan(64, (5,))[0].global_limit() == 1  # never nothing at all
    assert shards.describe() == "shards 2-4,7 of 8"


def test_auto_becomes_every_shard_discord_recommends() -> None:
    auto, _ = plan("auto")
    assert auto.describe() == "shards: as Discord recommends"
    resolved = auto.resolved(3)
    assert (resolved.count, resolved.whole, resolved.describe()) == (3, True, "shards 0-2 of 3")
    assert resolved.shard_of(1 << 22) == 1
    assert plan()[0].describe() == ""


@pytest.fixture(params=["sqlite", "redis"])
async def two_stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, Store]]:
    """Two processes' stores on one backing database."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "redis":
            url = await stack.enter_async_context(redis_server(tmp_path))
        first = await stack.enter_async_context(open_store(url))
        second = await stack.enter_async_context(open_store(url))
        yield first, second


async def test_identify_turns_are_one_per_bucket_per_interval_across_processes(
    two_stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_starts, "IDENTIFY_INTERVAL_S", 0.4)
    monkeypatch.setattr(session_starts, "IDENTIFY_MARGIN_S", 0.0)
    monkeypatch.setattr(session_starts, "POLL_S", 0.01)
    here, there = (IdentifyQueue(store, TOKEN, max_concurrency=2) for store in two_stores)
    clock = asyncio.get_running_loop().time
    began = clock()
    await here.turn(0)  # bucket 0
    await there.turn(1)  # bucket 1: at once, though another process
    assert clock() - began < 0.2
    await there.turn(2)  # bucket 0 again: after the interval
    assert clock() - began >= 0.4
