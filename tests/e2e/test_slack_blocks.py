"""Cards, carousels and images in Slack end to end (SPEC §6), in Socket Mode and HTTP mode.

The simulator's default agent answers "card", "carousel" and "image"; the fake Slack refuses
Block Kit that real Slack would refuse (`invalid_blocks`), so a rendered message that reaches
the fake's message store is one Slack would have shown.
"""

from __future__ import annotations

from typing import Any

from core.simulator.agent import (
    DOCS_URL,
    IMAGE_URL,
    ScriptedAgent,
    card,
    carousel,
    path_button,
    text_button,
)
from tests.e2e import slack_fixtures
from tests.e2e.slack_fixtures import CHANNEL, SlackWorld
from tests.fakes.slack import FakeMessage

slack_world = slack_fixtures.slack_world
slack_world_factory = slack_fixtures.slack_world_factory
slack_no_proxy = slack_fixtures.slack_no_proxy


def block_messages(world: SlackWorld, thread_ts: str, kind: str) -> list[FakeMessage]:
    """The answer's messages that carry a block of ``kind``."""
    return [
        m
        for m in world.answer_messages(CHANNEL, thread_ts)
        if any(b.get("type") == kind for b in m.blocks or [])
    ]


async def wait_blocks(world: SlackWorld, thread_ts: str, kind: str, count: int = 1) -> None:
    """Until ``count`` messages show a ``kind`` block; a refused write fails at once."""
    await world.fake.wait_until(
        lambda: len(block_messages(world, thread_ts, kind)) >= count or bool(refusals(world))
    )
    await world.bot.drain()
    assert refusals(world) == []
    await world.assert_acked_in_time()


def elements(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def last_action(world: SlackWorld) -> dict[str, Any]:
    actions = [r.json["action"] for r in world.simulator.requests if r.json and "action" in r.json]
    return dict(actions[-1])


def refusals(world: SlackWorld) -> list[str]:
    return [f"{c.method}: {c.response}" for c in world.fake.calls if c.error]


async def test_card_is_a_section_an_image_and_its_buttons(slack_world: SlackWorld) -> None:
    world = slack_world
    ts = await world.mention("card")
    await wait_blocks(world, ts, "image")
    [message] = block_messages(world, ts, "image")
    section, image, actions = message.blocks or []
    assert section == {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": "*Voiceflow café ☕*\nA card with an image and two buttons.",
        },
    }
    assert image == {"type": "image", "image_url": IMAGE_URL, "alt_text": "Voiceflow café ☕"}
    more, docs = actions["elements"]
    assert more["text"]["text"] == "Tell me more" and more["action_id"].startswith("vfb:")
    assert docs["url"] == DOCS_URL and docs["action_id"].startswith("vfl:")
    assert message.text == "Voiceflow café ☕", "no notification fallback"
    assert refusals(world) == [] and world.fake.count_429 == 0


async def test_card_button_click_round_trips(slack_world: SlackWorld) -> None:
    world = slack_world
    ts = await world.mention("card")
    await wait_blocks(world, ts, "image")
    [message] = block_messages(world, ts, "image")
    await world.click(message, elements(message.blocks or [])[0]["action_id"])
    await world.fake.wait_until(
        lambda: "You chose **Tell me more**" in world.answer_text(CHANNEL, ts)
    )
    await world.bot.drain()
    assert last_action(world) == path_button("Tell me more", "d5n1v7y2")["request"]
    chosen = world.fake.messages[(CHANNEL, message.ts)].blocks or []
    assert [b["type"] for b in chosen] == ["section", "image", "context"], "card not kept"
    assert chosen[2]["elements"][0]["text"] == "<@UHUMAN> chose *Tell me more*"
    await world.assert_acked_in_time()
    assert refusals(world) == [] and world.fake.count_429 == 0


async def test_carousel_is_one_section_group_per_card(slack_world: SlackWorld) -> None:
    world = slack_world
    ts = await world.mention("carousel")
    await wait_blocks(world, ts, "image")
    [message] = block_messages(world, ts, "image")
    kinds = [b["type"] for b in message.blocks or []]
    group = ["section", "image", "actions"]
    assert kinds == [*group, "divider", *group, "divider", *group]
    titles = [b["text"]["text"] for b in message.blocks or [] if b["type"] == "section"]
    assert titles == [
        "*Espresso*\nCard 1 of 3.",
        "*Latte*\nCard 2 of 3.",
        "*Crème brûlée*\nCard 3 of 3.",
    ]
    latte = elements(message.blocks or [])[1]
    assert latte["text"]["text"] == "Latte"
    await world.click(message, latte["action_id"])
    await world.fake.wait_until(lambda: "You chose **Latte**" in world.answer_text(CHANNEL, ts))
    await world.bot.drain()
    assert last_action(world) == path_button("Latte", "card2")["request"]
    assert refusals(world) == [] and world.fake.count_429 == 0


async def test_visual_is_an_image_block(slack_world: SlackWorld) -> None:
    world = slack_world
    ts = await world.mention("image")
    await wait_blocks(world, ts, "image")
    streamed, posted = world.answer_messages(CHANNEL, ts)
    assert streamed.visible_text == "Here is an image:"
    assert posted.blocks == [{"type": "image", "image_url": IMAGE_URL, "alt_text": "image"}]
    assert refusals(world) == [] and world.fake.count_429 == 0


# -- beyond Block Kit's limits ---------------------------------------------------------------
LONG_TITLE = "Title " * 30
LONG_DESCRIPTION = "A description that goes on and on. " * 150  # 5,250 characters
LONG_LABEL = "A button label far longer than Slack's seventy-five characters allow for a button"


def oversized_agent() -> ScriptedAgent:
    many = [text_button(f"{LONG_LABEL} {i}") for i in range(30)]
    big = card(LONG_TITLE, LONG_DESCRIPTION, *many)
    cards = [card(f"Card {i}", f"Card {i} of 15.", text_button(f"Pick {i}"))["payload"]
             for i in range(15)]  # fmt: skip
    return ScriptedAgent(
        launch=[], texts={"big card": [big], "many cards": [carousel(*cards)]}, requests={},
        default=None,
    )  # fmt: skip


async def test_a_card_beyond_the_limits_is_cut_to_fit(slack_world: SlackWorld) -> None:
    world = slack_world
    world.simulator.agent = oversized_agent()
    ts = await world.mention("big card")
    await wait_blocks(world, ts, "image")
    [message] = block_messages(world, ts, "image")
    blocks = message.blocks or []
    assert [b["type"] for b in blocks] == ["section", "image", "actions", "actions"]
    assert len(blocks[0]["text"]["text"]) == 3000 and blocks[0]["text"]["text"].endswith("…")
    assert [len(b["elements"]) for b in blocks[2:]] == [25, 5], "not 25 buttons per block"
    labels = [e["text"]["text"] for e in elements(blocks)]
    assert all(len(label) == 75 for label in labels) and len(set(labels)) == 1
    await world.click(message, elements(blocks)[29]["action_id"])
    await world.simulator.wait_for_requests(3, path_contains="/interact/stream")
    await world.bot.drain()
    assert last_action(world) == text_button(f"{LONG_LABEL} 29")["request"], "wrong button"


async def test_a_carousel_beyond_fifty_blocks_is_split(slack_world: SlackWorld) -> None:
    world = slack_world
    world.simulator.agent = oversized_agent()
    ts = await world.mention("many cards")
    await wait_blocks(world, ts, "image", count=2)
    messages = block_messages(world, ts, "image")
    assert all(len(m.blocks or []) <= 50 for m in messages)
    blocks = [b for m in messages for b in m.blocks or []]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert sections == [f"*Card {i}*\nCard {i} of 15." for i in range(15)], "a card lost"
    assert world.fake.count_429 == 0
