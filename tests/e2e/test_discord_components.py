"""Discord component limits (no network): rows of 5, 5 rows a message, 10 embeds, label 80.

Carousels: SPEC §6 "up to 10 embeds with buttons" in one message while 25 buttons suffice.
"""

from __future__ import annotations

from typing import Any

from bots.discord.components import CardMessage, card_messages, choice_views, parse_custom_id
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


def pick(card: int, index: int) -> ButtonRef:
    """Button ``index`` of card ``card``: "Pick 3a", "Pick 3b", ..."""
    name = f"Pick {card}{'abcde'[index]}"
    return ButtonRef(f"c{card:02d}b{index}", Button(name, {"type": f"path-{card}-{index}"}))


def carousel(cards: int, buttons: int) -> list[tuple[Card, list[ButtonRef]]]:
    """``cards`` cards titled "Card <n>", each with ``buttons`` buttons."""
    return [
        (Card(f"Card {n}", "d", None), [pick(n, i) for i in range(buttons)])
        for n in range(1, cards + 1)
    ]


def buttons_of(message: CardMessage) -> list[dict[str, Any]]:
    assert message.view is not None
    return [item for row in message.view.to_components() for item in row["components"]]


def layout(messages: list[CardMessage]) -> list[tuple[int, list[int]]]:
    """(embeds, buttons per row) of each message."""
    return [
        (len(m.embeds), rows(m.view.to_components()) if m.view is not None else [])
        for m in messages
    ]


async def test_a_carousel_of_twelve_cards_needs_a_second_message_for_its_last_two() -> None:
    messages = card_messages(carousel(12, 1))
    assert layout(messages) == [(10, [5, 5]), (2, [2])]  # only the 10-embed limit splits it
    assert all(m.view is not None and m.view.is_finished() for m in messages)


async def test_ten_cards_with_two_buttons_each_are_one_message_of_four_rows() -> None:
    (message,) = card_messages(carousel(10, 2))
    assert layout([message]) == [(10, [5, 5, 5, 5])]
    assert [e.title for e in message.embeds] == [f"Card {n}" for n in range(1, 11)]
    expected = [f"Card {n} · Pick {n}{letter}" for n in range(1, 11) for letter in "ab"]
    assert [b["label"] for b in buttons_of(message)] == expected  # each names its card
    assert [b["custom_id"] for b in buttons_of(message)] == [
        f"vfb:c{n:02d}b{b}" for n in range(1, 11) for b in range(2)
    ]


async def test_ten_cards_with_three_buttons_each_split_where_25_buttons_would_be_passed() -> None:
    messages = card_messages(carousel(10, 3))
    assert layout(messages) == [(8, [5, 5, 5, 5, 4]), (2, [5, 1])]
    for message in messages:  # each card's buttons sit in the message with its embed
        titles = {e.title for e in message.embeds}
        assert {b["label"].split(" · ")[0] for b in buttons_of(message)} == titles
    every = [b["custom_id"] for m in messages for b in buttons_of(m)]
    assert every == [f"vfb:c{n:02d}b{b}" for n in range(1, 11) for b in range(3)]


async def test_a_carousel_splits_at_6000_embed_characters_even_with_room_for_buttons() -> None:
    cards = [(Card(f"Card {n}", "d" * 1500, None), refs(1)) for n in range(1, 6)]
    messages = card_messages(cards)
    assert layout(messages) == [(3, [3]), (2, [2])]  # 4 × 1506 characters would pass 6000
    assert all(sum(len(e) for e in m.embeds) <= 6000 for m in messages)


async def test_a_card_with_more_than_25_buttons_goes_on_in_a_message_of_buttons() -> None:
    messages = card_messages([(Card("Menu", "d", None), refs(30))])
    assert layout(messages) == [(1, [5, 5, 5, 5, 5]), (0, [5])]
    assert buttons_of(messages[1])[0]["label"] == "Option 25"  # a lone card needs no prefix


async def test_carousel_labels_keep_the_card_title_within_eighty_characters() -> None:
    cards = [(Card("T" * 100, "d", None), refs(1, name="n" * 100)) for _ in range(2)]
    (message,) = card_messages(cards)
    for button in buttons_of(message):
        assert len(button["label"]) == 80
        assert button["label"].startswith("T" * 29 + "… · n")


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
