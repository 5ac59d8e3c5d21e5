"""Who wrote and where reaches Voiceflow as ``bridge_*`` variables with every turn (the launch
too), from the real discord.py and slack-bolt bots to the simulator's recorded requests; and
not at all with VOICEFLOW_CONTEXT_VARIABLES=false."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from bots.slack.names import NAME_WAIT_S
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


def member(display_name: str, real_name: str) -> dict[str, Any]:
    """A users.info ``user`` as Slack answers it."""
    return {
        "id": HUMAN_USER_ID,
        "team_id": TEAM,
        "name": "ada.l",
        "real_name": real_name,
        "is_bot": False,
        "profile": {"display_name": display_name, "real_name": real_name},
    }


@pytest.mark.parametrize(
    ("display_name", "told"),
    [("Ada", "Ada"), ("", "Ada Lovelace")],
    ids=["display-name", "full-name-without-one"],
)
async def test_slack_turns_tell_voiceflow_who_wrote_where(
    slack_world_factory: slack_fixtures.WorldFactory, display_name: str, told: str
) -> None:
    async with slack_world_factory(mode="socket") as world:
        world.fake.users[HUMAN_USER_ID] = member(display_name, "Ada Lovelace")
        ts = await world.mention("hello there")
        await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"])
        await world.dm("hello there")
        await world.wait_answer(DM, None, ANSWERS["hello there"])
        await world.bot.drain()
        where = {
            "bridge_platform": "slack",
            "bridge_user_id": HUMAN_USER_ID,
            "bridge_user_name": told,
            "bridge_workspace_id": TEAM,
        }
        in_channel = where | {"bridge_channel_id": CHANNEL, "bridge_is_dm": False}
        in_dm = where | {"bridge_channel_id": DM, "bridge_is_dm": True}
        assert [v for _, v in sent(world.simulator)] == [in_channel, in_channel, in_dm, in_dm]
        asked = world.fake.calls_to("users.info")
        assert [c.args for c in asked] == [{"user": HUMAN_USER_ID}], "names are cached"


async def test_slack_without_users_read_sends_no_name_and_says_so_once(
    slack_world_factory: slack_fixtures.WorldFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A token installed from a manifest without ``users:read``: answers as before, without
    ``bridge_user_name``; one log line tells the operator, and Slack is not asked again."""
    caplog.set_level(logging.INFO, logger="bots.slack")
    async with slack_world_factory(mode="socket") as world:
        world.fake.inject("users.info", error="missing_scope", times=10)
        ts = await world.mention("hello there")
        await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"])
        await world.dm("hello there", user="UOTHER")  # another member: still not asked
        await world.wait_answer(DM, None, ANSWERS["hello there"])
        await world.bot.drain()
        told = [v for _, v in sent(world.simulator)]
        assert len(told) == 4 and all(v and "bridge_user_name" not in v for v in told), told
        assert [v and v["bridge_user_id"] for v in told] == [HUMAN_USER_ID] * 2 + ["UOTHER"] * 2
        assert len(world.fake.calls_to("users.info")) == 1
    lines = [r.getMessage() for r in caplog.records if "users:read" in r.getMessage()]
    assert len(lines) == 1 and "bridge_user_name" in lines[0], lines


async def test_a_slow_users_info_does_not_hold_the_answer_back(
    slack_world_factory: slack_fixtures.WorldFactory,
) -> None:
    """Slack answers users.info late: the turn goes on without the name after NAME_WAIT_S,
    and the lookup, finished meanwhile, names the member's next turn."""
    stall_s = NAME_WAIT_S + 1.0
    async with slack_world_factory(mode="socket") as world:
        world.fake.users[HUMAN_USER_ID] = member("Ada", "Ada Lovelace")
        world.fake.stall("users.info", stall_s)
        ts = await world.mention("hello there")
        await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"])
        first = [v for _, v in sent(world.simulator)]
        assert first and all(v and "bridge_user_name" not in v for v in first), first
        await world.fake.wait_until(lambda: world.fake.late_answers == 1, stall_s + 5)
        await world.dm("hello there")
        await world.wait_answer(DM, None, ANSWERS["hello there"])
        await world.bot.drain()
        later = [v for _, v in sent(world.simulator)][len(first) :]
        assert later and all(v and v.get("bridge_user_name") == "Ada" for v in later), later
        assert len(world.fake.calls_to("users.info")) == 1


async def test_a_lookup_still_waiting_at_shutdown_is_cancelled(
    slack_world_factory: slack_fixtures.WorldFactory,
) -> None:
    """The bot stops while Slack still owes a users.info answer: the answer went out without
    the name, and the lookup does not outlive the bot (no task left pending on the loop)."""
    async with slack_world_factory(mode="socket") as world:
        world.fake.stall("users.info", 60.0)
        ts = await world.mention("hello there")
        await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"])
        await world.bot.drain()
        assert lookups_running(), "the stalled lookup is still asking"
        await world.aclose()  # the bot stops; Slack still owes the answer
        assert not lookups_running()


def lookups_running() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("slack users.info")]


async def test_no_variables_when_switched_off(discord_world_factory: WorldFactory) -> None:
    off = {"voiceflow_context_variables": False}
    async with discord_world_factory(settings_changes=off) as w:
        await w.mention("hello there")
        await w.wait_for_content("3000", expected_answer("hello there"))
        assert sent(w.simulator) == [("launch", None), ("text", None)]
