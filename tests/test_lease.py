"""The connection lease (core/lease.py) on a real SQLite file shared by two stores."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core import lease
from core.lease import LeaseLostError, holder_id, run_leased
from core.store import Store, open_store

NAME = "discord:abc"


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    url = f"sqlite:///{tmp_path / 's.db'}"
    async with open_store(url) as a, open_store(url) as b:
        yield a, b


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


async def test_a_standby_waits_for_the_holder_and_takes_over_when_it_lets_go(
    two: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(lease, "POLL_S", 0.05)
    first, second = two
    other = f"elsewhere:{1234}:cafe"  # a process of another host: alive as far as we know
    assert await first.claim(NAME, other, 30) is None
    running, asked_again = asyncio.Event(), asyncio.Event()
    claims = 0
    claim = second.claim

    async def counted_claim(*args: Any, **kwargs: Any) -> str | None:
        nonlocal claims
        claims += 1
        if claims == 2:
            asked_again.set()
        return await claim(*args, **kwargs)

    monkeypatch.setattr(second, "claim", counted_claim)

    async def run() -> None:
        running.set()

    standby = asyncio.create_task(run_leased(second, NAME, "Discord", run))
    await asyncio.wait_for(asked_again.wait(), 5)  # it was refused once and waited
    assert not running.is_set()
    assert "another vf-bridge process (host elsewhere, pid 1234)" in caplog.text
    await first.release(NAME, other)
    await asyncio.wait_for(standby, 5)
    assert running.is_set()
    assert await first.claim(NAME, "next", 30) is None, "the lease was not released after run"


async def test_a_holder_of_this_host_that_is_gone_is_taken_over_at_once(
    two: tuple[Store, Store],
) -> None:
    first, second = two
    assert await first.claim(NAME, f"{socket.gethostname()}:{dead_pid()}:0001", 30) is None
    ran = []

    async def run() -> None:
        ran.append(True)

    await asyncio.wait_for(run_leased(second, NAME, "Discord", run), 2)
    assert ran


async def test_a_holder_that_loses_its_lease_stops_its_bot(
    two: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease, "RENEW_S", 0.05)
    first, second = two
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def run() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    holder = asyncio.create_task(run_leased(first, NAME, "Discord", run))
    await asyncio.wait_for(started.wait(), 2)
    current = await second.claim(NAME, holder_id(), 30)
    assert current is not None
    assert await second.claim(NAME, "usurper", 30, take_from=current) is None
    with pytest.raises(LeaseLostError, match="another vf-bridge process took over"):
        await asyncio.wait_for(holder, 5)
    assert cancelled.is_set()


async def test_a_sharded_process_waits_for_each_of_its_shards_and_keeps_those_it_holds(
    two: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases of several shards: taken in order; the ones held are renewed while the next
    is awaited (past LEASE_S), so nobody takes them meanwhile; all are released after."""
    monkeypatch.setattr(lease, "POLL_S", 0.05)
    monkeypatch.setattr(lease, "RENEW_S", 0.05)
    monkeypatch.setattr(lease, "LEASE_S", 0.3)
    first, second = two
    other = "elsewhere:1234:cafe"
    assert await first.claim("shard1", other, 30) is None
    running = asyncio.Event()

    async def run() -> None:
        running.set()

    standby = asyncio.create_task(run_leased(second, ["shard1", "shard0"], "Discord", run))
    await asyncio.sleep(1.0)  # over three LEASE_S
    assert not running.is_set()
    assert await first.claim("shard0", "intruder:1:0", 30) is not None, "shard 0 was let go"
    await first.release("shard1", other)
    await asyncio.wait_for(standby, 5)
    assert running.is_set()
    for name in ("shard0", "shard1"):
        assert await first.claim(name, "next:1:0", 30) is None, f"{name} was not released"
