"""The Voiceflow Dialog Manager client (docs/voiceflow-api.md §2, §4, §6).

:meth:`VoiceflowClient.interact` streams one turn from the v2 endpoint with
``completion_events=true`` and yields typed traces (``core.traces``). httpx and httpx-sse
errors are translated here, once, into the ``VoiceflowError`` branch of ``core.errors``:

    before the first event   401 -> VoiceflowAuthError, 404 -> VoiceflowNotFoundError,
                             400 / other 4xx -> VoiceflowRequestError,
                             429 / 5xx / connect errors -> retried with backoff (honouring
                             Retry-After; one longer than a turn can wait gives up at once),
                             then VoiceflowUnavailableError;
                             sent but never answered (read timeout, connection lost while
                             waiting, a 408 after the runtime's own 20 s) ->
                             VoiceflowUnavailableError at once: it may have run
    after the 200 response   EOF without ``end``, a dropped connection or no event for
                             ``idle_timeout_s`` -> StreamInterruptedError, never retried
                             (an interact POST is not idempotent)

The key is sent raw in ``Authorization`` and never appears in a log line or an error message.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, ServerSentEvent

from core.config import Secret, safe_url
from core.errors import (
    StreamInterruptedError,
    VoiceflowAuthError,
    VoiceflowError,
    VoiceflowNotFoundError,
    VoiceflowRequestError,
    VoiceflowUnavailableError,
)
from core.traces import Trace, parse_trace

__all__ = ["CHECK_USER_ID", "VoiceflowClient"]

log = logging.getLogger(__name__)

CHECK_USER_ID = "vf-bridge-check"
DEFAULT_MAX_RETRY_AFTER_S = 30.0
BACKOFF_JITTER = 0.2  # ±20 %, so that many shards do not retry in lockstep
BODY_EXCERPT_CHARS = 200
#: The runtime's own "response timeout" (after 20 s of work on the turn): it may have run.
TIMED_OUT_STATUS = 408
#: Transport failures that leave the request unsent, so retrying cannot run a turn twice. A
#: read timeout, or a server that closes the connection without an answer (RemoteProtocolError:
#: a crashed pod, a proxy reset), may follow a turn that ran. (A pooled connection the server
#: closed while idle is detected by httpcore before reuse.)
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class _Failure:
    """A failed attempt that may be retried."""

    reason: str
    status: int | None = None
    retry_after_s: float | None = None
    hint: str = ""  # what to check, once the retries have run out


#: Every streaming turn holds one connection for its whole answer, so httpx's default pool of
#: 100 would make the 101st concurrent turn wait and fail with PoolTimeout. Concurrency is
#: bounded by the conversations themselves (one turn each, per-user admission).
CONNECTION_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=100)


class VoiceflowClient:
    """One project + environment of the Voiceflow runtime; an async context manager."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: Secret,
        project_id: str,
        environment: str,
        connect_timeout_s: float = 10.0,
        idle_timeout_s: float = 60.0,
        max_retries: int = 3,
        backoff_base_s: float = 0.5,
        max_retry_after_s: float = DEFAULT_MAX_RETRY_AFTER_S,
        transport: httpx.AsyncBaseTransport | None = None,
        trust_env: bool = True,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._key = api_key
        self._project_id = project_id
        self._environment = environment
        self._idle_timeout_s = idle_timeout_s
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._max_retry_after_s = max_retry_after_s
        # read= is the idle time between bytes; _next_event also bounds the time between events,
        # because a keep-alive comment would reset the byte timer.
        timeout = httpx.Timeout(
            connect=connect_timeout_s,
            read=idle_timeout_s,
            write=connect_timeout_s,
            pool=connect_timeout_s,
        )
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            timeout=timeout,
            limits=CONNECTION_LIMITS,
            transport=transport,
            trust_env=trust_env,
        )

    async def __aenter__(self) -> VoiceflowClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- interact --------------------------------------------------------------------------

    async def interact(
        self,
        user_id: str,
        action: dict[str, Any],
        *,
        variables: dict[str, Any] | None = None,
    ) -> AsyncGenerator[Trace, None]:
        """Send ``action`` for ``user_id`` and yield the turn's traces as they arrive.

        An async generator: errors before the first event raise from the first ``__anext__``
        (see the module docstring). Use it under ``contextlib.aclosing`` — closing it, or
        cancelling the task awaiting it, closes the HTTP response and so the upstream request.
        Unknown traces come through as ``core.traces.Ignored``.
        """
        body: dict[str, Any] = {"action": action}
        if variables:
            body["variables"] = variables
        started = time.monotonic()
        response = await self._open_stream(user_id, body)
        count = 0
        try:
            async for trace in self._traces(response):
                count += 1
                yield trace
        finally:
            await response.aclose()
            elapsed = time.monotonic() - started
            log.debug("turn of %s: %d traces in %.2fs", user_id, count, elapsed)

    async def _open_stream(self, user_id: str, body: dict[str, Any]) -> httpx.Response:
        path = (
            f"/v2/project/{quote(self._project_id, safe='')}"
            f"/user/{quote(user_id, safe='')}/interact/stream"
        )
        params = {"completion_events": "true", "environment": self._environment}
        headers = {"Authorization": self._key.reveal(), "Accept": "text/event-stream"}

        def build() -> httpx.Request:
            return self._http.build_request("POST", path, params=params, headers=headers, json=body)

        response = await self._send(build)
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            await response.aclose()
            raise VoiceflowRequestError(
                f"Voiceflow answered {response.status_code} with Content-Type {content_type!r}"
                " instead of an event stream: check VOICEFLOW_API_URL",
                status=response.status_code,
            )
        return response

    async def _traces(self, response: httpx.Response) -> AsyncIterator[Trace]:
        # An event stream is UTF-8 whatever its charset says, and a leading BOM is dropped
        # (the SSE spec): left in, it would glue itself to the first field's name.
        response.encoding = "utf-8-sig"
        events = EventSource(response).aiter_sse()
        try:
            while True:
                sse = await self._next_event(events)
                if sse.event == "end":
                    return  # no data, "{}" or the legacy {"type":"end"}: all end the turn
                trace = _decode(sse.data)
                if trace is not None:
                    yield trace
        finally:
            await events.aclose()

    async def _next_event(self, events: AsyncIterator[ServerSentEvent]) -> ServerSentEvent:
        """The next ``trace`` or ``end`` event, within ``idle_timeout_s``.

        Skips what carries no trace: comments (the decoder drops them), the empty ``message``
        events httpx-sse emits after ``retry:`` or keep-alive blank lines, ``state`` events.
        """
        try:
            async with asyncio.timeout(self._idle_timeout_s):
                async for sse in events:
                    if sse.event in ("trace", "end"):
                        return sse
                    if sse.data:
                        log.debug("skipping SSE event %r", sse.event)
        except TimeoutError:
            raise StreamInterruptedError(
                f"no event from Voiceflow for {self._idle_timeout_s:g}s"
            ) from None
        except httpx.HTTPError as exc:
            raise StreamInterruptedError(
                f"the Voiceflow stream broke ({type(exc).__name__})"
            ) from exc
        raise StreamInterruptedError("the Voiceflow stream ended without an end event")

    # --- state and check -------------------------------------------------------------------

    async def delete_state(self, user_id: str) -> None:
        """Delete the Voiceflow state of ``user_id``; best effort: logs, never raises."""
        path = f"/state/user/{quote(user_id, safe='')}"
        try:
            response = await self._http.delete(path, headers=self._state_headers())
        except httpx.HTTPError as exc:
            log.warning("could not delete Voiceflow state of %s: %s", user_id, type(exc).__name__)
            return
        if not response.is_success:
            log.warning(
                "could not delete Voiceflow state of %s: HTTP %d", user_id, response.status_code
            )

    async def check(self) -> None:
        """Reach the runtime and validate the key and environment.

        Raises the mapped :class:`VoiceflowError` (or ``VoiceflowUnavailableError``) whose
        one-line message names what to fix.
        """

        def build() -> httpx.Request:
            path = f"/state/user/{CHECK_USER_ID}"
            return self._http.build_request("GET", path, headers=self._state_headers())

        response = await self._send(build)
        await response.aclose()

    def _state_headers(self) -> dict[str, str]:
        return {"Authorization": self._key.reveal(), "versionID": self._environment}

    # --- sending with retries --------------------------------------------------------------

    async def _send(self, build: Callable[[], httpx.Request]) -> httpx.Response:
        """Send until a 2xx arrives (returned unread, streaming) or the retries run out."""
        for attempt in range(self._max_retries + 1):
            outcome = await self._attempt(build())
            if isinstance(outcome, httpx.Response):
                return outcome
            if attempt == self._max_retries:
                hint = f": {outcome.hint}" if outcome.hint else ""
                raise VoiceflowUnavailableError(
                    f"{outcome.reason} after {attempt + 1} attempt{'s' if attempt else ''}{hint}",
                    status=outcome.status,
                )
            wait = outcome.retry_after_s
            if wait is not None and wait > self._max_retry_after_s:  # retrying sooner would
                raise VoiceflowUnavailableError(  # only meet the same refusal
                    f"{outcome.reason}; it asks to wait {wait:.0f}s, longer than a turn waits "
                    f"({self._max_retry_after_s:.0f}s)",
                    status=outcome.status,
                )
            delay = self._delay_s(attempt, outcome)
            log.warning("%s; retrying in %.2fs", outcome.reason, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns or raises

    async def _attempt(self, request: httpx.Request) -> httpx.Response | _Failure:
        try:
            response = await self._http.send(request, stream=True)
        except httpx.UnsupportedProtocol as exc:
            raise VoiceflowUnavailableError(
                f"VOICEFLOW_API_URL {safe_url(self._base_url)!r} is not an http(s) URL"
            ) from exc
        except _NEVER_SENT as exc:  # nothing reached Voiceflow: safe to send again
            return _Failure(
                f"cannot reach Voiceflow at {safe_url(self._base_url)} ({type(exc).__name__})",
                hint="check VOICEFLOW_API_URL and the network",
            )
        except httpx.TransportError as exc:  # it may have run the turn: sending again could
            raise VoiceflowUnavailableError(  # run it twice
                f"Voiceflow took the request but gave no answer ({type(exc).__name__}); "
                "not sent again"
            ) from exc
        if response.is_success:
            return response
        status = response.status_code
        excerpt = await self._error_excerpt(response)
        if status == 429 or 500 <= status <= 599:
            reason = f"Voiceflow answered {status} ({excerpt})"
            return _Failure(reason, status, _retry_after_s(response))
        if status == TIMED_OUT_STATUS:
            raise VoiceflowUnavailableError(
                f"Voiceflow timed out working on the request (408: {excerpt}); not sent again",
                status=status,
            )
        raise self._refusal(status, excerpt)

    def _delay_s(self, attempt: int, failure: _Failure) -> float:
        if failure.retry_after_s is not None:
            return failure.retry_after_s
        jitter = random.uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER)
        return float(self._backoff_base_s * 2**attempt * jitter)

    def _refusal(self, status: int, excerpt: str) -> VoiceflowError:
        if status == 401:
            return VoiceflowAuthError(
                f"Voiceflow refused the key (401: {excerpt}): check that VOICEFLOW_API_KEY is "
                f"a Dialog Manager key of project {self._project_id} (VOICEFLOW_PROJECT_ID)",
                status=status,
            )
        # Voiceflow's own 404 explains itself in a JSON body (backend-utils `data`, VError
        # `message`), which the excerpt is. A server's bare "404: Not Found", an HTML page, an
        # empty body (the reason phrase) or other JSON mean the path is not Voiceflow's.
        reason = httpx.codes.get_reason_phrase(status)
        if status == 404 and (excerpt == reason or excerpt.startswith(("404", "{", "[", "<"))):
            detail = excerpt.removeprefix("404").lstrip(": ") or reason
            return VoiceflowNotFoundError(
                f"{safe_url(self._base_url)} answered 404 ({detail}) without a Voiceflow error "
                "body: VOICEFLOW_API_URL is likely wrong",
                status=status,
            )
        if status == 404:
            return VoiceflowNotFoundError(
                f"Voiceflow environment {self._environment!r} not found (404: {excerpt}): "
                "publish the agent to it or set VOICEFLOW_ENVIRONMENT",
                status=status,
            )
        return VoiceflowRequestError(
            f"Voiceflow refused the request ({status}: {excerpt}): "
            "check VOICEFLOW_ENVIRONMENT and the request",
            status=status,
        )

    async def _error_excerpt(self, response: httpx.Response) -> str:
        """A one-line summary of an error body, without the key; the response is closed."""
        try:
            text = (await response.aread()).decode("utf-8", errors="replace")
        except httpx.HTTPError:
            text = ""  # the status decides; the body only helps the message
        finally:
            await response.aclose()
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            text = str(body.get("data") or body.get("message") or text)
        line = " ".join(text.split())[:BODY_EXCERPT_CHARS] or response.reason_phrase
        return line.replace(self._key.reveal(), "[redacted]")


def _decode(data: str) -> Trace | None:
    """One ``trace`` event's data as a typed trace; non-JSON is logged and skipped."""
    try:
        raw = json.loads(data)
    except ValueError:
        log.warning("skipping a trace event whose data is not JSON (%d chars)", len(data))
        return None
    trace = parse_trace(raw)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("trace %s", raw.get("type") if isinstance(raw, dict) else type(raw).__name__)
    return trace


def _retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds, given as seconds or as an HTTP date; None if absent/bad."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
