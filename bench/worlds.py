"""One bench world: the real bridge and the real bot, against the fake platform and the replaying
simulator in a process of their own (bench/servers.py).

This process is the bot's alone, so its CPU and memory figures are the bridge's. The bot is
the real ``DiscordBot``/``SlackBot`` with one bench seam: the renderer it builds for a turn gets
its ``start_stream`` replaced per strategy — ours unchanged, or a baseline over the renderer's
own ``MessageWriter`` — and every streamed message is wrapped to be counted and identified.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import resource
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.baselines import BASELINES
from bench.servers import AnswerSeed, FakeInfo, ServerProcess
from bots.discord import DiscordBot
from bots.slack import SlackBot
from bots.slack.writer import SlackWriter
from core.bridge import open_bridge
from core.config import Secret, Settings
from core.platform import Outcome, StreamedMessage
from core.simulator import SIMULATOR_API_KEY, SIMULATOR_PROJECT_ID

__all__ = ["OURS", "OURS_FALLBACK", "Tracked", "World", "open_world"]

OURS = "ours"
OURS_FALLBACK = "ours (post + update)"
#: Slack: our native stream; forced fallback is OURS_FALLBACK.
OURS_NATIVE = "ours (native)"


class Tracked:
    """A streamed message wrapper: the text it was given and when it finished."""

    def __init__(self, inner: StreamedMessage, world: World) -> None:
        self.inner = inner
        self.world = world
        self.parts: list[str] = []
        world.live += 1
        world.peak_live = max(world.peak_live, world.live)

    def append(self, text: str) -> None:
        self.parts.append(text)
        self.inner.append(text)

    async def finish(self, outcome: Outcome = Outcome.COMPLETE) -> None:
        try:
            await self.inner.finish(outcome)
        finally:
            self.world.live -= 1
            self.world.finished.append(self)
            self.world.changed.set()

    @property
    def message_ids(self) -> list[str]:
        return list(getattr(self.inner, "message_ids", []))


@dataclass
class World:
    platform: str
    strategy: str
    servers: ServerProcess
    info: FakeInfo
    finished: list[Tracked] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    live: int = 0
    peak_live: int = 0

    async def send(self, key: str, channel: str, author: str) -> tuple[str, str] | None:
        """A user asks for answer ``key``; Slack returns the place the answer goes."""
        place = await self.servers.call("send", key, channel, author)
        return (place[0], place[1]) if place is not None else None

    async def wait_finished(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.finished) < count:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{len(self.finished)} of {count} answers finished; waiting: {_waiting()}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)


def _waiting() -> str:
    """Where the pending tasks wait, the most common places first: what a stalled job blames."""
    places: collections.Counter[str] = collections.Counter()
    for task in asyncio.all_tasks():
        frames = task.get_stack()
        if frames:
            frame = frames[-1]
            places[f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}"] += 1
    return ", ".join(f"{n} × {place}" for place, n in places.most_common(6))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _settings(base: dict[str, Any], info: FakeInfo, tmp: Path) -> Settings:
    return Settings(
        voiceflow_api_key=Secret(SIMULATOR_API_KEY),
        voiceflow_project_id=SIMULATOR_PROJECT_ID,
        voiceflow_api_url=info.simulator_url,
        state_url=f"sqlite:///{tmp / 'state.db'}",
        conversation_scope="channel_user",
        **base,
    )


def _stream_factory(
    strategy: str, original: Callable[[str], StreamedMessage], writer: Callable[[], Any]
) -> Callable[[str], StreamedMessage]:
    if strategy in (OURS, OURS_NATIVE, OURS_FALLBACK):
        return original
    baseline = BASELINES[strategy]
    return lambda _stop_id: baseline(writer())


class _BenchDiscordBot(DiscordBot):
    def __init__(self, *args: Any, world: World, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._world = world

    def _renderer(self, place: Any, *, reply_to: Any = None) -> Any:
        renderer = super()._renderer(place, reply_to=reply_to)
        inner = _stream_factory(
            self._world.strategy, renderer.start_stream, lambda: renderer._writer
        )
        renderer.start_stream = lambda stop_id: Tracked(inner(stop_id), self._world)
        return renderer


class _BenchSlackBot(SlackBot):
    def __init__(self, *args: Any, world: World, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._world = world

    def _renderer(self, place: Any) -> Any:
        renderer = super()._renderer(place)
        original = renderer.start_stream
        if self._world.strategy == OURS_FALLBACK:
            original = renderer._paced  # post + update, as when native streaming is off
        inner = _stream_factory(
            self._world.strategy,
            original,
            lambda: SlackWriter(renderer._api, renderer._place),
        )
        renderer.start_stream = lambda stop_id: Tracked(inner(stop_id), self._world)
        return renderer


@contextlib.asynccontextmanager
async def open_world(
    platform: str,
    strategy: str,
    answers: list[AnswerSeed],
    tmp: Path,
    fake_options: dict[str, Any],
) -> AsyncIterator[World]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        os.environ.pop(name, None)
        os.environ.pop(name.lower(), None)
    servers = ServerProcess(platform, fake_options, answers)
    try:
        info = await servers.start()
        world = World(platform, strategy, servers, info)
        opener = _discord if platform == "discord" else _slack
        async with opener(world, tmp):
            yield world
    finally:
        await servers.stop()


@contextlib.asynccontextmanager
async def _discord(world: World, tmp: Path) -> AsyncIterator[None]:
    info = world.info
    base = {
        "discord_token": Secret(info.token),
        "discord_api_url": info.api_url,
        "discord_gateway_url": info.gateway_url,
    }
    settings = _settings(base, info, tmp)
    async with open_bridge(settings) as bridge:
        bot = _BenchDiscordBot(settings, bridge, world=world, guild_ready_timeout_s=0.05)
        await bot.start()
        try:
            yield
        finally:
            await bot.close()


@contextlib.asynccontextmanager
async def _slack(world: World, tmp: Path) -> AsyncIterator[None]:
    info = world.info
    base = {
        "slack_bot_token": Secret(info.bot_token),
        "slack_app_token": Secret(info.app_token),
        "slack_signing_secret": Secret(info.signing_secret),
        "slack_api_url": info.api_url,
        "slack_port": 0,
    }
    settings = _settings(base, info, tmp)
    async with open_bridge(settings) as bridge:
        bot = _BenchSlackBot(settings, bridge, world=world, host="127.0.0.1")
        await bot.start()
        await world.servers.call("wait_socket")
        try:
            yield
        finally:
            await bot.drain()
            await bot.close()
