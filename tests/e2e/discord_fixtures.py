"""Discord end-to-end harness: FakeDiscord + the real Simulator + the real Bridge + DiscordBot.

Test modules bind the fixtures by name (``discord_world = discord_fixtures.discord_world``)
instead of a shared conftest. Everything runs for real over 127.0.0.1: discord.py against the fake's
REST and gateway, the Voiceflow client against the simulator over HTTP, SQLite in tmp_path.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import discord
import pytest

from bots.discord import DiscordBot
from core.bridge import Bridge, open_bridge
from core.config import Secret, Settings
from core.simulator import SIMULATOR_API_KEY, SIMULATOR_PROJECT_ID, DefaultAgent, Simulator
from tests.fakes.discord import FakeDiscord, FakeMessage, Recorded
from tests.fakes.discord_limits import FixedWindow

BOT_ID = "1000"
PLACEHOLDER = "▌"
CURSOR = " ▌"
_MESSAGE_ROUTES = ("POST /channels/{id}/messages", "PATCH /channels/{id}/messages/{mid}")


def expected_answer(text: str) -> str:
    """What the simulator's default agent streams for ``text``: its completions, joined."""
    return "".join(
        str(trace["payload"]["content"])
        for trace in DefaultAgent().respond({"type": "text", "payload": text})
        if trace["type"] == "completion"
    )


def expected_label_answer(request: dict[str, Any]) -> str:
    traces = DefaultAgent().respond(request)
    return "".join(str(t["payload"]["content"]) for t in traces if t["type"] == "completion")


@dataclass
class DiscordWorld:
    fake: FakeDiscord
    simulator: Simulator
    settings: Settings
    bot_options: dict[str, Any] = field(default_factory=dict)
    _bot: DiscordBot | None = None
    _bridge: Bridge | None = None
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    @property
    def bot(self) -> DiscordBot:
        assert self._bot is not None, "the bot is not started"
        return self._bot

    @property
    def bridge(self) -> Bridge:
        assert self._bridge is not None, "the bridge is not open"
        return self._bridge

    # -- driving ---------------------------------------------------------------------------
    async def mention(self, text: str, *, channel_id: str = "3000", author_id: str = "2000") -> str:
        payload = await self.fake.send_message(
            text, channel_id=channel_id, author_id=author_id, mention_bot=True
        )
        return str(payload["id"])

    async def dm(self, text: str, *, author_id: str = "2000") -> str:
        payload = await self.fake.send_message(text, channel_id="5000", author_id=author_id)
        return str(payload["id"])

    async def wait_for_content(
        self, channel_id: str, content: str, within_s: float = 20.0, *, count: int = 1
    ) -> FakeMessage:
        """The newest live bot message in ``channel_id`` whose content is exactly ``content``,
        once there are ``count`` of them."""
        await self.fake.wait_until(
            lambda: len(self.find_all(channel_id, content)) >= count, within_s
        )
        return self.find_all(channel_id, content)[-1]

    async def wait_settled(self, channel_id: str, turns: int, within_s: float = 30.0) -> None:
        """``turns`` Voiceflow turns finished and no message in the channel is still streaming."""

        def settled() -> bool:
            streaming = any(
                "vfs:" in str(m.components) or m.content.endswith(CURSOR)
                for m in self.bot_messages(channel_id)
            )
            return len(self.simulator.finished_turns) >= turns and not streaming

        await self.fake.wait_until(settled, within_s)

    def find_all(self, channel_id: str, content: str) -> list[FakeMessage]:
        return [m for m in self.bot_messages(channel_id) if m.content == content]

    def bot_messages(self, channel_id: str) -> list[FakeMessage]:
        return [m for m in self.fake.channel_messages(channel_id) if m.author_id == BOT_ID]

    def message_requests(self, channel_id: str | None = None) -> list[Recorded]:
        """Every POST/PATCH on channel messages (optionally in one channel), in order."""
        return [
            r
            for r in self.fake.requests
            if r.route in _MESSAGE_ROUTES
            and (channel_id is None or r.path.startswith(f"/channels/{channel_id}/"))
        ]

    def requests_for(self, message_id: str) -> list[Recorded]:
        """The create and every edit of one message."""
        create = [
            r
            for r in self.fake.requests
            if r.route == _MESSAGE_ROUTES[0] and r.status == 200 and self._created(r, message_id)
        ]
        edits = [r for r in self.fake.requests if r.path.endswith(f"/messages/{message_id}")]
        return create + [r for r in edits if r.method == "PATCH"]

    def _created(self, request: Recorded, message_id: str) -> bool:
        nonce = (request.json or {}).get("nonce")
        return nonce is not None and self.fake.messages[message_id].nonce == nonce

    def voiceflow_actions(self) -> list[dict[str, Any]]:
        return [
            r.json["action"]
            for r in self.simulator.requests
            if r.path.endswith("/interact/stream") and r.json
        ]

    # -- lifecycle -------------------------------------------------------------------------
    async def restart(self) -> None:
        """Close the bot and the bridge, then open new ones on the same SQLite file."""
        await self._stack.aclose()
        self._stack = AsyncExitStack()
        await self._open_bot()

    async def _open_bot(self) -> None:
        self._bridge = await self._stack.enter_async_context(open_bridge(self.settings))
        bot = DiscordBot(self.settings, self._bridge, **self.bot_options)
        await bot.start()
        self._stack.push_async_callback(bot.close)
        self._bot = bot

    async def aclose(self) -> None:
        await self._stack.aclose()


def buttons_of(message: FakeMessage) -> list[dict[str, Any]]:
    return [item for row in message.components for item in row["components"]]


async def wait_for_message(
    world: DiscordWorld, channel_id: str, matches: Callable[[FakeMessage], bool]
) -> FakeMessage:
    """Until a bot message in ``channel_id`` ``matches``; the first such message."""

    def find() -> FakeMessage | None:
        return next((m for m in world.bot_messages(channel_id) if matches(m)), None)

    await world.fake.wait_until(lambda: find() is not None, 15)
    found = find()
    assert found is not None
    return found


async def wait_for_buttons(world: DiscordWorld, channel_id: str, label: str) -> FakeMessage:
    """Until the bot shows a message with a button ``label``; that message."""
    return await wait_for_message(
        world, channel_id, lambda m: any(b.get("label") == label for b in buttons_of(m))
    )


async def streaming_message(world: DiscordWorld, channel_id: str) -> FakeMessage:
    """A bot message that shows streamed text and still carries its stop control."""
    return await wait_for_message(
        world, channel_id, lambda m: "vfs:" in str(m.components) and len(m.edits) >= 2
    )


def custom_id(message: FakeMessage, label: str) -> str:
    return str(next(b["custom_id"] for b in buttons_of(message) if b.get("label") == label))


def fits_the_bucket(times: list[float], limit: int, window_s: float) -> bool:
    """Whether requests arriving at ``times`` stay inside the fake's fixed windows.

    Discord's windows reset whole (``X-RateLimit-Reset``), so up to ``limit`` requests may end
    one window and ``limit`` more open the next: a sliding count would be the wrong test.
    """
    window = FixedWindow(limit, window_s)
    return all(window.take(t) for t in sorted(times))


def strip_cursor(content: str) -> str:
    return content.removesuffix(CURSOR)


def is_balanced(markdown: str) -> bool:
    """Every code fence opened in ``markdown`` is closed again."""
    return len(re.findall(r"^\s*(```|~~~)", markdown, flags=re.MULTILINE)) % 2 == 0


WorldFactory = Callable[..., AbstractAsyncContextManager[DiscordWorld]]


@asynccontextmanager
async def open_discord_world(
    tmp_path: Path,
    *,
    limit: int = 5,
    window_s: float = 1.0,
    rate_limits: bool = True,
    token_delay_s: float = 0.01,
    require_intents_allowed: int | None = None,
    settings_changes: dict[str, Any] | None = None,
    bot_options: dict[str, Any] | None = None,
    fake_changes: dict[str, Any] | None = None,
    start: bool = True,
) -> AsyncIterator[DiscordWorld]:
    async with (
        FakeDiscord(
            rate_limits=rate_limits,
            limit=limit,
            window_s=window_s,
            require_intents_allowed=require_intents_allowed,
        ) as fake,
        Simulator(token_delay_s=token_delay_s) as simulator,
    ):
        settings = Settings(
            voiceflow_api_key=Secret(SIMULATOR_API_KEY),
            voiceflow_project_id=SIMULATOR_PROJECT_ID,
            voiceflow_api_url=simulator.url,
            discord_token=Secret(fake.token),
            discord_api_url=fake.api_url,
            discord_gateway_url=fake.gateway_url,
            state_url=f"sqlite:///{tmp_path / 'state.db'}",
        )
        settings = replace(settings, **(settings_changes or {}))
        for name, value in (fake_changes or {}).items():  # e.g. what GET /gateway/bot says
            setattr(fake, name, value)
        options = {"guild_ready_timeout_s": 0.05, **(bot_options or {})}
        world = DiscordWorld(fake, simulator, settings, options)
        try:
            if start:
                await world._open_bot()
            yield world
        finally:
            await world.aclose()


@pytest.fixture
def discord_world_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WorldFactory]:
    """``async with discord_world_factory(limit=5, window_s=5.0, ...) as world:``.

    The real clients must reach 127.0.0.1 directly (testing-with-fakes.md §1), and every bot
    must restore discord.py's class-level endpoints when it closes.
    """
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY

    def factory(**options: Any) -> AbstractAsyncContextManager[DiscordWorld]:
        return open_discord_world(tmp_path, **options)

    yield factory
    assert base == discord.http.Route.BASE
    assert gateway == discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY


@pytest.fixture
async def discord_world(discord_world_factory: WorldFactory) -> AsyncIterator[DiscordWorld]:
    """A started bot; the fake's channel buckets are 5 per 1.0 s (small, same shape)."""
    async with discord_world_factory() as world:
        yield world
