"""Graceful shutdown: running turns get a moment to finish, the rest end as interrupted.

An adapter's ``close`` first stops taking new messages, then calls :func:`end_turns` with the
tasks of the turns still running. A turn that finishes within ``grace_s`` ends as it would
have; one that does not is cancelled, and its relay finalizes the open message as
interrupted (shielded, so the final write goes out even while the process is stopping).
:func:`hurry` (a second SIGTERM or Ctrl-C) ends every grace period in progress at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

__all__ = ["SHUTDOWN_GRACE_S", "end_turns", "hurry"]

log = logging.getLogger(__name__)

#: How long a stopping process lets running answers finish before interrupting them. Short:
#: platforms restart a process that does not stop (Docker waits 10 s before SIGKILL).
SHUTDOWN_GRACE_S = 5.0


#: The grace periods in progress (each resolves to end its wait early).
_graces: set[asyncio.Future[None]] = set()


def hurry() -> bool:
    """End every grace period in progress now; True if there was one."""
    waiting = [grace for grace in _graces if not grace.done()]
    for grace in waiting:
        grace.set_result(None)
    return bool(waiting)


async def end_turns(tasks: Collection[asyncio.Task[None]], *, grace_s: float) -> None:
    """Wait up to ``grace_s`` (or until :func:`hurry`) for ``tasks``, then cancel those still
    running and wait for them."""
    running = {task for task in tasks if not task.done()}
    if not running:
        return
    log.info("stopping: %d answer(s) in progress get %.0fs to finish", len(running), grace_s)
    loop = asyncio.get_running_loop()
    grace = loop.create_future()
    _graces.add(grace)
    deadline = loop.time() + grace_s
    late = running
    try:
        while late and not grace.done() and (left := deadline - loop.time()) > 0:
            await asyncio.wait({*late, grace}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            late = {task for task in late if not task.done()}
    finally:
        _graces.discard(grace)
    for task in late:
        task.cancel()
    if late:
        log.info("stopping: %d answer(s) interrupted", len(late))
        await asyncio.gather(*late, return_exceptions=True)
