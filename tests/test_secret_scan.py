"""The session-wide secret scan (tests/conftest.py) catches a leak: a planted one fails a run.

A separate pytest process runs a planted test with our conftest loaded as a plugin, so its
leaks fail that inner session and never reach this one's scan.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.fakes.discord import FakeDiscord

REPO = Path(__file__).resolve().parents[1]
PLANTED = """
import logging
import sys

TOKEN = {token!r}


def test_logs_it() -> None:
    logging.getLogger("core.planted").info("calling with %s", TOKEN)


def test_prints_it() -> None:
    print("token:", TOKEN, file=sys.{stream})
"""


async def run_planted(tmp_path: Path, stream: str) -> tuple[int, str]:
    test = tmp_path / "test_planted.py"
    test.write_text(PLANTED.format(token=FakeDiscord.token, stream=stream))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "tests.conftest",
        "--rootdir",
        str(tmp_path),
        str(test),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=REPO,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_a_logged_or_printed_token_fails_the_session(tmp_path: Path) -> None:
    for stream in ("stdout", "stderr"):
        code, out = await run_planted(tmp_path, stream)
        assert "2 passed" in out  # the tests themselves pass ...
        assert code != 0  # ... and the session fails on the scan
        assert "SECRET LEAK" in out and "2 log line(s)/output(s)" in out
        assert "; 2 leak(s)" in out
