"""Sharding (bots/discord/shards.py): the real discord.py AutoShardedClient against FakeDiscord.

The fake routes every event to the session of the shard that owns its guild
(``(guild_id >> 22) % count``) and DMs to shard 0, as Discord does: a shard the bot does not
connect never sees its guild's messages. Guild 4000 (channel 3000) is on shard 0 of 2, guild
4194304 (channel 3200) on shard 1.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bots.discord import DiscordBot, check_discord
from core.bridge import open_bridge
from core.config import Secret
from core.errors import ConfigError, PlatformError
from core.lease import lease_name
from core.store import InFlight
from tests.e2e import discord_fixtures
from tests.e2e.discord_fixtures import (
    DiscordWorld,
    WorldFactory,
    expected_answer,
    streaming_message,
)
from tests.fakes.discord_rest import Reply

__all__ = ["discord_world_factory"]

discord_world_factory = discord_fixtures.discord_world_factory

HOME, OTHER, DM = "3000", "3200", "5000"  # shard 0, shard 1, shard 0 (DMs) of 2
#: Discord lets shards 0 and 1 IDENTIFY at once (two buckets), so no test waits out the 5 s.
TWO_AT_ONCE: dict[str, Any] = {"max_concurrency": 2}
#: Answers still streaming when a test ends are cut at once.
QUICK_STOP: dict[str, Any] = {"shutdown_grace_s": 0.1}


async def ask_everywhere(w: DiscordWorld) -> None:
    """A mention in each guild and a DM, each answered exactly once."""
    for channel in (HOME, OTHER):
        await w.mention(f"hello from {channel}", channel_id=channel)
    await w.dm("hello from the DM")
    for channel, question in (
        (HOME, f"hello from {HOME}"),
        (OTHER, f"hello from {OTHER}"),
        (DM, "hello from the DM"),
    ):
        await w.wait_for_content(channel, expected_answer(question))
    await w.wait_settled(DM, turns=3)
    for channel, question in ((HOME, HOME), (OTHER, OTHER)):
        answers = w.find_all(channel, expected_answer(f"hello from {question}"))
        assert len(answers) == 1, f"channel {channel} answered {len(answers)} times"


async def test_one_process_connects_every_shard_and_answers_in_each(
    discord_world_factory: WorldFactory,
) -> None:
    async with discord_world_factory(
        settings_changes={"discord_shard_count": 2}, fake_changes=TWO_AT_ONCE
    ) as w:
        assert w.fake.gateway.live_shards == [(0, 2), (1, 2)]
        assert [i["shard"] for i in w.fake.gateway.identifies] == [[0, 2], [1, 2]]
        await ask_everywhere(w)
        # The network drops: each shard resumes its own session and hears its guild again.
        await w.fake.drop_gateway()
        await w.fake.wait_until(lambda: w.fake.gateway.resume_count == 2, 30)
        assert w.fake.gateway.live_shards == [(0, 2), (1, 2)]
        assert w.fake.gateway.identify_count == 2
        await w.mention("again after the drop", channel_id=OTHER)
        await w.wait_for_content(OTHER, expected_answer("again after the drop"))
        assert w.fake.count_429 == 0


async def test_auto_takes_discords_count_and_keeps_the_configured_gateway(
    discord_world_factory: WorldFactory,
) -> None:
    """DISCORD_SHARD_COUNT=auto asks GET /gateway/bot for the count, but connects to
    DISCORD_GATEWAY_URL (a proxy), not to the URL that answer names."""
    async with discord_world_factory(
        settings_changes={"discord_shard_count": "auto"}, fake_changes=TWO_AT_ONCE, start=False
    ) as w:
        w.fake.recommended_shards = 2
        w.fake.bot_gateway_url = "ws://127.0.0.1:9/gw"  # nothing listens there
        await w._open_bot()
        assert w.fake.gateway.live_shards == [(0, 2), (1, 2)]
        assert any(r.route == "GET /gateway/bot" for r in w.fake.requests)
        await ask_everywhere(w)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(404, {"message": "404: Not Found", "code": 0}),
        Reply(200, {"url": "ws://127.0.0.1:9/gw"}),  # the shape of GET /gateway
        Reply(200, "ok"),
    ],
    ids=["missing", "without-fields", "not-an-object"],
)
async def test_an_api_without_a_usable_gateway_bot_route_still_serves_unsharded(
    discord_world_factory: WorldFactory, reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    """A REST proxy may not know GET /gateway/bot: an unsharded bot connects without the
    session starts (saying so), while ``auto``, which needs its count, stops with one line."""
    async with discord_world_factory(fake_changes={"gateway_bot_reply": reply}) as w:
        await w.mention("hello through the proxy")
        await w.wait_for_content(HOME, expected_answer("hello through the proxy"))
        assert "connecting without knowing the session starts left" in caplog.text
    auto = {"discord_shard_count": "auto"}
    async with (
        discord_world_factory(settings_changes=auto, start=False) as w,
        open_bridge(w.settings) as bridge,
    ):
        w.fake.gateway_bot_reply = reply
        with pytest.raises(PlatformError, match=r"^Discord: GET /gateway/bot (failed|answered)"):
            await DiscordBot(w.settings, bridge, guild_ready_timeout_s=0.05).start()
        assert w.fake.gateway.identify_count == 0
        assert await check_discord(w.settings) == []  # unknown is no problem for `check`


async def test_two_bots_on_halves_of_the_shards_answer_each_message_once(
    discord_world_factory: WorldFactory,
) -> None:
    """Two processes (here two bots with their own bridges on one SQLite file), shard 0 and
    shard 1 of 2: each guild is answered by one of them, DMs by shard 0's."""
    changes: dict[str, Any] = {"discord_shard_count": 2, "discord_shard_ids": (0,)}
    async with (
        discord_world_factory(
            settings_changes=changes, token_delay_s=0.02, fake_changes=TWO_AT_ONCE
        ) as w,
        AsyncExitStack() as stack,
    ):
        settings = replace(w.settings, discord_shard_ids=(1,))
        bridge = await stack.enter_async_context(open_bridge(settings))
        second = DiscordBot(settings, bridge, guild_ready_timeout_s=0.05)
        await second.start()
        stack.push_async_callback(second.close)  # closed first: it restores endpoints last
        assert w.fake.gateway.live_shards == [(0, 2), (1, 2)]
        await ask_everywhere(w)
        # Each process spends its share of the global 50/s: 25 each.
        assert w.bot.budgets.global_.limit == second.budgets.global_.limit == 25
        # A Stop click arrives on the shard of its guild: the process streaming that answer.
        await w.mention("something long please", channel_id=OTHER)
        streaming = await streaming_message(w, OTHER)
        stop_id = streaming.components[0]["components"][0]["custom_id"]
        await w.fake.click(streaming.id, stop_id)
        await w.fake.wait_until(lambda: streaming.content.endswith("⏹️ stopped"), 10)
        assert streaming.components == []


async def test_a_starting_shard_finalizes_only_its_own_shards_dangling_messages(
    discord_world_factory: WorldFactory,
) -> None:
    """Shard 1's process may be streaming while shard 0's restarts: a start must end only
    the messages its own shards left in flight."""
    changes: dict[str, Any] = {"discord_shard_count": 2, "discord_shard_ids": (0,)}
    async with discord_world_factory(settings_changes=changes, fake_changes=TWO_AT_ONCE) as w:
        home = await hanging_message(w, HOME)
        other = await hanging_message(w, OTHER)
        store = w.bridge.store
        for journal, channel, message_id in (
            ("discord:shard0/2", HOME, home),
            ("discord:shard1/2", OTHER, other),
        ):
            item = InFlight(f"discord|{channel}|{message_id}", journal, {
                "channel": channel, "message_id": message_id})  # fmt: skip
            await store.put_inflight(item)
        await w.restart()  # shard 0 only
        assert w.fake.messages[home].content == "Half an answer\n\n⚠️ interrupted"
        assert w.fake.messages[other].content == "Half an answer ▌", "shard 1's was ended"
        assert len(await w.bridge.store.inflight("discord:shard1/2")) == 1
        w.settings = replace(w.settings, discord_shard_ids=(1,))
        await w.restart()  # shard 1's process comes back
        assert w.fake.messages[other].content == "Half an answer\n\n⚠️ interrupted"
        assert w.fake.messages[other].components == []
        assert await w.bridge.store.inflight("discord:shard1/2") == []


async def test_shard_0s_process_finalizes_what_the_unsharded_bot_left_once_it_is_gone(
    discord_world_factory: WorldFactory,
) -> None:
    """Moving a bot from one connection to shards: the unsharded process's journal is taken
    over by the process of shard 0, but only while no unsharded process holds the bot's
    lease (it could be streaming those answers)."""
    async with discord_world_factory(fake_changes=TWO_AT_ONCE) as w:  # unsharded
        left = await hanging_message(w, HOME)
        item = InFlight(f"discord|{HOME}|{left}", "discord", {"channel": HOME, "message_id": left})
        await w.bridge.store.put_inflight(item)
        whole = lease_name("discord", Secret(w.fake.token))
        assert await w.bridge.store.claim(whole, "elsewhere:1:cafe", 30) is None
        for ids in ((1,), (0,)):  # not shard 0; shard 0 with the unsharded process alive
            w.settings = replace(w.settings, discord_shard_count=2, discord_shard_ids=ids)
            await w.restart()
            assert w.fake.messages[left].content == "Half an answer ▌"
        await w.bridge.store.release(whole, "elsewhere:1:cafe")
        await w.restart()
        assert w.fake.messages[left].content == "Half an answer\n\n⚠️ interrupted"
        assert await w.bridge.store.inflight("discord") == []
        assert await w.bridge.store.claim(whole, "next:1:cafe", 30) is None, "lease kept"


async def test_a_new_layout_finalizes_what_the_old_one_left_once_its_process_is_gone(
    discord_world_factory: WorldFactory,
) -> None:
    """From 2 shards to one connection, then to 3 shards: the process of shard 0 finalizes
    each journal of an old layout whose lease is free, and leaves the one a live process of
    that layout still holds (it could be streaming those answers)."""
    async with discord_world_factory(fake_changes=TWO_AT_ONCE) as w:  # unsharded
        home, other = await hanging_message(w, HOME), await hanging_message(w, OTHER)
        for journal, channel, message_id in (
            ("discord:shard0/2", HOME, home),
            ("discord:shard1/2", OTHER, other),
        ):
            item = InFlight(f"discord|{channel}|{message_id}", journal, {
                "channel": channel, "message_id": message_id})  # fmt: skip
            await w.bridge.store.put_inflight(item)
        shard_1_of_2 = f"{lease_name('discord', Secret(w.fake.token))}:shard1/2"
        assert await w.bridge.store.claim(shard_1_of_2, "elsewhere:1:cafe", 30) is None
        await w.restart()
        assert w.fake.messages[home].content == "Half an answer\n\n⚠️ interrupted"
        assert w.fake.messages[other].content == "Half an answer ▌", "a live process's"
        await w.bridge.store.release(shard_1_of_2, "elsewhere:1:cafe")
        for ids, left in (((1, 2), "Half an answer ▌"), ((0,), "Half an answer\n\n⚠️ interrupted")):
            w.settings = replace(w.settings, discord_shard_count=3, discord_shard_ids=ids)
            await w.restart()  # not shard 0, then shard 0
            assert w.fake.messages[other].content == left
        assert w.fake.messages[other].components == []
        assert await w.bridge.store.journals("discord") == []
        assert await w.bridge.store.claim(shard_1_of_2, "next:1:cafe", 30) is None, "lease kept"


async def test_a_sharded_process_journals_its_answers_under_their_shard(
    discord_world_factory: WorldFactory,
) -> None:
    for changes, journal in (
        ({"discord_shard_count": 2, "discord_shard_ids": (1,)}, "discord:shard1/2"),
        ({"discord_shard_count": 2}, "discord:shard1/2"),  # both shards, still per shard
        ({"discord_shard_count": "auto"}, "discord"),  # one process is the whole bot
    ):
        async with discord_world_factory(
            settings_changes=changes,
            token_delay_s=0.05,
            fake_changes=TWO_AT_ONCE,
            bot_options=QUICK_STOP,
        ) as w:
            await w.mention("long", channel_id=OTHER)
            entries = await wait_journaled(w, journal)
            assert entries[0].data["channel"] == OTHER


async def test_a_bot_discord_says_must_shard_is_told_to_set_the_shard_count(
    discord_world_factory: WorldFactory,
) -> None:
    async with discord_world_factory(start=False) as w, open_bridge(w.settings) as bridge:
        w.fake.gateway.required_shards = 2  # in too many guilds for one connection
        with pytest.raises(ConfigError) as raised:
            await DiscordBot(w.settings, bridge, guild_ready_timeout_s=0.05).start()
        assert raised.value.variable == "DISCORD_SHARD_COUNT"
        assert "set DISCORD_SHARD_COUNT=auto" in str(raised.value)
        w.fake.recommended_shards, w.fake.max_concurrency = 2, 2
        auto = replace(w.settings, discord_shard_count="auto")
        bot = DiscordBot(auto, bridge, guild_ready_timeout_s=0.05)
        await bot.start()  # what the message says works
        await bot.close()


async def test_the_last_session_starts_of_the_day_are_not_spent(
    discord_world_factory: WorldFactory,
) -> None:
    """Using up the 1,000 IDENTIFYs per 24 h resets the bot's token (docs/discord.md §5): a
    process restarting in a loop stops before that, with one line, and never identifies."""
    for changes, remaining in (({}, 0), ({"discord_shard_count": 2}, 1)):
        async with (
            discord_world_factory(settings_changes=changes, start=False) as w,
            open_bridge(w.settings) as bridge,
        ):
            w.fake.session_starts_remaining = remaining
            with pytest.raises(PlatformError) as raised:
                await DiscordBot(w.settings, bridge, guild_ready_timeout_s=0.05).start()
            text = str(raised.value)
            assert f"{remaining} of the bot's 1000 session starts per 24 h are left" in text
            assert "come back in 1.0 h" in text and w.fake.token not in text
            assert w.fake.gateway.identify_count == 0
            # `vf-bridge check` says the same, naming the token.
            (line,) = await check_discord(w.settings)
            assert line.startswith(f"DISCORD_TOKEN: {remaining} of the bot's 1000 session")
            w.fake.session_starts_remaining = 2
            assert await check_discord(w.settings) == []


async def test_shards_of_two_processes_keep_discords_identify_rate(
    discord_world_factory: WorldFactory, tmp_path: Path
) -> None:
    """One IDENTIFY per 5 s per bucket (shard_id % max_concurrency), for the whole token:
    two processes starting together wait their turn through the store instead of drawing
    INVALID_SESSION; with two buckets they go at once."""
    for concurrency in (1, 2):
        changes: dict[str, Any] = {
            "discord_shard_count": 2,
            "state_url": f"sqlite:///{tmp_path / f'{concurrency}.db'}",  # no slot held before
        }
        async with (
            discord_world_factory(
                settings_changes=changes,
                fake_changes={"max_concurrency": concurrency},
                start=False,
            ) as w,
            AsyncExitStack() as stack,
        ):
            w.fake.gateway.identify_interval_s = 5.0
            bots = []
            for ids in ((0,), (1,)):
                settings = replace(w.settings, discord_shard_ids=ids)
                bridge = await stack.enter_async_context(open_bridge(settings))
                bots.append(DiscordBot(settings, bridge, guild_ready_timeout_s=0.05))
                stack.push_async_callback(bots[-1].close)
            began = asyncio.get_running_loop().time()
            await asyncio.gather(*(bot.start() for bot in bots))
            took = asyncio.get_running_loop().time() - began
            assert w.fake.gateway.live_shards == [(0, 2), (1, 2)]
            assert w.fake.gateway.identify_refused == 0
            assert took >= 5.0 if concurrency == 1 else took < 4.0, took
            await ask_everywhere(w)


async def wait_journaled(w: DiscordWorld, journal: str) -> list[InFlight]:
    for _ in range(200):
        if entries := await w.bridge.store.inflight(journal):
            return entries
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing journaled under {journal!r}")


async def hanging_message(w: DiscordWorld, channel: str) -> str:
    """A message as a killed process leaves it: half an answer, a cursor, a Stop button."""
    stop = {"type": 2, "style": 2, "label": "Stop", "custom_id": "vfs:x"}
    body = {"content": "Half an answer ▌", "components": [{"type": 1, "components": [stop]}]}
    url = f"{w.fake.api_url}/channels/{channel}/messages"
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bot {w.fake.token}"}) as http,
        http.post(url, json=body) as response,
    ):
        return str((await response.json(content_type=None))["id"])
