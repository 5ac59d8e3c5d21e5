"""The `vf-bridge` command as a user runs it: real processes, real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import pty
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bots.console.renderer import DIM, RESET, ConsoleRenderer
from core.platform import Outcome
from core.simulator import SIMULATOR_API_KEY, SIMULATOR_PROJECT_ID, Simulator
from tests.faults.outputs import record
from tests.redis_server import redis_server

KEY = "VF.DM.0123456789abcdef01234567.TopSecretValue42"
#: The simulator's greeting as the chat prints it (its slate's bold kept as markdown).
WELCOME = "Hi! I'm the voiceflow-bridge **simulator**"
PROJECT = "0123456789abcdef01234567"


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOICEFLOW_", "DISCORD_", "SLACK_"))
    }
    for proxy in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        base.pop(proxy, None)
    return {**base, "STATE_URL": f"sqlite:///{tmp_path / 'cli.db'}", **extra}


async def run(args: list[str], environ: dict[str, str], stdin: bytes = b"") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
        cwd=environ["HOME_DIR"],
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    record(out.decode())
    record(err.decode())
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {**env(tmp_path), "HOME_DIR": str(tmp_path), "PYTHONPATH": str(Path.cwd())}


@pytest.fixture
async def simulator_process(environ: dict[str, str]) -> AsyncIterator[str]:
    async with serving_simulator(environ) as url:
        yield url


@contextlib.asynccontextmanager
async def serving_simulator(environ: dict[str, str], *args: str) -> AsyncIterator[str]:
    """``vf-bridge simulator --port 0 ARGS`` in a process of its own; yields its URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core",
        "simulator",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    assert proc.stderr is not None
    line = b""
    try:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        found = re.search(r"http://127\.0\.0\.1:\d+", line.decode())
        assert found, line
        yield found.group(0)
    finally:
        proc.terminate()
        rest = await proc.stderr.read()
        await proc.wait()
        record((line + rest).decode(errors="replace"))


def simulated(url: str) -> dict[str, str]:
    """The variables that point vf-bridge at a simulator process."""
    return {
        "VOICEFLOW_API_URL": url,
        "VOICEFLOW_API_KEY": SIMULATOR_API_KEY,
        "VOICEFLOW_PROJECT_ID": SIMULATOR_PROJECT_ID,
    }


async def test_piped_chat_against_a_simulator_process(
    simulator_process: str, environ: dict[str, str]
) -> None:
    environ |= simulated(simulator_process)
    code, out, _ = await run(["chat"], environ, b"hello\nbuttons\n1\n")
    assert code == 0
    welcome = out.index(WELCOME)
    echo = out.index("You said: **hello**")
    buttons = out.index("[1] Order coffee")
    chosen = out.index("You chose **Order coffee**")
    assert welcome < echo < buttons < chosen
    assert "\x1b[" not in out  # piped output is plain


async def test_simulator_faults_switch_on_from_the_command_line(environ: dict[str, str]) -> None:
    """``--fault close_after_events=6``: every stream breaks after 6 events (the short welcome
    fits), and the chat shows the long answer so far, the interrupted note and Retry — an
    operator can watch the bridge degrade."""
    async with serving_simulator(environ, "--fault", "close_after_events=6") as url:
        code, out, err = await run(["chat"], environ | simulated(url), b"long\n")
    assert code == 0, err
    assert out.startswith(WELCOME) and out.count("⚠️ interrupted") == 1, out
    assert out.index("## A long answer") < out.index("⚠️ interrupted") < out.index("↻ Retry")
    assert "Traceback" not in err


async def test_an_unknown_simulator_fault_is_one_line(environ: dict[str, str]) -> None:
    code, _, err = await run(["simulator", "--fault", "use_crfl"], environ)
    lines = err.strip().splitlines()
    assert code == 2 and "unknown fault 'use_crfl'" in lines[-1] and "use_crlf" in lines[-1]


async def test_run_without_platforms_opens_the_chat(
    simulator_process: str, environ: dict[str, str]
) -> None:
    environ |= simulated(simulator_process)
    code, out, err = await run(["run"], environ, b"hello\n")
    assert code == 0, err
    assert "No DISCORD_TOKEN or SLACK_BOT_TOKEN set: opening the terminal chat." in err
    assert out.startswith(WELCOME)  # stdout: the chat only
    assert out.index(WELCOME) < out.index("You said: **hello**")


async def test_chat_without_a_key_uses_the_built_in_simulator(environ: dict[str, str]) -> None:
    code, out, err = await run(["chat"], environ, b"card\n")
    assert code == 0
    assert WELCOME in out and "▣" in out
    assert "built-in Voiceflow simulator" in err


async def test_a_second_chat_in_the_same_directory_starts_afresh(environ: dict[str, str]) -> None:
    """The built-in simulator forgets with its process; the conversation store does not."""
    for _ in range(2):
        code, out, _ = await run(["chat"], environ, b"hello\n")
        assert code == 0
        assert out.index(WELCOME) < out.index("You said: **hello**")
        assert "conversation ended" not in out


async def test_a_click_retires_the_console_button_set(environ: dict[str, str]) -> None:
    code, out, _ = await run(["chat"], environ, b"buttons\n1\n1\n")
    assert code == 0
    assert out.count("You chose **Order coffee**") == 1
    assert "You said: **1**" in out  # the second 1 is text: the set was retired


async def test_a_simulator_port_in_use_is_one_line(environ: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await run(["simulator", "--port", str(port)], environ)
    assert code == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        line for line in err.splitlines() if str(port) in line
    ]


async def test_the_simulator_reads_only_its_own_settings(environ: dict[str, str]) -> None:
    """It serves no bot: a bot setting it does not use never stops it; LOG_LEVEL does."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        bots = {"SLACK_PORT": "abc", "DISCORD_TOKEN": "not-a-token", "VOICEFLOW_PROJECT_ID": "p"}
        code, _, err = await run(["simulator", "--port", port], environ | bots)
        assert code == 1 and "cannot serve the simulator" in err and "config" not in err, err
        code, _, err = await run(["simulator", "--port", port], environ | {"LOG_LEVEL": "loud"})
        assert code == 2 and err.startswith("config error: LOG_LEVEL"), err


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"VOICEFLOW_API_KEY": "VF.DM.bad", "VOICEFLOW_PROJECT_ID": PROJECT}, "VOICEFLOW_API_KEY"),
        ({"VOICEFLOW_API_KEY": KEY}, "VOICEFLOW_PROJECT_ID"),
    ],
)
async def test_check_names_the_bad_variable(
    environ: dict[str, str], extra: dict[str, str], variable: str
) -> None:
    code, out, err = await run(["check"], environ | extra)
    assert code != 0
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1 and variable in lines[0]
    assert KEY not in out + err


async def test_check_reports_an_unreachable_url(environ: dict[str, str]) -> None:
    extra = {
        "VOICEFLOW_API_KEY": KEY,
        "VOICEFLOW_PROJECT_ID": PROJECT,
        "VOICEFLOW_API_URL": "http://127.0.0.1:9",  # discard port: nothing listens
    }
    code, out, err = await run(["check"], environ | extra)
    assert code != 0
    problems = [line for line in out.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and "VOICEFLOW_API_URL" in problems[0]
    assert KEY not in out + err


async def test_check_reports_a_rejected_key_without_echoing_it(environ: dict[str, str]) -> None:
    async with Simulator() as sim:
        extra = {
            "VOICEFLOW_API_KEY": KEY,
            "VOICEFLOW_PROJECT_ID": PROJECT,
            "VOICEFLOW_API_URL": sim.url,
        }
        code, out, err = await run(["check"], environ | extra)
    assert code != 0
    problems = [line for line in out.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and "VOICEFLOW_API_KEY" in problems[0]
    assert KEY not in out + err and "TopSecretValue42" not in out + err


async def test_an_unreachable_redis_is_one_line_naming_state_url(environ: dict[str, str]) -> None:
    unreachable = environ | {"STATE_URL": "redis://127.0.0.1:9/0"}
    code, out, err = await run(["check"], unreachable)
    assert code != 0
    problems = [line for line in out.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and "STATE_URL" in problems[0]
    code, out, err = await run(["chat"], unreachable, b"hello\n")
    assert code != 0 and "Traceback" not in err
    assert [line for line in err.splitlines() if "STATE_URL" in line]


async def test_an_unusable_sqlite_path_is_one_line_naming_state_url(
    environ: dict[str, str], tmp_path: Path
) -> None:
    unusable = environ | {"STATE_URL": f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}"}
    code, out, err = await run(["check"], unusable)
    assert code != 0 and "Traceback" not in out + err
    problems = [line for line in out.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and "STATE_URL" in problems[0]
    code, out, err = await run(["chat"], unusable, b"hello\n")
    assert code != 0 and "Traceback" not in err
    assert [line for line in err.splitlines() if "STATE_URL" in line]


async def test_chat_on_a_redis_store(environ: dict[str, str], tmp_path: Path) -> None:
    async with redis_server(tmp_path) as url:
        code, out, _ = await run(["chat"], environ | {"STATE_URL": url}, b"hello\n")
    assert code == 0 and "You said: **hello**" in out


DISCORD_TOKEN = "MTIzNDU2Nzg5.GhIjKl.TopSecretDiscordToken42"
SLACK_TOKENS = {"SLACK_BOT_TOKEN": "xoxb-1-TopSecretSlack42", "SLACK_APP_TOKEN": "xapp-1-Secret42"}


@pytest.mark.parametrize("platform", ["discord", "slack"])
async def test_run_with_a_rejected_or_unreachable_platform_is_one_line(
    environ: dict[str, str], platform: str
) -> None:
    """A wrong token is the likeliest first mistake: `run` ends with one line naming the
    variable, no traceback (Discord's API here answers 401; Slack's cannot be reached)."""
    async with Simulator() as sim:  # any HTTP server that refuses the token with a 401
        if platform == "discord":
            extra = {"DISCORD_TOKEN": DISCORD_TOKEN, "DISCORD_API_URL": sim.url}
            expected = "error: DISCORD_TOKEN: rejected"
        else:  # discard port: nothing listens
            extra = {**SLACK_TOKENS, "SLACK_API_URL": "http://127.0.0.1:9/api/"}
            expected = "error: SLACK_API_URL: cannot reach"
        code, out, err = await run(["run"], environ | extra)
    assert code == 1 and "Traceback" not in err, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(expected), err[-2000:]
    assert "TopSecret" not in out + err


async def test_ctrl_c_at_the_chat_prompt_exits_at_once(environ: dict[str, str]) -> None:
    """In a terminal, Ctrl-C while the chat waits for a line ends it (it used to wait for
    Enter: the line was read by a worker the event loop's shutdown waits for)."""
    leader, follower = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core", "chat",
        stdin=follower, stdout=follower, stderr=follower, env=environ,
        cwd=environ["HOME_DIR"],
    )  # fmt: skip
    os.close(follower)
    seen = b""
    try:
        async with asyncio.timeout(30):
            while b"\n> " not in seen:  # the welcome is shown and the prompt waits
                seen += await asyncio.to_thread(os.read, leader, 4096)
        proc.send_signal(signal.SIGINT)  # what the terminal sends for Ctrl-C
        code = await asyncio.wait_for(proc.wait(), 5)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(leader)
    record(seen.decode(errors="replace"))
    assert code == 130


async def test_sigterm_ends_a_chat_answer_with_its_note(environ: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core", "chat",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=environ, cwd=environ["HOME_DIR"],
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"tell me something long\n")  # stdin stays open: no EOF ends the chat
    await proc.stdin.drain()
    out = b""
    async with asyncio.timeout(30):
        while b"Streaming" not in out:  # the long answer has begun
            out += await proc.stdout.read(256)
    proc.send_signal(signal.SIGTERM)
    rest, err = await asyncio.wait_for(proc.communicate(), 15)
    record((out + rest + err).decode(errors="replace"))
    assert proc.returncode == 0, err.decode()[-2000:]
    assert (out + rest).decode().rstrip().endswith("⚠️ interrupted")


async def test_a_dotenv_that_is_not_utf8_is_one_line(environ: dict[str, str]) -> None:
    """Windows Notepad's "Unicode" is UTF-16: every command says so, naming .env."""
    dotenv = Path(environ["HOME_DIR"]) / ".env"
    dotenv.write_bytes("STREAM_UNIT=word\r\nLOG_LEVEL=info\r\n".encode("utf-16"))
    for command in ("check", "chat"):
        code, out, err = await run([command], environ)
        assert code == 2 and "Traceback" not in err
        lines = [line for line in (out + err).splitlines() if line.strip()]
        assert len(lines) == 1 and ".env" in lines[0] and "UTF-8" in lines[0], lines


async def test_a_dotenv_line_that_does_not_parse_is_one_line_without_its_text(
    environ: dict[str, str],
) -> None:
    """A pasted line python-dotenv cannot read would only warn and start without it."""
    dotenv = Path(environ["HOME_DIR"]) / ".env"
    dotenv.write_text('STREAM_UNIT=word\nDISCORD_TOKEN "abc.def.TopSecret"\nLOG_LEVEL=info\n')
    for command in ("check", "run"):
        code, out, err = await run([command], environ)
        assert code == 2 and "Traceback" not in err
        lines = [line for line in (out + err).splitlines() if line.strip()]
        assert len(lines) == 1 and ".env" in lines[0] and "line 2 " in lines[0], lines
        assert "TopSecret" not in out + err


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("VOICEFLOW_API_URL", "http://127.0.0.1:abc"),
        ("VOICEFLOW_API_URL", "http://[::1"),
        ("VOICEFLOW_API_URL", "http://127.0.0.1:99999"),
        ("STATE_URL", "redis://127.0.0.1:abc/0"),
        ("STATE_URL", "redis://127.0.0.1:99999/0"),
    ],
)
async def test_a_bad_port_or_host_in_a_url_is_one_line(
    environ: dict[str, str], variable: str, url: str
) -> None:
    extra = {"VOICEFLOW_API_KEY": KEY, "VOICEFLOW_PROJECT_ID": PROJECT, variable: url}
    for command in ("check", "chat"):
        code, out, err = await run([command], environ | extra)
        assert code == 2 and "Traceback" not in err
        lines = [line for line in (out + err).splitlines() if line.strip()]
        assert len(lines) == 1 and variable in lines[0], lines


async def test_a_redis_url_with_a_bad_option_is_one_line(environ: dict[str, str]) -> None:
    bad = environ | {"STATE_URL": "redis://127.0.0.1:9/0?socket_timeout=abc"}
    code, out, err = await run(["check"], bad)
    assert code == 1 and "Traceback" not in out + err
    problems = [line for line in out.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and "STATE_URL" in problems[0] and "socket_timeout" in problems[0]


@pytest.mark.parametrize("port", ["70000", "-1", "abc"])
async def test_a_simulator_port_out_of_range_is_refused(environ: dict[str, str], port: str) -> None:
    code, _, err = await run(["simulator", "--port", port], environ)
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error:" in line] == [
        f"vf-bridge simulator: error: argument --port: must be a port from 0 to 65535, got {port!r}"
    ]


async def test_help_shows_no_internal_references(environ: dict[str, str]) -> None:
    code, out, _ = await run(["--help"], environ)
    assert code == 0 and "run, chat, simulator, check" in out and "SPEC" not in out


async def test_check_says_the_project_id_is_verified_by_the_first_turn(
    environ: dict[str, str],
) -> None:
    """/state resolves the project from the key, so check cannot catch a wrong project id
    without running the agent; its ok line must not promise it did."""
    async with Simulator() as sim:
        extra = simulated(sim.url) | {"VOICEFLOW_PROJECT_ID": "111111111111111111111111"}
        code, out, _ = await run(["check"], environ | extra)
    assert code == 0
    assert out.splitlines()[0] == (
        "ok: Voiceflow answered and accepted the key "
        "(VOICEFLOW_PROJECT_ID is verified by the first conversation turn)"
    )


async def test_input_that_is_not_utf8_is_answered(environ: dict[str, str]) -> None:
    code, out, err = await run(["chat"], environ, b"\xff\xfe hello\ncaf\xe9\n")
    assert code == 0 and "Traceback" not in err and "interrupted" not in out
    assert "You said: **\ufffd\ufffd hello**" in out and "You said: **caf\ufffd**" in out


ESCAPES = "\x1b[31mred\x1b[0m \x07bell \x1b]0;pwned\x07title \x9b1mC1\x7f"


async def test_escape_sequences_from_voiceflow_never_reach_the_terminal(
    environ: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "escapes.json"
    text = {"type": "text", "payload": {"message": ESCAPES}}
    completion = {"type": "completion", "payload": {"content": f"streamed {ESCAPES}"}}
    buttons = {"buttons": [{"name": "\x1b[5mblink", "request": {"type": "path-x"}}]}
    choice = {"type": "choice", "payload": buttons}
    script.write_text(json.dumps({"texts": {"t": [text, completion, choice]}}))
    async with Simulator(script=script) as sim:
        code, out, _ = await run(["chat"], environ | simulated(sim.url), b"t\n")
    assert code == 0
    assert "red bell title 1mC1" in out and "streamed red bell title 1mC1" in out
    assert "[1] blink" in out
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), repr(out)


async def test_the_renderer_keeps_its_own_styling_and_joins_cut_escapes() -> None:
    out = io.StringIO()
    renderer = ConsoleRenderer(out, ansi=True)
    await renderer.send_notice("\x1b[31mnote")
    stream = renderer.start_stream("s")
    for chunk in ["a\x1b", "[3", "1mb\x1b]0;t", "itle\x07c", "\x1b"]:  # an LLM cuts anywhere
        stream.append(chunk)
    await stream.finish(Outcome.INTERRUPTED)
    assert out.getvalue() == f"{DIM}note{RESET}\nabc\n{DIM}{Outcome.INTERRUPTED.note}{RESET}\n"


async def test_output_while_the_prompt_waits_moves_the_prompt_below_it() -> None:
    """A no-reply turn (or any late output) while the user is at the prompt: the prompt line
    is erased, the output written, and the prompt shown again under it."""
    out = io.StringIO()
    renderer = ConsoleRenderer(out, ansi=True)
    renderer.prompt("\n> ")
    await renderer.send_notice("late note")
    await renderer.send_text("and a line")
    stream = renderer.start_stream("s")
    stream.append("streamed ")
    stream.append("answer")
    await stream.finish()
    renderer.answered()
    await renderer.send_text("after the user's line")
    erase = "\r\x1b[K"
    assert out.getvalue() == (
        f"\n> {erase}{DIM}late note{RESET}\n> {erase}and a line\n> {erase}streamed answer\n> "
        "after the user's line\n"
    )


async def test_a_typing_cue_left_by_a_turn_that_showed_nothing_goes_before_the_prompt() -> None:
    out = io.StringIO()
    renderer = ConsoleRenderer(out, ansi=True)
    await renderer.show_typing()
    renderer.prompt("\n> ")
    assert out.getvalue() == f"{DIM}…{RESET}\r\x1b[K\n> "


async def test_a_closed_output_pipe_ends_the_chat_quietly(environ: dict[str, str]) -> None:
    """`vf-bridge chat | head -1`: once head has gone, the chat ends with no traceback."""
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core", "chat",
        stdin=asyncio.subprocess.PIPE, stdout=write_end, stderr=asyncio.subprocess.PIPE,
        env=environ, cwd=environ["HOME_DIR"],
    )  # fmt: skip
    os.close(write_end)
    try:
        first = await asyncio.wait_for(asyncio.to_thread(os.read, read_end, 100), 30)
    finally:
        os.close(read_end)  # what head does after its first line
    _, err = await asyncio.wait_for(proc.communicate(b"huge\n"), 30)
    record(first.decode(errors="replace") + err.decode(errors="replace"))
    assert first.startswith(b"Hi! I'm the voiceflow-bridge")
    assert proc.returncode == 1
    assert "Traceback" not in err.decode() and "Exception ignored" not in err.decode()
