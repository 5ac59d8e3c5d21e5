"""`vf-bridge` (also `python -m core`): run, chat, simulator, check.

The only place that reads the environment: ``os.environ`` first, then ``.env`` in the working
directory. Adapters are imported by name only when their platform is configured, so `core`
stays free of platform libraries.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import io
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from core.config import ConfigErrors, Settings, load_settings
from core.errors import BridgeError, ConfigError, VoiceflowError
from core.logs import setup_logging

__all__ = ["main"]

log = logging.getLogger("vf-bridge")

SIMULATOR_NOTICE = "No VOICEFLOW_API_KEY set: talking to the built-in Voiceflow simulator."
EXIT_CONFIG = 2
EXIT_CHECK_FAILED = 1


def read_environment(env_file: Path = Path(".env")) -> dict[str, str]:
    """The process environment over the values of ``.env`` (environment wins).

    Raises :class:`ConfigError` naming ``.env`` when it cannot be read, is not UTF-8 (Windows
    Notepad's "Unicode" is UTF-16) or has a line that is not ``NAME=value`` — rather than a
    traceback, or python-dotenv's warning and a start without that line's setting. The line
    itself is never shown: it may hold a secret.
    """
    try:
        text = env_file.read_text(encoding="utf-8") if env_file.exists() else ""
    except UnicodeDecodeError:
        problem = "is not UTF-8 text (perhaps UTF-16): save it as UTF-8"
        raise ConfigError(str(env_file), problem) from None
    except OSError as exc:
        raise ConfigError(str(env_file), f"cannot be read ({exc.strerror})") from None
    bad = [str(b.original.line) for b in parse_stream(io.StringIO(text)) if b.error]
    if bad:
        lines = f"line{'s' if len(bad) > 1 else ''} {', '.join(bad)}"
        raise ConfigError(str(env_file), f"cannot parse {lines} (expected NAME=value)")
    values = dotenv_values(stream=io.StringIO(text))
    merged = {k: v for k, v in values.items() if v is not None}
    merged.update(os.environ)
    return merged


#: All the simulator reads: it serves no bot, so the bots' settings are not its concern.
SIMULATOR_VARIABLES = ("LOG_LEVEL", "LOG_FORMAT")


def _settings(only: Sequence[str] | None = None) -> Settings | None:
    """The settings, or None once each problem is printed; ``only``: read just these."""
    try:
        env = read_environment()
        if only is not None:
            env = {name: value for name, value in env.items() if name in only}
        return load_settings(env)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return None
    except ConfigErrors as exc:
        for error in exc.errors:
            print(f"config error: {error}", file=sys.stderr)
        return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vf-bridge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start every configured platform (none: terminal chat)")
    sub.add_parser("chat", help="talk to the agent in this terminal")
    sim = sub.add_parser(
        "simulator",
        help="serve the Voiceflow API simulation",
        description="Serve the Voiceflow Dialog Manager API simulation. Point VOICEFLOW_API_URL"
        " at it with the simulator's key and project id (README, Commands).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sim.add_argument("--port", type=_port, default=3978, help="port to listen on (0: any free)")
    sim.add_argument(
        "--script", type=Path, help="answer with these scripted turns (JSON) instead of the demo"
    )
    sim.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="misbehave on purpose, e.g. use_crlf, close_after_events=3 (repeatable; "
        "core/simulator/faults.py lists them)",
    )
    sub.add_parser("check", help="validate configuration and reach each service")
    return parser


def _port(text: str) -> int:
    """``--port``: 0 (any free port) to 65535, checked here rather than by a bind traceback."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {text!r}")
    return port


def _fault(text: str) -> tuple[str, object]:
    """``--fault``: checked here, so that a typo is argparse's one line, not a traceback."""
    from core.simulator.faults import parse_fault

    try:
        return parse_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(SIMULATOR_VARIABLES if args.command == "simulator" else None)
    if settings is None:
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.secrets(), json_lines=settings.log_format == "json")
    commands: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        "run": lambda: _run(settings),
        "chat": lambda: _chat(settings),
        "simulator": lambda: _simulator(args.host, args.port, args.script, dict(args.fault)),
        "check": lambda: _check(settings),
    }
    try:
        return asyncio.run(commands[args.command]())
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # stdout's reader went away (`vf-bridge chat | head`): stop quietly
        # Python's final flush of stdout would fail again, with a traceback (Python docs,
        # "Note on SIGPIPE"): what is left goes to devnull instead.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except BridgeError as exc:  # e.g. STATE_URL unreachable at startup: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:  # `run`'s bots fail together (a rejected token)
        errors = _bridge_errors(group)
        if errors is None:
            raise
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        return 1


def _bridge_errors(group: BaseExceptionGroup[BaseException]) -> list[BridgeError] | None:
    """Every error in ``group``, if all are our own (one line each); else None."""
    errors: list[BridgeError] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner = _bridge_errors(exc)
            if inner is None:
                return None
            errors += inner
        elif isinstance(exc, BridgeError):
            errors.append(exc)
        else:
            return None
    return errors


async def _chat(settings: Settings) -> int:
    from bots.console import run_chat
    from core.bridge import open_bridge

    if settings.log_level == "INFO":  # operator chatter would interleave with the conversation
        logging.getLogger().setLevel(logging.WARNING)
    if settings.uses_simulator:
        print(SIMULATOR_NOTICE, file=sys.stderr)

    # SIGTERM ends the answer in progress with its note, as in `run` (Ctrl-C already does).
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        async with open_bridge(settings) as bridge:
            return await run_chat(bridge)
    except asyncio.CancelledError:
        if not terminated:
            raise  # Ctrl-C: asyncio.run turns it into KeyboardInterrupt (exit 130)
        return 0
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _run(settings: Settings) -> int:
    from core.bridge import open_bridge
    from core.lease import lease_name, run_leased
    from core.ops_server import serve_ops

    # (platform, leases, what, runner): one live process per bot token — or per Discord shard
    # (core/lease.py, bots/discord/shards.py)
    runners: list[tuple[str, list[str], str, Any]] = []
    if settings.discord_token is not None:
        discord = _adapter("discord")
        names = discord.lease_names(settings)
        runners.append(("discord", names, "Discord (DISCORD_TOKEN)", discord.run_discord))
    if settings.slack_bot_token is not None:
        names = [lease_name("slack", settings.slack_bot_token)]
        runners.append(("slack", names, "Slack (SLACK_BOT_TOKEN)", _adapter("slack").run_slack))
    if not runners:
        print(
            "No DISCORD_TOKEN or SLACK_BOT_TOKEN set: opening the terminal chat.", file=sys.stderr
        )
        return await _chat(settings)
    _stop_on_signals()
    try:
        async with open_bridge(settings) as bridge, AsyncExitStack() as stack:
            for platform, *_ in runners:
                bridge.metrics.expect_platform(platform)
            if settings.metrics_port is not None:
                await stack.enter_async_context(
                    serve_ops(bridge.metrics, settings.metrics_port, settings.metrics_host)
                )
            async with asyncio.TaskGroup() as group:
                for _, names, what, runner in runners:
                    run = functools.partial(runner, settings, bridge)
                    group.create_task(run_leased(bridge.store, names, what, run))
    except asyncio.CancelledError:  # SIGTERM / SIGINT: the bots have closed gracefully
        log.info("stopped")
    return 0


def _stop_on_signals() -> None:
    """SIGTERM (a deploy, ``docker stop``) and SIGINT end ``run`` gracefully.

    Python's default SIGTERM kills the process where it stands, leaving every answer in
    flight half-written until the next start. Cancelling the running task instead lets each
    bot stop taking new messages, give running turns a grace period to finish, and end the
    rest as interrupted. A second signal cuts the grace short: the answers end as
    interrupted now. A third exits at once (the next start finalizes what was left).
    """
    from core.shutdown import hurry

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received = 0

    def stop(sig: signal.Signals) -> None:
        nonlocal received
        received += 1
        if received == 1:
            task.cancel()
        elif received == 2:
            if hurry():
                log.warning("%s again: the answers in progress end as interrupted now", sig.name)
        else:
            log.warning("%s a third time: exiting at once", sig.name)
            logging.shutdown()
            os._exit(128 + sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)


async def _simulator(host: str, port: int, script: Path | None, faults: dict[str, object]) -> int:
    from core.simulator import serve_simulator

    try:
        await serve_simulator(host, port, script, faults=faults)
    except OSError as exc:  # the port is taken, the host is not ours: one line
        print(
            f"error: cannot serve the simulator on {host}:{port} ({exc.strerror})", file=sys.stderr
        )
        return 1
    return 0


async def _check(settings: Settings) -> int:
    problems = await _check_voiceflow(settings) + await _check_store(settings)
    if settings.discord_enabled:
        problems += await _adapter("discord").check_discord(settings)
    if settings.slack_enabled:
        problems += await _adapter("slack").check_slack(settings)
    for problem in problems:
        print(f"problem: {problem}")
    if not problems:
        print("ok: configuration is valid and every configured service answered")
    return EXIT_CHECK_FAILED if problems else 0


async def _check_voiceflow(settings: Settings) -> list[str]:
    if settings.voiceflow_api_key is None or settings.voiceflow_project_id is None:
        print("ok: no VOICEFLOW_API_KEY set; the built-in simulator will be used")
        return []
    from core.voiceflow import VoiceflowClient

    client = VoiceflowClient(
        base_url=settings.voiceflow_api_url,
        api_key=settings.voiceflow_api_key,
        project_id=settings.voiceflow_project_id,
        environment=settings.voiceflow_environment,
        max_retries=0,
    )
    try:
        await client.check()
    except VoiceflowError as exc:
        return [str(exc)]
    finally:
        await client.aclose()
    # The state endpoint resolves the project from the key: a wrong VOICEFLOW_PROJECT_ID only
    # shows on a turn, and a check must not run the agent (docs/voiceflow-api.md §7).
    print(
        "ok: Voiceflow answered and accepted the key "
        "(VOICEFLOW_PROJECT_ID is verified by the first conversation turn)"
    )
    return []


async def _check_store(settings: Settings) -> list[str]:
    from core.store import open_store

    try:
        async with open_store(settings.state_url):
            pass
    except BridgeError as exc:
        return [str(exc)]
    except OSError as exc:
        return [f"STATE_URL: cannot open the SQLite file ({exc.strerror})"]
    return []


def _adapter(name: str) -> Any:
    return importlib.import_module(f"bots.{name}")
