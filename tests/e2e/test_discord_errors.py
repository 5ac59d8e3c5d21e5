"""Discord faults mapped onto the core's errors, end to end, and budgets learned from headers."""

from __future__ import annotations

import logging

import pytest

from tests.e2e import discord_fixtures
from tests.e2e.discord_fixtures import DiscordWorld, WorldFactory, expected_answer

discord_world = discord_fixtures.discord_world
discord_world_factory = discord_fixtures.discord_world_factory

QUESTION = "tell me about faults please"


async def test_budgets_are_learned_from_the_rate_limit_headers(discord_world: DiscordWorld) -> None:
    w = discord_world
    await w.dm(QUESTION)
    await w.wait_for_content("5000", expected_answer(QUESTION))
    edit = w.bot.budgets.edit("5000")
    assert edit.limit == 5
    assert edit.window_s == pytest.approx(1.0, abs=0.1)  # the fake's 1 s, not the 5 s default
    assert w.bot.budgets.bucket("5000", "edit") is not None
    assert w.bot.budgets.bucket("5000", "post") is not None
    assert w.fake.count_429 == 0


async def test_a_429_without_via_is_waited_out_and_nothing_is_lost(
    discord_world_factory: WorldFactory,
) -> None:
    async with discord_world_factory(token_delay_s=0.02) as w:
        # No `Via`: discord.py does not retry it, the writer maps it to PlatformRateLimitedError.
        w.fake.inject(
            "PATCH", r"/channels/5000/messages/\d+", status=429, headers={"Retry-After": "0.3"}
        )
        await w.dm(QUESTION)
        await w.wait_for_content("5000", expected_answer(QUESTION))
        assert w.fake.count_429 == 1
        live = [m.content for m in w.bot_messages("5000")]
        assert live.count(expected_answer(QUESTION)) == 1


async def test_a_missing_permission_is_logged_once_by_name(
    discord_world: DiscordWorld, caplog: pytest.LogCaptureFixture
) -> None:
    w = discord_world
    caplog.set_level(logging.ERROR, logger="bots.discord")
    body = {"code": 50013, "message": "Missing Permissions"}
    w.fake.inject("POST", r"/channels/3500/messages", status=403, body=body, times=50)
    await w.mention("hello in a locked thread", channel_id="3500")
    await w.simulator.wait_for_turns(1)
    await w.fake.wait_until(lambda: _permission_lines(caplog) != [])
    (line,) = _permission_lines(caplog)
    assert "Send Messages in Threads" in line and "3500" in line
    assert w.fake.count_429 == 0


def _permission_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "lacks the" in r.getMessage()]
