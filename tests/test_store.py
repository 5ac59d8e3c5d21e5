"""The store contract on a real SQLite file and a real Redis server: same tests, same results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from bots.slack.journal import SlackJournal
from bots.slack.native_ending import NativeEnd
from core.platform import Outcome
from core.store import InFlight, Store, open_store
from core.traces import Button
from tests.redis_server import redis_server

StoreFactory = Callable[[], AbstractAsyncContextManager[Store]]
INTERRUPTED = Outcome.INTERRUPTED.note


@pytest.fixture(params=["sqlite", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores on one backing database (so a reopen sees the same data)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 's.db'}"
        yield lambda: open_store(url)
        return
    async with redis_server(tmp_path) as redis_url:
        yield lambda: open_store(redis_url)


async def test_conversation_lifecycle(stores: StoreFactory) -> None:
    async with stores() as store:
        assert await store.conversation("k") is None
        first = await store.begin("k")
        assert (first.generation, first.ended) == (1, False)
        await store.set_ended("k", True)
        assert (await store.conversation("k")).ended  # type: ignore[union-attr]
        again = await store.begin("k")
        assert (again.generation, again.ended) == (1, False)
        old = await store.rotate("k")
        assert old is not None and old.generation == 1
        rotated = await store.conversation("k")
        assert rotated is not None and (rotated.generation, rotated.ended) == (2, True)
        reopened = await store.begin("k")
        assert (reopened.generation, reopened.ended) == (2, False)


async def test_rotate_of_an_unknown_conversation_starts_at_generation_two(
    stores: StoreFactory,
) -> None:
    async with stores() as store:
        assert await store.rotate("new") is None
        found = await store.conversation("new")
        assert found is not None and found.generation == 2


async def test_buttons_survive_a_reopen(stores: StoreFactory) -> None:
    request = {"type": "path-abc", "payload": {"label": "Go", "actions": []}}
    async with stores() as store:
        await store.save_buttons("conv", [("b1", Button("Go", request, None))])
    async with stores() as store:
        stored = await store.button("b1")
        assert await store.button("nope") is None
    assert stored is not None
    assert stored.conversation == "conv"
    assert stored.button.request == request
    assert stored.button.name == "Go"


async def test_inflight_records(stores: StoreFactory) -> None:
    async with stores() as store:
        await store.put_inflight(InFlight("m1", "discord", {"channel": "3000"}))
        await store.put_inflight(InFlight("m2", "slack", {"channel": "C1"}))
        await store.put_inflight(InFlight("m3", "discord", {"channel": "3001"}))
        assert [i.id for i in await store.inflight("discord")] == ["m1", "m3"]
        await store.drop_inflight("discord", "m1")
        assert [i.data for i in await store.inflight("discord")] == [{"channel": "3001"}]
        assert [i.id for i in await store.inflight("slack")] == ["m2"]


async def test_journals_are_listed_by_name_while_they_hold_a_message(
    stores: StoreFactory,
) -> None:
    async with stores() as store:
        for item_id, journal in (
            ("a", "discord:shard1/2"),
            ("b", "discord"),
            ("c", "discord:shard0/2"),
            ("d", "slack"),
            ("e", "discord*"),  # a glob character in a name is matched as itself
        ):
            await store.put_inflight(InFlight(item_id, journal, {}))
        assert await store.journals("discord") == [
            "discord",
            "discord*",
            "discord:shard0/2",
            "discord:shard1/2",
        ]
        assert await store.journals("discord*") == ["discord*"]
        assert await store.journals("discord:shard") == ["discord:shard0/2", "discord:shard1/2"]
        await store.drop_inflight("discord:shard1/2", "a")
        assert await store.journals("discord:") == ["discord:shard0/2"]
        assert await store.journals("") == ["discord", "discord*", "discord:shard0/2", "slack"]


async def test_a_native_stream_is_journaled_with_its_latest_confirmed_text(
    stores: StoreFactory,
) -> None:
    confirmed = "Here is **code**, café 👋:\n\n```python\nprint(1)\n"
    async with stores() as store:
        journal = SlackJournal(store, "C1")
        await journal.streaming("1.1", NativeEnd("Here ", 5))
        await journal.streaming("1.1", NativeEnd(confirmed, len(confirmed)))  # replaces
        await journal.showing("1.2", "Hi ▌")  # a post + update message in the same channel
    async with stores() as store:  # a restart after kill -9: the store is all that is left
        found = {item.data["ts"]: item.data for item in await store.inflight("slack")}
        assert found == {
            "1.1": {
                "channel": "C1",
                "ts": "1.1",
                "text": confirmed,
                "native": True,
                "sent": len(confirmed),
                "note": INTERRUPTED,
            },
            "1.2": {"channel": "C1", "ts": "1.2", "text": "Hi ▌"},
        }
        await SlackJournal(store, "C1").closed("1.1")
        assert [item.data["ts"] for item in await store.inflight("slack")] == ["1.2"]


async def test_a_native_stream_s_final_stop_is_journaled_with_the_whole_answer(
    stores: StoreFactory,
) -> None:
    async with stores() as store:
        journal = SlackJournal(store, "C1")
        await journal.streaming("1.1", NativeEnd("Hello ", 6))
        await journal.streaming("1.1", NativeEnd("Hello world.", 6, note=""))  # stop in flight
    async with stores() as store:
        [item] = await store.inflight("slack")
        assert (item.data["text"], item.data["sent"], item.data["note"]) == ("Hello world.", 6, "")


async def test_native_streams_of_two_channels_are_journaled_apart(stores: StoreFactory) -> None:
    async with stores() as store:
        await SlackJournal(store, "C1").streaming("1.1", NativeEnd("one ", 4))
        await SlackJournal(store, "C2").streaming("1.1", NativeEnd("two ", 4))  # same ts
        await SlackJournal(store, "C1").closed("1.1")
        assert [
            (item.data["channel"], item.data["text"]) for item in await store.inflight("slack")
        ] == [("C2", "two ")]


async def test_places_are_remembered_across_a_reopen(stores: StoreFactory) -> None:
    async with stores() as store:
        assert not await store.knows_place("slack|T1|C1:1.2")
        await store.remember_place("slack|T1|C1:1.2")
        await store.remember_place("slack|T1|C1:1.2")  # idempotent
    async with stores() as store:
        assert await store.knows_place("slack|T1|C1:1.2")


async def test_a_lease_has_one_holder_until_released_expired_or_taken_over(
    stores: StoreFactory,
) -> None:
    """Two stores on one database stand for two processes (core/lease.py)."""
    async with stores() as a, stores() as b:
        assert await a.claim("discord:x", "A", 30) is None
        assert await a.claim("discord:x", "A", 30) is None  # renewed
        assert await b.claim("discord:x", "B", 30) == "A"
        assert await b.claim("discord:y", "B", 30) is None  # another connection
        assert await b.claim("discord:x", "B", 30, take_from="A") is None  # A is gone
        assert await a.claim("discord:x", "A", 30) == "B"
        await a.release("discord:x", "A")  # not A's any more: nothing happens
        assert await a.claim("discord:x", "A", 30) == "B"
        await b.release("discord:x", "B")
        assert await a.claim("discord:x", "A", 0.05) is None
        await asyncio.sleep(0.2)
        assert await b.claim("discord:x", "B", 30) is None  # A's lease ran out
