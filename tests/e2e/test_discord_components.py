"""Discord component limits (no network): rows of 5, 5 rows a message, 10 embeds, label 80."""

from __future__ import annotations

from typing import Any

from bots.discord.components import card_messages, choice_views, parse_custom_id
from bots.discord.onboarding import bot_intents, privileged_intents_error
from core.platform import ButtonRef
from core.traces import Button, Card


def refs(count: int, *, name: str = "Option") -> list[ButtonRef]:
    return [
        ButtonRef(f"id{i:04d}", Button(f"{name} {i}", {"type": f"path-{i}"})) for i in range(count)
    ]


def rows(payload: list[dict[str, Any]]) -> list[int]:
    return [len(row["components"]) for row in payload]


async def test_choice_buttons_fill_rows_of_five_and_spill_into_more_messages() -> None:
    views = choice_views(refs(27))
    assert [rows(v.to_components()) for v in views] == [[5, 5, 5, 5, 5], [2]]
    assert all(v.is_finished() for v in views)  # never kept in discord.py's view store
    first = views[0].to_components()[0]["components"][0]
    assert first["custom_id"] == "vfb:id0000" and first["label"] == "Option 0"


async def test_labels_are_clipped_to_eighty_characters() -> None:
    (view,) = choice_views(refs(1, name="x" * 200))
    label = view.to_components()[0]["components"][0]["label"]
    assert len(label) == 80 and label.endswith("…")


async def test_a_carousel_of_twelve_cards_needs_more_than_one_message() -> None:
    cards = [(Card(f"Card {i}", "d", None), refs(1)) for i in range(12)]
    messages = card_messages(cards)
    assert [len(m.embeds) for m in messages] == [5, 5, 2]  # 5 rows of buttons per message
    for message in messages:
        assert message.view is not None
        assert len(message.view.to_components()) == len(message.embeds)


async def test_cards_without_buttons_pack_ten_embeds_and_respect_6000_chars() -> None:
    cards = [(Card(f"Card {i}", "d" * 1000, None), []) for i in range(12)]
    messages = card_messages(cards)
    for message in messages:
        assert len(message.embeds) <= 10
        assert sum(len(e) for e in message.embeds) <= 6000
        assert message.view is None
    assert sum(len(m.embeds) for m in messages) == 12


async def test_a_long_description_is_clipped_to_the_embed_limit() -> None:
    (message,) = card_messages([(Card("t", "y" * 5000, "https://x.test/i.png"), [])])
    (embed,) = message.embeds
    assert embed.description is not None and len(embed.description) == 4096
    assert embed.image.url == "https://x.test/i.png"


def test_custom_ids_parse_back() -> None:
    assert parse_custom_id("vfb:abc") == ("button", "abc")
    assert parse_custom_id("vfs:123") == ("stop", "123")
    assert parse_custom_id("vfb:") is None
    assert parse_custom_id("other:1") is None


def test_the_bot_asks_for_no_privileged_intent() -> None:
    intents = bot_intents()
    assert not (intents.message_content or intents.members or intents.presences)
    assert intents.guild_messages and intents.dm_messages and intents.guilds
    text = privileged_intents_error(intents, None)
    assert "Bot → Privileged Gateway Intents" in text
