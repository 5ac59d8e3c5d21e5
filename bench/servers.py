"""The fake platform and the replaying simulator, in a process of their own.

Discord, Slack and Voiceflow do not share the bot's CPU, and in the bench they should not
either: with 500 streams, fakes in a thread of the bot's process would take their turns on
its interpreter lock, and every request they answer late would look like our delay. The
child process runs the simulator (replaying the job's timelines, bench/replay.py) and the
fake on one event loop; the bot's process talks to it over a pipe — ``send`` (a user's
message), ``wait_socket`` (Slack's Socket Mode is up), ``collect`` (what the fake applied
and when the simulator wrote each chunk) and ``stop``. Both stamp times with
``time.monotonic()``, one clock for every process on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from bench.measure import MessageLog, discord_logs, slack_logs
from bench.replay import PREFIX, Recorded, ReplayAgent, timed_turns
from bench.streams import make_timeline
from core.simulator import Simulator

__all__ = ["Collected", "FakeInfo", "ServerProcess"]

#: (answer key, timeline seed, characters): enough for the child to rebuild every timeline.
AnswerSeed = tuple[str, int, int]
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class FakeInfo:
    """What the bot needs to reach the fake and the simulator."""

    simulator_url: str
    api_url: str
    gateway_url: str = ""  # Discord
    token: str = ""  # Discord
    bot_token: str = ""  # Slack
    app_token: str = ""  # Slack
    signing_secret: str = ""  # Slack
    bot_user_id: str = ""  # Slack


@dataclass(frozen=True)
class Collected:
    """What happened, seen from the servers."""

    logs: dict[Any, MessageLog]  # Discord: per message id; Slack: per (channel, thread_ts)
    count_429: int
    recorded: dict[str, Recorded]  # per answer key: when the simulator wrote each chunk


@dataclass(frozen=True)
class _Failure:
    text: str


class ServerProcess:
    """The child process; ``await start()``, then :meth:`call` commands, then :meth:`stop`."""

    def __init__(
        self, platform: str, fake_options: dict[str, Any], answers: list[AnswerSeed]
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_child_main,
            args=(child, platform, fake_options, answers),
            name="bench-servers",
            daemon=True,
        )
        self._lock = asyncio.Lock()

    async def start(self) -> FakeInfo:
        self._process.start()
        info = await self._recv()
        assert isinstance(info, FakeInfo)
        return info

    async def call(self, command: str, *args: Any) -> Any:
        async with self._lock:
            self._conn.send((command, args))
            return await self._recv()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.call("stop"), STOP_TIMEOUT_S)
        await asyncio.to_thread(self._process.join, STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()

    async def _recv(self) -> Any:
        reply = await asyncio.to_thread(self._conn.recv)
        if isinstance(reply, _Failure):
            raise RuntimeError(f"bench server process: {reply.text}")
        return reply


def _child_main(
    conn: Connection, platform: str, fake_options: dict[str, Any], answers: list[AnswerSeed]
) -> None:
    logging.basicConfig(level=logging.CRITICAL)
    try:
        asyncio.run(_serve(conn, platform, fake_options, answers))
    except BaseException:
        conn.send(_Failure(traceback.format_exc()))
        raise


async def _serve(
    conn: Connection, platform: str, fake_options: dict[str, Any], answers: list[AnswerSeed]
) -> None:
    from tests.fakes.discord import FakeDiscord
    from tests.fakes.slack import FakeSlack

    timelines = {key: make_timeline(seed, chars, key=key) for key, seed, chars in answers}
    agent = ReplayAgent(timelines)
    with timed_turns(agent):
        simulator = Simulator(token_delay_s=0.0)
        simulator.agent = agent
        simulator.faults.noise = False
        async with simulator:
            fake: Any = (FakeDiscord if platform == "discord" else FakeSlack)(**fake_options)
            async with fake:
                conn.send(_info(fake, platform, simulator.url))
                handler = _Handler(fake, platform, agent)
                await _answer_commands(conn, handler)
    conn.send(None)  # stopped: the fake and the simulator are closed


async def _answer_commands(conn: Connection, handler: _Handler) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
    try:
        while True:
            command, args = await commands.get()
            if command == "stop":
                return
            try:
                reply = await getattr(handler, command)(*args)
            except Exception:
                reply = _Failure(traceback.format_exc())
            conn.send(reply)
    finally:
        loop.remove_reader(conn.fileno())


def _info(fake: Any, platform: str, simulator_url: str) -> FakeInfo:
    if platform == "discord":
        return FakeInfo(simulator_url, fake.api_url, gateway_url=fake.gateway_url, token=fake.token)
    return FakeInfo(
        simulator_url,
        fake.api_url,
        bot_token=fake.bot_token,
        app_token=fake.app_token,
        signing_secret=fake.signing_secret,
        bot_user_id=fake.bot_user_id,
    )


class _Handler:
    """The commands the bot's process may send."""

    def __init__(self, fake: Any, platform: str, agent: ReplayAgent) -> None:
        self._fake = fake
        self._platform = platform
        self._agent = agent
        self._ts = iter(range(100, 10**6))

    async def send(self, key: str, channel: str, author: str) -> tuple[str, str] | None:
        """A user asks for answer ``key``: a mention in Discord, an app_mention in Slack."""
        if self._platform == "discord":
            await self._fake.send_message(
                PREFIX + key, channel_id=channel, author_id=author, mention_bot=True
            )
            return None
        event = {
            "type": "app_mention",
            "user": author,
            "text": f"<@{self._fake.bot_user_id}> {PREFIX}{key}",
            "ts": f"1700000000.{next(self._ts):06d}",
            "channel": channel,
            "team": "T0001",
        }
        await self._fake.send_event(event)
        return channel, event["ts"]

    async def wait_socket(self) -> None:
        await self._fake.wait_socket()

    async def collect(self) -> Collected:
        fake = self._fake
        if self._platform == "discord":
            logs: dict[Any, MessageLog] = dict(discord_logs(fake.requests, fake.messages))
        else:
            logs = dict(slack_logs(fake.calls))
        return Collected(logs, int(fake.count_429), dict(self._agent.recorded))
