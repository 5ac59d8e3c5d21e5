"""Buttons, cards, carousels and images end to end — including a click after a restart."""

from __future__ import annotations

from typing import Any

from bots.discord.bot import NOT_YOUR_BUTTONS_TEXT
from core.simulator import DefaultAgent
from core.simulator.agent import ScriptedAgent, carousel, choice, completion, path_button
from core.simulator.content import label_answer
from tests.e2e import discord_fixtures
from tests.e2e.discord_fixtures import (
    DiscordWorld,
    WorldFactory,
    buttons_of,
    custom_id,
    expected_answer,
    wait_for_buttons,
)
from tests.fakes.discord import FakeMessage

discord_world = discord_fixtures.discord_world
discord_world_factory = discord_fixtures.discord_world_factory

FLAG_EPHEMERAL = 1 << 6


def agent_button(keyword: str, label: str) -> dict[str, Any]:
    """The request the simulator's agent attached to the button ``label``."""
    for trace in DefaultAgent().respond({"type": "text", "payload": keyword}):
        for button in (trace.get("payload") or {}).get("buttons") or ():
            if button["name"] == label:
                request: dict[str, Any] = button["request"]
                return request
    raise AssertionError(f"no button {label!r}")


async def click_and_check(world: DiscordWorld, message: FakeMessage, channel_id: str) -> None:
    """Click "Order coffee": deferred at once, request verbatim, chooser shown, set disabled."""
    interaction_id = await world.fake.click(message.id, custom_id(message, "Order coffee"))
    expected = label_answer("button", "Order coffee")
    await world.wait_for_content(channel_id, expected)
    interaction = world.fake.interactions[interaction_id]
    assert interaction.response_type == 6  # deferred update, no loading state
    assert (
        interaction.response_after_s is not None and interaction.response_after_s < 3.0
    )  # Discord kills the token at 3 s
    assert world.voiceflow_actions()[-1] == agent_button("buttons", "Order coffee")
    assert message.content.endswith("**human** chose *Order coffee*")
    for button in buttons_of(message):
        assert button.get("disabled") is True or button["style"] == 5  # links stay usable
    chosen = next(b for b in buttons_of(message) if b.get("label") == "Order coffee")
    assert chosen["style"] == 3
    assert world.fake.count_429 == 0


async def test_a_click_sends_the_request_verbatim(discord_world: DiscordWorld) -> None:
    w = discord_world
    await w.mention("show me buttons")
    message = await wait_for_buttons(w, "3000", "Order coffee")
    ids = [b.get("custom_id") for b in buttons_of(message)]
    assert all(i.startswith("vfb:") and len(i) <= 100 for i in ids if i is not None)
    link = next(b for b in buttons_of(message) if b.get("label") == "Docs")
    assert link["style"] == 5 and link["url"].startswith("https://") and "custom_id" not in link
    assert len(message.components) == 1 and len(buttons_of(message)) == 5
    await click_and_check(w, message, "3000")


async def test_buttons_work_after_a_restart(discord_world: DiscordWorld) -> None:
    w = discord_world
    await w.dm("show me buttons")
    message = await wait_for_buttons(w, "5000", "Order coffee")
    await w.wait_settled("5000", turns=2)
    await w.restart()
    await click_and_check(w, message, "5000")


async def test_an_unknown_button_says_it_expired(discord_world: DiscordWorld) -> None:
    w = discord_world
    await w.dm("show me buttons")
    message = await wait_for_buttons(w, "5000", "Order coffee")
    interaction_id = await w.fake.click(message.id, "vfb:0000deadbeef")

    def expired() -> FakeMessage | None:
        return next(
            (
                m
                for m in w.fake.messages.values()
                if m.flags & FLAG_EPHEMERAL and m.content == "This button has expired."
            ),
            None,
        )

    await w.fake.wait_until(lambda: expired() is not None, 10)
    assert w.fake.interactions[interaction_id].response_type == 6
    assert not message.content  # the real set is untouched
    assert w.fake.count_429 == 0


async def test_a_second_click_on_a_chosen_set_is_refused(discord_world: DiscordWorld) -> None:
    w = discord_world
    await w.dm("show me buttons")
    message = await wait_for_buttons(w, "5000", "Order coffee")
    await click_and_check(w, message, "5000")
    turns = len(w.voiceflow_actions())
    await w.fake.click(message.id, custom_id(message, "Track order"))
    await w.fake.wait_until(
        lambda: any(m.content == "This choice was already made." for m in w.fake.messages.values())
    )
    assert len(w.voiceflow_actions()) == turns
    assert w.fake.count_429 == 0


async def test_a_card_is_an_embed_with_its_buttons(discord_world: DiscordWorld) -> None:
    w = discord_world
    await w.dm("a card please")
    message = await wait_for_buttons(w, "5000", "Tell me more")
    (embed,) = message.embeds
    assert embed["title"] == "Voiceflow café ☕"
    assert embed["description"] == "A card with an image and two buttons."
    assert embed["image"]["url"].startswith("https://")
    labels = [b["label"] for b in buttons_of(message)]
    assert labels == ["Tell me more", "Open docs"]
    assert w.fake.count_429 == 0


async def test_a_carousel_is_one_message_of_embeds(discord_world: DiscordWorld) -> None:
    w = discord_world
    await w.dm("a carousel please")
    message = await wait_for_buttons(w, "5000", "Espresso · Espresso")
    assert [e["title"] for e in message.embeds] == ["Espresso", "Latte", "Crème brûlée"]
    assert len(message.components) == 1  # packed five to a row, each labelled with its card
    labels = [b["label"] for b in buttons_of(message)]
    assert labels == ["Espresso · Espresso", "Latte · Latte", "Crème brûlée · Crème brûlée"]
    await w.fake.click(message.id, custom_id(message, "Latte · Latte"))
    await w.wait_for_content("5000", expected_answer_for_path("Latte"))
    assert message.content.endswith("**human** chose *Latte · Latte*")
    assert w.fake.count_429 == 0


def numbered_card(n: int, buttons: int) -> dict[str, Any]:
    """Carousel card "Card <n>" with path buttons "Pick <n>a", "Pick <n>b", ..."""
    picks = [path_button(f"Pick {n}{'abc'[i]}", f"c{n}b{i}") for i in range(buttons)]
    return {"id": f"card-{n}", "title": f"Card {n}", "description": {"text": "d"}, "buttons": picks}


def show_carousel(world: DiscordWorld, buttons: int) -> list[dict[str, Any]]:
    """Script "big carousel" as ten cards with ``buttons`` buttons each; returns the traces."""
    traces = [carousel(*(numbered_card(n, buttons) for n in range(1, 11)))]
    world.simulator.agent = ScriptedAgent(
        launch=[], texts={"big carousel": traces}, requests={}, default=None
    )
    return traces


async def click_in_carousel(
    world: DiscordWorld, message: FakeMessage, traces: list[dict[str, Any]], label: str
) -> None:
    """Click ``label``: request sent verbatim, chooser shown, the message's set disabled."""
    name = label.split(" · ")[1]  # the button's own name, after its card's title
    await world.fake.click(message.id, custom_id(message, label))
    await world.wait_for_content("5000", expected_answer_for_path(name))
    sent = next(b for c in traces[0]["payload"]["cards"] for b in c["buttons"] if b["name"] == name)
    assert world.voiceflow_actions()[-1] == sent["request"]
    assert message.content == f"**human** chose *{label}*"
    assert all(b.get("disabled") is True for b in buttons_of(message))
    assert [b["label"] for b in buttons_of(message) if b["style"] == 3] == [label]
    assert world.fake.count_429 == 0


async def test_ten_cards_with_two_buttons_each_are_one_message(discord_world: DiscordWorld) -> None:
    w = discord_world
    traces = show_carousel(w, buttons=2)
    await w.dm("big carousel")
    message = await wait_for_buttons(w, "5000", "Card 10 · Pick 10b")
    assert [e["title"] for e in message.embeds] == [f"Card {n}" for n in range(1, 11)]
    assert [len(row["components"]) for row in message.components] == [5, 5, 5, 5]
    assert [m.id for m in w.bot_messages("5000") if m.embeds] == [message.id]
    labels = [b["label"] for b in buttons_of(message)]
    assert labels == [f"Card {n} · Pick {n}{x}" for n in range(1, 11) for x in "ab"]
    # The last button of the last packed row (card 10 shares rows with the cards before it).
    await click_in_carousel(w, message, traces, "Card 10 · Pick 10b")


async def test_ten_cards_with_three_buttons_each_are_two_messages(
    discord_world: DiscordWorld,
) -> None:
    w = discord_world
    traces = show_carousel(w, buttons=3)
    await w.dm("big carousel")
    await wait_for_buttons(w, "5000", "Card 10 · Pick 10c")
    first, second = [m for m in w.bot_messages("5000") if m.embeds]
    assert [len(m.embeds) for m in (first, second)] == [8, 2]  # 24 buttons, then 6
    assert [len(row["components"]) for row in first.components] == [5, 5, 5, 5, 4]
    assert [len(row["components"]) for row in second.components] == [5, 1]
    # A click in the split-off message works the same; that message is its button set.
    await click_in_carousel(w, second, traces, "Card 9 · Pick 9a")


def expected_answer_for_path(label: str) -> str:
    return label_answer("button", label)


async def test_an_image_is_an_image_embed(discord_world: DiscordWorld) -> None:
    w = discord_world
    await w.dm("an image please")
    await w.wait_for_content("5000", expected_answer("an image please"))
    await w.fake.wait_until(lambda: any(m.embeds for m in w.bot_messages("5000")))
    (embed,) = next(m.embeds for m in w.bot_messages("5000") if m.embeds)
    assert embed["image"]["url"].startswith("https://")
    assert w.fake.count_429 == 0


async def test_a_path_button_that_also_opens_a_url_still_sends_its_path(
    discord_world: DiscordWorld,
) -> None:
    """A link button cannot send a click on Discord: a path button with an open_url action
    stays a click that sends its request, and the chooser line carries the link instead."""
    w = discord_world
    pricing = path_button("Pricing", "p1")
    pricing["request"]["payload"]["actions"] = [
        {"type": "open_url", "payload": {"url": "https://example.com/pricing"}}
    ]
    w.simulator.agent = ScriptedAgent(
        launch=[],
        texts={"plans": [choice(pricing)]},
        requests={"path-p1": [completion("Our plans.")]},
        default=None,
    )
    await w.dm("plans")
    message = await wait_for_buttons(w, "5000", "Pricing")
    (button,) = buttons_of(message)
    assert button["style"] != 5 and button["custom_id"].startswith("vfb:")
    await w.fake.click(message.id, button["custom_id"])
    await w.wait_for_content("5000", "Our plans.")
    assert w.voiceflow_actions()[-1] == pricing["request"]
    assert message.content.endswith("chose *Pricing* → <https://example.com/pricing>")


async def test_with_a_conversation_per_member_a_click_drives_only_your_own(
    discord_world_factory: WorldFactory,
) -> None:
    """CONVERSATION_SCOPE=channel_user: the buttons shown to one member are refused to
    another (they would drive the first member's Voiceflow state)."""
    async with discord_world_factory(settings_changes={"conversation_scope": "channel_user"}) as w:
        await w.mention("show me buttons")  # asked by the human, 2000
        message = await wait_for_buttons(w, "3000", "Order coffee")
        turns = len(w.voiceflow_actions())
        await w.fake.click(message.id, custom_id(message, "Order coffee"), user_id="2001")
        await w.fake.wait_until(
            lambda: any(
                m.flags & FLAG_EPHEMERAL and m.content == NOT_YOUR_BUTTONS_TEXT
                for m in w.fake.messages.values()
            )
        )
        assert len(w.voiceflow_actions()) == turns and not message.content
        await click_and_check(w, message, "3000")  # the member it was shown to still can
