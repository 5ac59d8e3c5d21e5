"""A member who opens the bot's Messages tab for the first time gets the agent's welcome (the
launch) in the DM, from the real slack-bolt bot over both transports: once, never again for
that conversation, and never for a member who has already talked to it."""

from __future__ import annotations

from typing import Any

from core.simulator import ScriptedAgent
from core.simulator.agent import completion, end_trace
from tests.e2e import slack_fixtures
from tests.e2e.slack_fixtures import ANSWERS, DM, SlackWorld
from tests.fakes.slack_payloads import HUMAN_USER_ID

__all__ = ["slack_mode", "slack_no_proxy", "slack_world_factory"]

slack_world_factory = slack_fixtures.slack_world_factory
slack_no_proxy = slack_fixtures.slack_no_proxy
slack_mode = slack_fixtures.slack_mode

WELCOME = "Welcome! I'm the **café** agent — ask me anything."
BYE = "Goodbye — see you soon."


def welcoming(world: SlackWorld) -> None:
    """The scripted agent, greeting on launch."""
    texts = slack_fixtures.scripted_agent().texts | {"bye": [completion(BYE), end_trace()]}
    world.simulator.agent = ScriptedAgent(
        launch=[completion(WELCOME)], texts=texts, requests={}, default=None
    )


def home_opened(tab: str = "messages", *, user: str = HUMAN_USER_ID) -> dict[str, Any]:
    """``app_home_opened`` as Slack delivers it when a member opens the app."""
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": DM,
        "tab": tab,
        "event_ts": "1700000000.000100",
    }


def actions(world: SlackWorld) -> list[str]:
    return [
        str(r.json["action"]["type"])
        for r in world.simulator.requests
        if r.path.endswith("/interact/stream") and r.json
    ]


async def test_opening_the_messages_tab_first_time_shows_the_welcome_once(
    slack_world_factory: slack_fixtures.WorldFactory, slack_mode: slack_fixtures.Mode
) -> None:
    async with slack_world_factory(mode=slack_mode) as world:
        welcoming(world)
        await world.deliver(home_opened())
        await world.wait_answer(DM, None, WELCOME)
        assert not world.fake.calls_to("assistant.threads.setStatus"), "no message to hang it on"
        await world.deliver(home_opened())  # opened again: the conversation exists
        await world.dm("hello there")
        await world.wait_answer(DM, None, WELCOME + ANSWERS["hello there"])
        await world.deliver(home_opened())
        await world.dm("tell me more")  # anything the open started shows before this ends
        await world.wait_answer(
            DM, None, WELCOME + ANSWERS["hello there"] + ANSWERS["tell me more"]
        )
        assert actions(world) == ["launch", "text", "text"]


async def test_no_welcome_for_the_home_tab_or_a_member_who_has_talked(
    slack_world_factory: slack_fixtures.WorldFactory,
) -> None:
    async with slack_world_factory(mode="socket") as world:
        welcoming(world)
        await world.deliver(home_opened("home"))
        await world.dm("hello there")  # the home tab greeted nobody: this message launches
        await world.wait_answer(DM, None, WELCOME + ANSWERS["hello there"])
        await world.deliver(home_opened())
        await world.dm("tell me more")
        await world.wait_answer(
            DM, None, WELCOME + ANSWERS["hello there"] + ANSWERS["tell me more"]
        )
        assert actions(world) == ["launch", "text", "text"]
        assert [m.visible_text for m in world.answer_messages(DM, None)] == [
            WELCOME,
            ANSWERS["hello there"],
            ANSWERS["tell me more"],
        ]


async def test_a_welcome_that_ends_the_conversation_is_not_repeated_on_each_open(
    slack_world_factory: slack_fixtures.WorldFactory,
) -> None:
    """A greet-and-end agent (the launch ends the conversation): opening the tab again must
    not greet again, although the conversation is ended; the member's next message launches
    afresh, as any message after an ``end`` does."""
    async with slack_world_factory(mode="socket") as world:
        world.simulator.agent = ScriptedAgent(
            launch=[completion(WELCOME), end_trace()], texts={}, requests={}, default=None
        )
        await world.deliver(home_opened())
        await world.wait_answer(DM, None, WELCOME)
        await world.deliver(home_opened())
        await world.dm("hello there")
        await world.wait_answer(DM, None, WELCOME * 2)
        await world.bot.drain()
        assert actions(world) == ["launch", "launch"]
