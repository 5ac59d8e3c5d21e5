"""Slack's ack deadline for the fake: an event not acked in time is delivered again.

docs/slack.md §3: an Events API request must be answered 2xx within 3 s, and a Socket Mode
``events_api`` envelope acked within 3 s; otherwise Slack redelivers the same event (same
``event_id``) — over HTTP with ``X-Slack-Retry-Num: 1..3`` and ``X-Slack-Retry-Reason:
http_timeout`` (even while the first response is still coming; ``http_error`` after a non-2xx
answer), over the socket as a new envelope with ``retry_attempt`` and ``retry_reason:
"timeout"`` — up to three retries. Real
Slack spaces the later retries out (about 1 and 5 minutes); the fake sends each one as soon
as the previous attempt's deadline passes, so a test sees all of them within seconds.

Deadlines run on the event loop's clock (real time): the fake's injected ``clock`` only stamps
ack latencies (``FakeSlack.late_acks``), so a test that moves a fake clock triggers no
redelivery. Interactive payloads and slash commands are not redelivered (Slack shows the user
an error instead), and neither are requests the fake forges on purpose (a bad signature, an
old timestamp, another secret): Slack did not send those, so it does not retry them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import httpx

__all__ = [
    "HTTP_ERROR_REASON",
    "HTTP_RETRY_REASON",
    "MAX_RETRIES",
    "SOCKET_RETRY_REASON",
    "AckDeadlines",
    "Attempt",
    "Redelivery",
    "http_retry_reason",
]

log = logging.getLogger(__name__)

MAX_RETRIES = 3
HTTP_RETRY_REASON = "http_timeout"
HTTP_ERROR_REASON = "http_error"
SOCKET_RETRY_REASON = "timeout"


Transport = Literal["socket", "http"]


@dataclass(frozen=True)
class Attempt:
    """One delivery of an event: ``retry_num`` 0 is the first, 1..3 Slack's retries."""

    event_id: str
    retry_num: int
    transport: Transport


@dataclass(frozen=True)
class Redelivery:
    """One redelivery the fake made because an attempt was not acked in time."""

    event_id: str
    retry_num: int
    reason: str
    transport: Transport


#: Waits for one attempt's ack; returns the retry reason, or None when it was acked in time.
AckCheck = Callable[[], Awaitable[str | None]]
#: Delivers the event again as retry number ``n`` with ``reason``.
Redeliver = Callable[[int, str], Awaitable[object]]


class AckDeadlines:
    """Watches each delivery attempt and redelivers it when it was not acked in time."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change  # wakes the fake's wait_until
        self.redeliveries: list[Redelivery] = []
        self.undelivered: list[str] = []  # event ids given up after MAX_RETRIES
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, attempt: Attempt, *, check: AckCheck, redeliver: Redeliver) -> None:
        """Redeliver ``attempt``'s event through ``redeliver`` unless ``check`` saw it acked."""
        task = asyncio.create_task(self._watch(attempt, check, redeliver))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, attempt: Attempt, check: AckCheck, redeliver: Redeliver) -> None:
        reason = await check()
        if reason is None:
            return
        if attempt.retry_num >= MAX_RETRIES:
            self.undelivered.append(attempt.event_id)
            self._on_change()
            return
        retry_num = attempt.retry_num + 1
        self.redeliveries.append(Redelivery(attempt.event_id, retry_num, reason, attempt.transport))
        self._on_change()
        try:
            await redeliver(retry_num, reason)
        except Exception as exc:  # the app went away: Slack would just count a failure
            log.debug("redelivery of %s failed: %s", attempt.event_id, exc)

    async def aclose(self) -> None:
        """Stop watching (the fake is closing); nothing is redelivered after this."""
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def http_retry_reason(
    attempt: asyncio.Future[httpx.Response], timeout_s: float
) -> str | None:
    """Why Slack would retry this Events API request, or None: answered 2xx in time.

    A non-2xx answer is retried as ``http_error`` unless it carries ``X-Slack-No-Retry: 1``.
    """
    done, _ = await asyncio.wait({attempt}, timeout=timeout_s)
    if not done:
        return HTTP_RETRY_REASON
    if attempt.cancelled() or attempt.exception() is not None:
        return None  # the caller gave up or the app is gone: nothing left to deliver to
    response = attempt.result()
    if response.is_success or response.headers.get("X-Slack-No-Retry") == "1":
        return None
    return HTTP_ERROR_REASON
