"""The operator's endpoints (core/ops_server.py, core/metrics.py), read over real HTTP while
the real discord.py and slack-bolt bots serve the fakes: what a Prometheus scrape and a
Kubernetes probe would see."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from core.errors import ConfigError
from core.metrics import Metrics
from core.ops_server import serve_ops
from tests.e2e import discord_fixtures, slack_fixtures
from tests.e2e.discord_fixtures import WorldFactory, expected_answer
from tests.e2e.slack_fixtures import ANSWERS, CHANNEL

__all__ = ["discord_world_factory", "slack_no_proxy", "slack_world_factory"]

discord_world_factory = discord_fixtures.discord_world_factory
slack_world_factory = slack_fixtures.slack_world_factory
slack_no_proxy = slack_fixtures.slack_no_proxy


@asynccontextmanager
async def ops(metrics: Metrics) -> AsyncIterator[aiohttp.ClientSession]:
    """The endpoints on a free port, and a session whose base URL they are."""
    async with (
        serve_ops(metrics, 0, host="127.0.0.1") as port,
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
    ):
        yield http


async def get(http: aiohttp.ClientSession, path: str) -> tuple[int, str]:
    async with http.get(path) as response:
        return response.status, await response.text()


async def status_within(http: aiohttp.ClientSession, status: int, seconds: float) -> bool:
    """Whether /readyz answers ``status`` within ``seconds``, asked as a readiness probe asks:
    again and again (a client handles a drop or a RESUME a moment after the fake sent it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (await get(http, "/readyz"))[0] != status:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def ready_within(http: aiohttp.ClientSession, seconds: float) -> bool:
    return await status_within(http, 200, seconds)


def sample(text: str, name: str, **labels: str) -> float:
    """One series' value in a Prometheus text exposition (0 when absent)."""
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if not series.startswith(name + "{") and series != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if found == labels:
            return float(value)
    return 0.0


async def test_discord_turns_responses_and_connection_are_exposed(
    discord_world_factory: WorldFactory,
) -> None:
    async with discord_world_factory() as w, ops(w.bridge.metrics) as http:
        assert await get(http, "/readyz") == (200, '{"discord": "connected"}')
        w.fake.inject("PATCH", r"/channels/3000/messages/\d+", status=429, times=1)
        await w.mention("hello there")
        await w.wait_for_content("3000", expected_answer("hello there"))
        await w.bot.drain()
        status, text = await get(http, "/metrics")
        assert status == 200
        # A new conversation: the launch, then the user's text.
        assert sample(text, "vfbridge_turns_total", platform="discord", outcome="complete") == 2
        assert sample(text, "vfbridge_turns_in_progress", platform="discord") == 0
        assert sample(text, "vfbridge_turn_seconds_count", platform="discord") == 2
        assert sample(text, "vfbridge_first_output_seconds_count", platform="discord") == 2
        ok = sample(text, "vfbridge_platform_responses_total", platform="discord", result="ok")
        assert ok >= 3  # login, the greeting, the placeholder, its edits
        limited = {"platform": "discord", "result": "rate_limited"}
        assert sample(text, "vfbridge_platform_responses_total", **limited) == 1
        assert w.fake.token not in text
        # The gateway drops: not ready until discord.py has resumed.
        await w.fake.drop_gateway()
        await w.fake.wait_until(lambda: w.fake.gateway.resume_count == 1, 30)
        assert await ready_within(http, 5), "still not ready after the RESUME"
        await w.restart()  # closing reports it, the new bot reports itself
        assert (
            sample((await get(http, "/metrics"))[1], "vfbridge_connected", platform="discord") == 0
        )


@pytest.mark.parametrize(
    ("changes", "down", "up"),
    [
        ({}, ("disconnect",), ("resumed",)),
        ({}, ("disconnect",), ("connect",)),  # a fresh session (IDENTIFY, READY)
        ({"discord_shard_count": 2}, ("shard_disconnect", 1), ("shard_resumed", 1)),
        ({"discord_shard_count": 2}, ("shard_disconnect", 0), ("shard_connect", 0)),
    ],
    ids=["resumed", "reconnected", "shard-resumed", "shard-reconnected"],
)
async def test_a_dropped_gateway_is_not_ready_until_it_is_back(
    discord_world_factory: WorldFactory,
    changes: dict[str, object],
    down: tuple[object, ...],
    up: tuple[object, ...],
) -> None:
    """What discord.py dispatches when a connection (a shard's) drops and comes back."""
    async with (
        discord_world_factory(settings_changes=changes, fake_changes={"max_concurrency": 2}) as w,
        ops(w.bridge.metrics) as http,
    ):
        assert (await get(http, "/readyz"))[0] == 200
        w.bot.client.dispatch(*down)
        await asyncio.sleep(0)  # discord.py runs each handler as a task
        assert await get(http, "/readyz") == (503, '{"discord": "standby"}')
        assert await get(http, "/healthz") == (200, '{"discord": "standby"}')
        w.bot.client.dispatch(*up)
        assert await ready_within(http, 1)


async def test_slack_turns_and_rate_limits_are_exposed(
    slack_world_factory: slack_fixtures.WorldFactory,
) -> None:
    async with (
        slack_world_factory(mode="socket", token_delay_s=0.01) as world,
        ops(world.bridge.metrics) as http,
    ):
        assert await get(http, "/readyz") == (200, '{"slack": "connected"}')
        world.fake.inject("chat.appendStream", status=429, retry_after=0.2)
        ts = await world.mention("two thousand")
        await world.wait_answer(CHANNEL, ts, ANSWERS["two thousand"])
        await world.bot.drain()
        text = (await get(http, "/metrics"))[1]
        assert sample(text, "vfbridge_turns_total", platform="slack", outcome="complete") == 2
        limited = {"platform": "slack", "result": "rate_limited"}
        assert sample(text, "vfbridge_platform_responses_total", **limited) == 1
        ok = sample(text, "vfbridge_platform_responses_total", platform="slack", result="ok")
        # Every call of the bridge's own; slack-bolt's (apps.connections.open, and auth.test
        # besides ours at the start) are its own business.
        bolts = ("auth.test", "apps.connections.open")
        assert ok == 1 + sum(1 for c in world.fake.calls if c.ok and c.method not in bolts)
        await world.bot.close()
        assert await get(http, "/readyz") == (503, '{"slack": "standby"}')


async def test_a_dropped_slack_socket_is_not_ready_until_slack_sdk_is_back(
    slack_world_factory: slack_fixtures.WorldFactory,
) -> None:
    """slack-sdk reconnects Socket Mode by itself; a scrape asks it whether it is connected."""
    async with slack_world_factory(mode="socket") as world, ops(world.bridge.metrics) as http:
        assert (await get(http, "/readyz"))[0] == 200
        world.fake.inject("apps.connections.open", error="internal_error", times=1000)
        await world.fake.drop_socket()  # and no new connection is granted for now
        assert await status_within(http, 503, 5)
        assert await get(http, "/healthz") == (200, '{"slack": "standby"}')
        world.fake.clear_faults()
        assert await ready_within(http, 20), "slack-sdk never reconnected"


async def test_a_taken_metrics_port_is_one_line_naming_it() -> None:
    metrics = Metrics()
    async with serve_ops(metrics, 0, host="127.0.0.1") as port:
        with pytest.raises(ConfigError) as raised:
            async with serve_ops(metrics, port, host="127.0.0.1"):
                pass
    assert raised.value.variable == "METRICS_PORT"
    assert f"cannot listen on 127.0.0.1:{port}" in str(raised.value)


async def test_metrics_host_limits_who_may_connect() -> None:
    """METRICS_HOST=127.0.0.1 serves this host's loopback only; the default (every interface)
    also answers on another address of the host (127.0.0.2: Linux routes all of 127/8 to
    the loopback device)."""

    async def status_at(address: str, port: int) -> int | None:
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://{address}:{port}/healthz") as response,
            ):
                return response.status
        except aiohttp.ClientConnectorError:
            return None

    metrics = Metrics()
    async with serve_ops(metrics, 0, host="127.0.0.1") as port:
        assert await status_at("127.0.0.1", port) == 200
        assert await status_at("127.0.0.2", port) is None
    async with serve_ops(metrics, 0) as port:
        assert await status_at("127.0.0.2", port) == 200


async def test_a_taken_slack_port_is_one_line_naming_it(
    slack_world_factory: slack_fixtures.WorldFactory,
) -> None:
    """HTTP mode listens on SLACK_PORT; a port another program holds is a configuration
    problem, said in one line, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        changes = {"slack_port": port}
        async with slack_world_factory(mode="http", settings_changes=changes, start=False) as w:
            with pytest.raises(ConfigError) as raised:
                await w.open_bot()
    assert raised.value.variable == "SLACK_PORT"
    assert f"cannot listen on 127.0.0.1:{port}" in str(raised.value)  # the world binds there
