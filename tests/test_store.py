"""SqliteStore on a real file: schema on open, generations, buttons across reopen, inflight."""

from __future__ import annotations

from pathlib import Path

from core.store import InFlight, SqliteStore, open_store
from core.traces import Button


async def test_conversation_lifecycle(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
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


async def test_rotate_of_an_unknown_conversation_starts_at_generation_two(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        assert await store.rotate("new") is None
        found = await store.conversation("new")
        assert found is not None and found.generation == 2


async def test_buttons_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    request = {"type": "path-abc", "payload": {"label": "Go", "actions": []}}
    store = await SqliteStore.open(path)
    await store.save_buttons("conv", [("b1", Button("Go", request, None))])
    await store.close()
    store = await SqliteStore.open(path)
    stored = await store.button("b1")
    await store.close()
    assert stored is not None
    assert stored.conversation == "conv"
    assert stored.button.request == request
    assert stored.button.name == "Go"


async def test_inflight_records(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        await store.put_inflight(InFlight("m1", "discord", {"channel": "3000"}))
        await store.put_inflight(InFlight("m2", "slack", {"channel": "C1"}))
        assert [i.id for i in await store.inflight("discord")] == ["m1"]
        await store.drop_inflight("m1")
        assert await store.inflight("discord") == []


async def test_places_are_remembered_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await SqliteStore.open(path)
    assert not await store.knows_place("slack|T1|C1:1.2")
    await store.remember_place("slack|T1|C1:1.2")
    await store.remember_place("slack|T1|C1:1.2")  # idempotent
    await store.close()
    store = await SqliteStore.open(path)
    assert await store.knows_place("slack|T1|C1:1.2")
    await store.close()
