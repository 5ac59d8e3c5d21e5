"""A real redis-server for tests: started on a unix socket in a temp dir, no persistence."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

READY = b"ready to accept connections"


@asynccontextmanager
async def redis_server(directory: Path) -> AsyncIterator[str]:
    """Yield a ``unix://`` URL of a fresh redis-server; stop it afterwards."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: `make test` installs it (Debian package redis-server)"
    socket = directory / "redis.sock"
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--port",
        "0",
        "--unixsocket",
        str(socket),
        "--save",
        "",
        "--appendonly",
        "no",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        while READY not in (line := await asyncio.wait_for(proc.stdout.readline(), 10)).lower():
            assert line, "redis-server exited before it was ready"
        yield f"unix://{socket}"
    finally:
        proc.terminate()
        await proc.wait()
