"""Real ``python -m core run`` child processes for the process-level fault tests.

The fakes and the Voiceflow simulator run in the test process; a child reaches them over HTTP
through the same variables an operator sets, and keeps its state in a SQLite file under the
test's ``tmp_path`` — all that survives a ``kill -9``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from core.simulator import SIMULATOR_API_KEY, SIMULATOR_PROJECT_ID, Simulator
from tests.e2e.slack_fixtures import DM as SLACK_DM
from tests.e2e.slack_fixtures import dm_event
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.faults.invariants import fault_agent
from tests.faults.outputs import record

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 30.0
DISCORD_DM = "5000"


class Child:
    """``python -m core run`` with its output drained (a full pipe would block it)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.output: list[str] = []
        self.wrote = asyncio.Event()  # set at each line of output (clear it to wait for more)
        assert proc.stderr is not None
        self._drain = asyncio.create_task(self._read(proc.stderr))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self.output.append(line.decode(errors="replace"))
            self.wrote.set()

    async def stop(self, sig: int) -> int:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        await self._drain
        record("".join(self.output))
        return code


@contextlib.asynccontextmanager
async def child(env: dict[str, str], cwd: Path) -> AsyncIterator[Child]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core",
        "run",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    running = Child(proc)
    try:
        yield running
    finally:
        if proc.returncode is None:
            await running.stop(signal.SIGKILL)


async def wait_serving(
    fake: FakeDiscord, predicate: Callable[[], bool], *children: Child, within_s: float = STARTUP_S
) -> None:
    """``fake.wait_until(predicate)``; on a timeout, the failure shows each child's exit code
    and last lines, since a child that died or hangs at startup says why only there."""
    try:
        await fake.wait_until(predicate, within_s)
    except TimeoutError as exc:
        said = [
            f"child {i}: exit {c.proc.returncode}, last lines: {''.join(c.output[-8:])!r}"
            for i, c in enumerate(children)
        ]
        raise AssertionError("\n".join([str(exc), *said])) from None


def base_env(tmp_path: Path, simulator: Simulator, **extra: str) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOICEFLOW_", "DISCORD_", "SLACK_")) and "proxy" not in k.lower()
    }
    return {
        **keep,
        "PYTHONPATH": str(REPO),
        "STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "VOICEFLOW_API_KEY": SIMULATOR_API_KEY,
        "VOICEFLOW_PROJECT_ID": SIMULATOR_PROJECT_ID,
        "VOICEFLOW_API_URL": simulator.url,
        "LOG_LEVEL": "INFO",
        **extra,
    }


def discord_env(tmp_path: Path, simulator: Simulator, fake: FakeDiscord) -> dict[str, str]:
    return base_env(
        tmp_path,
        simulator,
        DISCORD_TOKEN=fake.token,
        DISCORD_API_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
    )


def slack_env(tmp_path: Path, simulator: Simulator, fake: FakeSlack) -> dict[str, str]:
    return base_env(
        tmp_path,
        simulator,
        SLACK_BOT_TOKEN=fake.bot_token,
        SLACK_APP_TOKEN=fake.app_token,
        SLACK_API_URL=fake.api_url,
    )


async def ask_in_discord_dm(fake: FakeDiscord, question: str) -> None:
    """Once the child's bot has logged in, a user asks ``question`` in the Discord DM."""
    await fake.wait_until(lambda: fake.gateway.identify_count == 1, STARTUP_S)
    await fake.send_message(question, channel_id=DISCORD_DM)


async def ask_in_slack_dm(fake: FakeSlack, question: str) -> None:
    """Once the child's bot has connected, a user asks ``question`` in the Slack DM."""
    await fake.wait_until(lambda: fake.socket_connected, STARTUP_S)
    await fake.send_event(dm_event(question, ts="1700000000.000100", channel=SLACK_DM))


@pytest.fixture
async def slow_simulator() -> AsyncIterator[Simulator]:
    async with Simulator(token_delay_s=0.05) as simulator:  # ~7 s for the medium answer
        simulator.agent = fault_agent()
        yield simulator
