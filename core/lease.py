"""One live connection per bot: a lease in the shared conversation store.

Two ``vf-bridge run`` processes on one Discord token (or one Slack app) would both answer
every event, and the second one's start would end the first one's answers in flight as
interrupted. So before a process connects a platform it claims that connection's lease in
the store both would share (the SQLite file, or Redis):

* the holder renews it every :data:`RENEW_S`; a graceful stop releases it;
* a second process waits as a standby — it says so once — and takes over as soon as the
  lease is released, or :data:`LEASE_S` after its holder stopped renewing (a crash, a lost
  host);
* a holder on this host whose process is gone (``kill -9``, a restarted container: same
  host name and pid, another run) is taken over at once, so a restart never waits;
* a holder that finds its lease taken (it stalled past :data:`LEASE_S`) stops that platform
  with :class:`LeaseLostError`: the other process answers from then on.

The lease is named by a hash of the token, never the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from core.config import Secret
from core.errors import BridgeError
from core.store import Store

__all__ = ["LEASE_S", "RENEW_S", "LeaseLostError", "holder_id", "lease_name", "run_leased"]

log = logging.getLogger(__name__)

LEASE_S = 15.0
RENEW_S = 5.0
#: How often a standby asks again.
POLL_S = 1.0


class LeaseLostError(BridgeError):
    """Another process took this connection's lease: this one stops answering there."""


def lease_name(platform: str, token: Secret) -> str:
    digest = hashlib.sha256(token.reveal().encode()).hexdigest()[:16]
    return f"{platform}:{digest}"


def holder_id() -> str:
    """This process: ``host:pid:nonce`` (the nonce tells a restarted pid from the old one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _host_and_pid(holder: str) -> tuple[str, str]:
    host, _, rest = holder.partition(":")
    return host, rest.partition(":")[0]


def _is_gone(holder: str) -> bool:
    """Whether ``holder`` is a process of this host that no longer runs."""
    host, pid = _host_and_pid(holder)
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True  # this pid's earlier run (a container restarted): not us, we just came
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return False


async def _acquire(store: Store, name: str, me: str, what: str) -> None:
    told = False
    while (current := await store.claim(name, me, LEASE_S)) is not None:
        if current and _is_gone(current):
            log.info("%s: the process before (%s) is gone; taking over", what, current)
            if await store.claim(name, me, LEASE_S, take_from=current) is None:
                return
            continue
        if not told:
            log.warning(
                "%s: another vf-bridge process (host %s, pid %s) is connected; waiting to take"
                " over when it stops",
                what,
                *_host_and_pid(current),
            )
            told = True
        await asyncio.sleep(POLL_S)
    if told:
        log.info("%s: taking over from the process before", what)


async def _keep(store: Store, held: list[str], me: str, what: str) -> None:
    """Renew every lease in ``held`` (it grows while the rest are being acquired)."""
    while True:
        await asyncio.sleep(RENEW_S)
        for name in list(held):
            try:
                current = await store.claim(name, me, LEASE_S)
            except Exception as exc:  # a store blip: try again; the lease outlasts a few misses
                log.warning("%s: could not renew the connection lease (%s)", what, exc)
                continue
            if current is not None:
                raise LeaseLostError(
                    f"{what}: another vf-bridge process took over this connection; stopping here"
                )


async def run_leased(
    store: Store,
    names: str | Sequence[str],
    what: str,
    run: Callable[[], Coroutine[Any, Any, None]],
) -> None:
    """Wait for the lease ``names`` — or for every one of several (a sharded bot's shards,
    taken in order, so that two processes asking for overlapping sets never deadlock; the ones
    held are renewed while the rest are awaited) — then ``run`` while holding them; release
    them after. A lost lease stops ``run`` (cancelled: the bot's graceful stop) and raises
    LeaseLostError."""
    wanted = [names] if isinstance(names, str) else sorted(names)
    me = holder_id()
    held: list[str] = []

    async def acquire_then_run() -> None:
        for name in wanted:
            await _acquire(store, name, me, what)
            held.append(name)
        await run()

    keeper = asyncio.create_task(_keep(store, held, me, what), name=f"lease {wanted[0]}")
    runner = asyncio.create_task(acquire_then_run(), name=f"leased {wanted[0]}")
    try:
        await asyncio.wait({keeper, runner}, return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            runner.result()
            return
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        keeper.result()  # LeaseLostError (or the store's own failure)
    finally:
        keeper.cancel()
        runner.cancel()  # cancelled from outside (SIGTERM): the bot stops gracefully
        for task in (runner, keeper):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for name in held:
            with contextlib.suppress(Exception):
                await store.release(name, me)
