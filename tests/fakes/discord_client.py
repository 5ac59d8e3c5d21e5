"""A real discord.py client for the fake's self-tests (tests/test_fake_discord*.py).

Test modules bind the autouse fixture by name (``no_proxy = discord_client.no_proxy``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import discord
import pytest
import yarl
from discord import app_commands

from tests.fakes.discord import FakeDiscord

PATCH_ROUTE = "PATCH /channels/{id}/messages/{mid}"
POST_ROUTE = "POST /channels/{id}/messages"
STARTUP_TIMEOUT_S = 5.0


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real client must reach 127.0.0.1 directly (testing-with-fakes.md §1)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


class RecordingClient(discord.Client):
    """A plain client whose on_message feeds a queue the test awaits."""

    def __init__(self, **kw: Any) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, guild_ready_timeout=0.05, **kw)
        self.inbox: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.tree = app_commands.CommandTree(self)
        self.became_ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def on_ready(self) -> None:
        if not self.became_ready.done():
            self.became_ready.set_result(None)

    async def on_message(self, message: discord.Message) -> None:
        await self.inbox.put(message)

    async def next_from_others(self) -> discord.Message:
        """The next message not authored by the bot itself (its echoes are skipped)."""
        while True:
            message = await asyncio.wait_for(self.inbox.get(), STARTUP_TIMEOUT_S)
            if message.author != self.user:
                return message


def point_at(fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_url)
    gateway = yarl.URL(fake.gateway_url)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", gateway)


@asynccontextmanager
async def running(
    fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch, client: RecordingClient | None = None
) -> AsyncIterator[RecordingClient]:
    """Start the client, wait for on_ready (or its failure), and always close it first."""
    point_at(fake, monkeypatch)
    client = client or RecordingClient()
    task = asyncio.create_task(client.start(FakeDiscord.token))
    ready = client.became_ready
    try:
        done, _ = await asyncio.wait(
            {task, ready}, timeout=STARTUP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()  # surfaces the startup error
        assert ready in done, "client did not become ready"
        yield client
    finally:
        await client.close()
        await task


async def text_channel(client: discord.Client, channel_id: int = 3000) -> discord.TextChannel:
    channel = client.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


def routes(fake: FakeDiscord, route: str) -> list[Any]:
    return [r for r in fake.requests if r.route == route]
