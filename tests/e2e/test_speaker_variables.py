"""Who wrote and where reaches Voiceflow as ``bridge_*`` variables with every turn (the launch
too), from the real discord.py and slack-bolt bots to the simulator's recorded requests; and
not at all with VOICEFLOW_CONTEXT_VARIABLES=false."""

from __future__ import annotations

from typing import Any

from core.simulator.server import Simulator
from tests.e2e import discord_fixtures, slack_fixtures
from tests.e2e.discord_fixtures import WorldFactory, custom_id, expected_answer, wait_for_buttons
from tests.e2e.slack_fixtures import ANSWERS, CHANNEL, DM, TEAM
from tests.fakes.discord_model import HUMAN_ID
from tests.fakes.slack_payloads import HUMAN_USER_ID

__all__ = ["discord_world_factory", "slack_no_proxy", "slack_world_factory"]

discord_world_factory = discord_fixtures.discord_world_factory
slack_world_factory = slack_fixtures.slack_world_factory
slack_no_proxy = slack_fixtures.slack_no_proxy


def sent(simulator: Simulator) -> list[tuple[str, Any]]:
    """Each Voiceflow turn's action type and the variables sent with it."""
    return [
        (r.json["action"]["type"], r.json.get("variables"))
        for r in simulator.requests
        if r.path.endswith("/interact/stream") and r.json
    ]


async def test_discord_turns_tell_voiceflow_who_wrote_where(
    discord_world_factory: WorldFactory,
) -> None:
    async with discord_world_factory() as w:
        await w.mention("show me buttons")
        message = await wait_for_buttons(w, "3000", "Order coffee")
        in_guild = {
            "bridge_platform": "discord",
            "bridge_user_id": HUMAN_ID,
            "bridge_user_name": "human",
            "bridge_channel_id": "3000",
            "bridge_workspace_id": "4000",
            "bridge_is_dm": False,
        }
        assert sent(w.simulator) == [("launch", in_guild), ("text", in_guild)]
        await w.fake.click(message.id, custom_id(message, "Order coffee"))
        await w.wait_settled("3000", turns=3)
        assert sent(w.simulator)[-1][1] == in_guild  # the clicker
        await w.dm("hello there")
        await w.wait_for_content("5000", expected_answer("hello there"))
        in_dm = {k: v for k, v in in_guild.items() if k != "bridge_workspace_id"}
        assert sent(w.simulator)[-1] == (
            "text",
            in_dm | {"bridge_channel_id": "5000", "bridge_is_dm": True},
        )


async def test_slack_turns_tell_voiceflow_who_wrote_where(
    slack_world_factory: slack_fixtures.WorldFactory,
) -> None:
    async with slack_world_factory(mode="socket") as world:
        ts = await world.mention("hello there")
        await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"])
        await world.dm("hello there")
        await world.wait_answer(DM, None, ANSWERS["hello there"])
        await world.bot.drain()
        where = {
            "bridge_platform": "slack",
            "bridge_user_id": HUMAN_USER_ID,
            "bridge_workspace_id": TEAM,
        }
        in_channel = where | {"bridge_channel_id": CHANNEL, "bridge_is_dm": False}
        in_dm = where | {"bridge_channel_id": DM, "bridge_is_dm": True}
        assert [v for _, v in sent(world.simulator)] == [in_channel, in_channel, in_dm, in_dm]


async def test_no_variables_when_switched_off(discord_world_factory: WorldFactory) -> None:
    off = {"voiceflow_context_variables": False}
    async with discord_world_factory(settings_changes=off) as w:
        await w.mention("hello there")
        await w.wait_for_content("3000", expected_answer("hello there"))
        assert sent(w.simulator) == [("launch", None), ("text", None)]
