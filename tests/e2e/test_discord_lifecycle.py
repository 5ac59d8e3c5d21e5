"""Discord triggers, /reset, startup errors, onboarding and crash recovery, end to end."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace

import aiohttp
import discord
import pytest

from bots.discord import DiscordBot, check_discord, run_discord
from core.bridge import open_bridge
from core.config import Secret, Settings
from core.errors import ConfigError, PlatformPermissionError
from core.store import InFlight
from tests.e2e import discord_fixtures
from tests.e2e.discord_fixtures import DiscordWorld, WorldFactory, expected_answer
from tests.fakes.discord import FakeMessage

discord_world = discord_fixtures.discord_world
discord_world_factory = discord_fixtures.discord_world_factory

MESSAGE_CONTENT_INTENT = 1 << 15
#: View Channels 1<<10, Send Messages 1<<11, Embed Links 1<<14, Read Message History 1<<16,
#: Send Messages in Threads 1<<38 — computed by hand, independently of discord.Permissions.
INVITE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 16) | (1 << 38)


def text_payloads(world: DiscordWorld) -> list[str]:
    return [a["payload"] for a in world.voiceflow_actions() if a["type"] == "text"]


async def test_it_ignores_itself_other_bots_edits_and_unaddressed_messages(
    discord_world: DiscordWorld,
) -> None:
    w = discord_world
    fake = w.fake
    await fake.send_message("from myself", author_id="1000", mention_bot=True)
    await fake.send_message("from another bot", author_id="7000", author_bot=True, mention_bot=True)
    await fake.send_message("just chatting, no mention", channel_id="3000")
    edited = await fake.send_message("hi", channel_id="3001", mention_bot=True)
    await w.wait_for_content("3001", expected_answer("hi"))
    await fake.edit_user_message(edited["id"], "<@1000> edited into a new question")
    # Gateway events are handled in order: once this answer is out, the ones above were seen.
    await w.mention("the real question")
    await w.wait_for_content("3000", expected_answer("the real question"))
    assert text_payloads(w) == ["hi", "the real question"]
    identify = fake.identify
    assert identify is not None and not identify["intents"] & MESSAGE_CONTENT_INTENT
    assert fake.count_429 == 0


async def test_a_mention_of_the_bots_own_role_or_its_nickname_is_answered(
    discord_world: DiscordWorld,
) -> None:
    """ "@Bot" in the client often completes to the role Discord made for the bot, or to a
    nickname mention: both address it, and neither reaches Voiceflow as text."""
    w = discord_world
    await w.fake.send_message("role question", channel_id="3000", mention_bot_role=True)
    await w.wait_for_content("3000", expected_answer("role question"))
    await w.fake.send_message("<@!1000> nick question", channel_id="3001", mention_bot=True)
    await w.wait_for_content("3001", expected_answer("nick question"))
    await w.fake.send_message("<@&4200> another role", channel_id="3000")  # not the bot's
    await w.mention("last question", channel_id="3001")
    await w.wait_for_content("3001", expected_answer("last question"))
    assert text_payloads(w) == ["role question", "nick question", "last question"]


async def test_reset_starts_a_new_conversation(discord_world: DiscordWorld) -> None:
    w = discord_world
    assert [c["name"] for c in w.fake.slash_commands] == ["reset"]
    await w.mention("hi")
    await w.wait_for_content("3000", expected_answer("hi"))
    interaction_id = await w.fake.slash("reset", channel_id="3000")
    await w.fake.wait_until(lambda: _reset_reply(w) is not None)
    interaction = w.fake.interactions[interaction_id]
    assert interaction.response_type == 5 and interaction.response_after_s is not None
    assert interaction.response_after_s < 3.0  # Discord kills the token at 3 s
    reply = _reset_reply(w)
    assert reply is not None and reply.flags & (1 << 6)  # ephemeral
    await w.mention("hi again")
    await w.wait_for_content("3000", expected_answer("hi again"))
    assert [a["type"] for a in w.voiceflow_actions()] == ["launch", "text", "launch", "text"]
    users = [r.path.split("/user/")[1] for r in w.simulator.requests if "/interact/" in r.path]
    assert users[0] != users[-1]  # a fresh Voiceflow userID (new generation)
    assert any(r.method == "DELETE" and "/state/user/" in r.path for r in w.simulator.requests)
    assert w.fake.count_429 == 0


def _reset_reply(world: DiscordWorld) -> FakeMessage | None:
    return next(
        (m for m in world.fake.messages.values() if m.content == "Conversation reset."), None
    )


async def test_a_refused_privileged_intent_names_the_portal_switch(
    discord_world_factory: WorldFactory,
) -> None:
    intents = discord.Intents.default()
    intents.message_content = True  # asked for, but not enabled in the "portal"
    world = discord_world_factory(require_intents_allowed=0, start=False)
    async with world as w, open_bridge(w.settings) as bridge:
        bot = DiscordBot(w.settings, bridge, intents=intents, guild_ready_timeout_s=0.05)
        with pytest.raises(PlatformPermissionError) as raised:
            await bot.start()
    text = str(raised.value)
    assert "4014" in text
    assert "Bot → Privileged Gateway Intents" in text
    assert "“Message Content Intent”" in text
    assert "https://discord.com/developers/applications/1000/bot" in text


async def test_startup_logs_the_invite_url_and_never_the_token(
    discord_world_factory: WorldFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    # discord.py warns once per process that voice libraries are missing; as if first:
    monkeypatch.setattr(discord.VoiceClient, "warn_nacl", True)
    monkeypatch.setattr(discord.VoiceClient, "warn_dave", True)
    async with discord_world_factory() as w:
        token = w.fake.token
    expected = (
        "https://discord.com/oauth2/authorize?client_id=1000"
        f"&scope=bot+applications.commands&permissions={INVITE_PERMISSIONS}"
    )
    assert any(expected in r.getMessage() for r in caplog.records)
    assert all(token not in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if "voice will NOT be supported" in r.getMessage()]


async def test_a_rejected_token_is_one_line_naming_the_variable(
    discord_world_factory: WorldFactory,
) -> None:
    async with discord_world_factory(start=False) as w:
        bad = replace(w.settings, discord_token=Secret("bad.token.here"))
        assert await check_discord(bad) == [
            "DISCORD_TOKEN: rejected by Discord (401) — "
            "reset the token in the Developer Portal → Bot"
        ]
        assert await check_discord(w.settings) == []
        async with open_bridge(bad) as bridge:
            with pytest.raises(ConfigError) as raised:
                await DiscordBot(bad, bridge).start()
        assert raised.value.variable == "DISCORD_TOKEN"
        assert "bad.token.here" not in str(raised.value)


async def test_an_unreachable_api_url_is_named() -> None:
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = replace(
        Settings(),
        discord_token=Secret("a.b.c"),
        discord_api_url=f"http://127.0.0.1:{port}/api/v10",
    )
    (line,) = await check_discord(settings)
    assert line.startswith(f"DISCORD_API_URL: cannot reach http://127.0.0.1:{port}/api/v10")
    assert "a.b.c" not in line


async def test_a_message_left_streaming_by_a_crash_is_finalized_at_startup(
    discord_world: DiscordWorld,
) -> None:
    """A killed process leaves a placeholder with a Stop button; the next start ends it."""
    w = discord_world
    url = f"{w.fake.api_url}/channels/3000/messages"
    body = {
        "content": "Half an answer ▌",
        "components": [
            {
                "type": 1,
                "components": [{"type": 2, "style": 2, "label": "Stop", "custom_id": "vfs:x"}],
            }
        ],
    }
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bot {w.fake.token}"}) as http,
        http.post(url, json=body) as response,
    ):
        message_id = str((await response.json(content_type=None))["id"])
    store = w.bridge.store
    item_id = f"discord|3000|{message_id}"
    await store.put_inflight(
        InFlight(item_id, "discord", {"channel": "3000", "message_id": message_id})
    )
    await w.restart()
    message = w.fake.messages[message_id]
    assert message.content == "Half an answer\n\n⚠️ interrupted"
    assert message.components == []
    assert await w.bridge.store.inflight("discord") == []
    assert w.fake.count_429 == 0


async def test_run_discord_serves_until_cancelled(discord_world_factory: WorldFactory) -> None:
    async with discord_world_factory(start=False) as w, open_bridge(w.settings) as bridge:
        task = asyncio.create_task(run_discord(w.settings, bridge))
        await w.fake.wait_ready()
        await w.dm("hello from run")
        await w.wait_for_content("5000", expected_answer("hello from run"))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not w.fake.gateway.is_connected
        assert w.fake.count_429 == 0
