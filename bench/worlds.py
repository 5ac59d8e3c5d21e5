"""One bench world: fake platform + replaying simulator + the real bridge + the real bot.

The fake and the simulator run on their own event loop in a server thread, so the CPU the
bridge spends (main thread, plus aiosqlite's thread) can be told apart from theirs; both stamp
times with ``time.monotonic()``, the clock the main loop uses too. The bot is the real
``DiscordBot``/``SlackBot`` with one bench seam: the renderer it builds for a turn gets its
``start_stream`` replaced per strategy — ours unchanged, or a baseline over the renderer's own
``MessageWriter`` — and every streamed message is wrapped to be counted and identified.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.baselines import BASELINES
from bench.replay import PREFIX, ReplayAgent
from bots.discord import DiscordBot
from bots.slack import SlackBot
from bots.slack.writer import SlackWriter
from core.bridge import open_bridge
from core.config import Secret, Settings
from core.platform import Outcome, StreamedMessage
from core.simulator import SIMULATOR_API_KEY, SIMULATOR_PROJECT_ID, Simulator

__all__ = ["OURS", "OURS_FALLBACK", "ServerThread", "Tracked", "World", "open_world"]

T = TypeVar("T")
OURS = "ours"
OURS_FALLBACK = "ours (post + update)"
#: Slack: our native stream; forced fallback is OURS_FALLBACK.
OURS_NATIVE = "ours (native)"


class ServerThread:
    """An event loop in a daemon thread for the fake servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="bench-servers", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def cpu_s(self) -> float:
        assert self.thread.ident is not None
        return time.clock_gettime(time.pthread_getcpuclockid(self.thread.ident))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


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
    servers: ServerThread
    fake: Any
    simulator: Simulator
    agent: ReplayAgent
    send: Callable[[str, str, str], Coroutine[Any, Any, Any]] = field(repr=False)
    finished: list[Tracked] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    live: int = 0
    peak_live: int = 0

    async def wait_finished(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.finished) < count:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(self.finished)} of {count} answers finished")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _settings(base: dict[str, Any], simulator: Simulator, tmp: Path) -> Settings:
    return Settings(
        voiceflow_api_key=Secret(SIMULATOR_API_KEY),
        voiceflow_project_id=SIMULATOR_PROJECT_ID,
        voiceflow_api_url=simulator.url,
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
    platform: str, strategy: str, agent: ReplayAgent, tmp: Path, fake_options: dict[str, Any]
) -> AsyncIterator[World]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        os.environ.pop(name, None)
        os.environ.pop(name.lower(), None)
    servers = ServerThread()
    try:
        simulator = Simulator(token_delay_s=0.0)
        simulator.agent = agent
        simulator.faults.noise = False
        await servers.call(simulator.__aenter__())
        try:
            opener = _discord if platform == "discord" else _slack
            async with opener(strategy, agent, servers, simulator, tmp, fake_options) as world:
                yield world
        finally:
            await servers.call(simulator.__aexit__(None, None, None))
    finally:
        servers.stop()


@contextlib.asynccontextmanager
async def _discord(
    strategy: str,
    agent: ReplayAgent,
    servers: ServerThread,
    simulator: Simulator,
    tmp: Path,
    fake_options: dict[str, Any],
) -> AsyncIterator[World]:
    from tests.fakes.discord import FakeDiscord

    fake = FakeDiscord(**fake_options)
    await servers.call(fake.__aenter__())
    try:

        async def send(key: str, channel: str, author: str) -> None:
            await servers.call(
                fake.send_message(
                    PREFIX + key, channel_id=channel, author_id=author, mention_bot=True
                )
            )
            return None

        world = World("discord", strategy, servers, fake, simulator, agent, send)
        base = {
            "discord_token": Secret(fake.token),
            "discord_api_url": fake.api_url,
            "discord_gateway_url": fake.gateway_url,
        }
        settings = _settings(base, simulator, tmp)
        async with open_bridge(settings) as bridge:
            bot = _BenchDiscordBot(settings, bridge, world=world, guild_ready_timeout_s=0.05)
            await bot.start()
            try:
                yield world
            finally:
                await bot.close()
    finally:
        await servers.call(fake.__aexit__(None, None, None))


@contextlib.asynccontextmanager
async def _slack(
    strategy: str,
    agent: ReplayAgent,
    servers: ServerThread,
    simulator: Simulator,
    tmp: Path,
    fake_options: dict[str, Any],
) -> AsyncIterator[World]:
    from tests.fakes.slack import FakeSlack

    fake = FakeSlack(**fake_options)
    await servers.call(fake.__aenter__())
    counter = iter(range(100, 10**6))
    try:

        async def send(key: str, channel: str, author: str) -> tuple[str, str]:
            event = {
                "type": "app_mention",
                "user": author,
                "text": f"<@{fake.bot_user_id}> {PREFIX}{key}",
                "ts": f"1700000000.{next(counter):06d}",
                "channel": channel,
                "team": "T0001",
            }
            await servers.call(fake.send_event(event))
            return channel, event["ts"]

        world = World("slack", strategy, servers, fake, simulator, agent, send)
        base = {
            "slack_bot_token": Secret(fake.bot_token),
            "slack_app_token": Secret(fake.app_token),
            "slack_signing_secret": Secret(fake.signing_secret),
            "slack_api_url": fake.api_url,
            "slack_port": 0,
        }
        settings = _settings(base, simulator, tmp)
        async with open_bridge(settings) as bridge:
            bot = _BenchSlackBot(settings, bridge, world=world, host="127.0.0.1")
            await bot.start()
            await servers.call(fake.wait_socket())
            try:
                yield world
            finally:
                await bot.drain()
                await bot.close()
    finally:
        await servers.call(fake.__aexit__(None, None, None))
