"""A fake Slack for end-to-end tests: Web API, Socket Mode and signed HTTP event delivery.

Real slack-bolt / slack_sdk talk to it over 127.0.0.1 (docs/testing-with-fakes.md §3):

    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        handler = AsyncSocketModeHandler(AsyncApp(client=client), app_token=slack.app_token)
        await handler.connect_async()
        await slack.wait_socket()
        await slack.send_event({"type": "app_mention", ...})
        await slack.wait_until(lambda: bool(slack.calls_to("chat.update")))

Every Web API call is recorded in `calls`; bot messages live in `messages`; faults are scripted
with `inject`. HTTP mode: `post_event_http(url, event)` signs and POSTs to the app; set
`echo_url` to receive the bot's echo events there. `clock` (monotonic by default) stamps calls,
rate windows, stream ages and ack latencies, so tests move a fake clock instead of sleeping;
request signatures always use wall-clock time, as bolt verifies them against it. An event not
acked within `ack_timeout_s` (3 s, as on Slack) is redelivered up to three times; tests assert
`redeliveries == []` to show the app acked in time.
Module map: slack_web (method rules and state), slack_rules and slack_blocks (argument and
Block Kit checks), slack_model (records, rate limiters), slack_payloads (wire shapes),
slack_http (signed HTTP delivery), slack_acks (the ack deadline and redelivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx
from aiohttp import WSCloseCode, WSMsgType, web

from core.simulator.server import LISTEN_BACKLOG
from tests.fakes.slack_acks import (
    SOCKET_RETRY_REASON,
    AckDeadlines,
    Attempt,
    Redelivery,
)
from tests.fakes.slack_http import SlackHttpEvents
from tests.fakes.slack_model import Call, FakeMessage, SlackError
from tests.fakes.slack_payloads import (
    HUMAN_USER_ID,
    event_callback,
    hello,
    interaction_payload,
    slash_payload,
)
from tests.fakes.slack_web import SlackWebApi

__all__ = ["Call", "FakeMessage", "FakeSlack", "SlackError"]


class FakeSlack(SlackHttpEvents, SlackWebApi):
    """Async context manager serving a fake Slack workspace on 127.0.0.1:<free port>."""

    def __init__(
        self,
        *,
        team_id: str = "T0001",
        bot_user_id: str = "UBOT",
        bot_id: str = "B0001",
        bot_token: str = "xoxb-fake-bot-token",
        app_token: str = "xapp-fake-app-token",
        signing_secret: str = "fake-signing-secret",
        native_streaming: bool = True,
        stream_max_age_s: float = 300.0,
        stream_max_chars: int = 12_000,
        rate_limits: bool = True,
        update_per_min: int = 50,
        start_stop_per_min: int = 20,
        append_per_min: int = 100,
        post_per_s_per_channel: float = 1.0,
        post_burst: int = 3,
        ack_timeout_s: float = 3.0,
        echo_events: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            team_id=team_id,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            bot_token=bot_token,
            app_token=app_token,
            native_streaming=native_streaming,
            stream_max_age_s=stream_max_age_s,
            stream_max_chars=stream_max_chars,
            rate_limits=rate_limits,
            update_per_min=update_per_min,
            start_stop_per_min=start_stop_per_min,
            append_per_min=append_per_min,
            post_per_s_per_channel=post_per_s_per_channel,
            post_burst=post_burst,
            clock=clock,
        )
        self.signing_secret = signing_secret
        self.ack_timeout_s = ack_timeout_s
        self.echo_events = echo_events
        self.base_url = ""
        self.api_url = ""
        self.envelopes: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, float] = {}
        self.ack_payloads: dict[str, Any] = {}
        self.echo_url: str | None = None  # HTTP mode: POST echoes here instead of the socket
        self.echo_envelopes: set[str] = set()  # envelope ids (socket) or event ids (HTTP)
        self.http_acks: list[tuple[str, int, float]] = []
        self.responses: list[dict[str, Any]] = []
        self.socket_connections = 0
        self._sent_at: dict[str, float] = {}
        self._http_pending: set[str] = set()
        self._deadlines = AckDeadlines(self._notify)
        self._sockets: list[web.WebSocketResponse] = []
        self._socket: web.WebSocketResponse | None = None
        self._waiters: list[asyncio.Future[None]] = []
        #: Stalled calls (``stall``) whose late answer has gone out.
        self.late_answers = 0
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._http: httpx.AsyncClient | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/link", self._handle_link)
        app.router.add_post("/response/{n}", self._handle_response_url)
        # A call stalled past the world's end (stall()) is cut off after 2 s, not aiohttp's 60.
        self._runner = web.AppRunner(app, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=LISTEN_BACKLOG)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/"
        self.api_url = f"{self.base_url}api/"
        self._http = httpx.AsyncClient(trust_env=False, timeout=10)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._deadlines.aclose()
            for ws in list(self._sockets):
                await ws.close(code=WSCloseCode.GOING_AWAY)
            if self._http is not None:
                await self._http.aclose()
        finally:
            if self._runner is not None:
                await self._runner.cleanup()

    def socket_url(self, ticket: str) -> str:
        return f"ws{self.base_url.removeprefix('http')}link?ticket={ticket}"

    # ---- waiting -------------------------------------------------------------------------

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - part of the agreed FakeSlack API
    ) -> None:
        """Return once `predicate()` holds; it is re-checked after every call, ack and event."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.append(waiter)
                    await waiter
        except TimeoutError as exc:
            recent = [(c.method, c.error) for c in self.calls[-5:]]
            raise TimeoutError(f"condition not met in {timeout}s; last calls {recent}") from exc

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ---- Web API -------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        args: dict[str, Any] = dict(request.query)
        args.update(await _read_body(request))
        token = _bearer(request.headers.get("Authorization")) or args.pop("token", None)
        method = request.match_info["method"]
        status, body, headers, echoes = self.handle_call(method, args, token)
        self._notify()
        if stall_s := self.take_stall(method):
            await asyncio.sleep(stall_s)  # done already; the answer comes late
        response = web.json_response(body, status=status, headers=headers)
        # Answer first, echo after: real Slack's message events trail the API response.
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionResetError:  # the client gave up waiting (a stall): the call stands
            pass
        if stall_s:
            self.late_answers += 1
            self._notify()
        for event in echoes:
            await self._echo(event)
        return response

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        self._notify()
        return web.json_response({"ok": True})

    # ---- Socket Mode ---------------------------------------------------------------------

    @property
    def socket_connected(self) -> bool:
        return self._socket is not None and not self._socket.closed

    @property
    def late_acks(self) -> list[str]:
        return [eid for eid, seconds in self.acks.items() if seconds > self.ack_timeout_s]

    @property
    def unacked(self) -> list[str]:
        """Envelopes not acked yet, and HTTP deliveries still waiting for their answer."""
        waiting = [eid for eid in self._sent_at if eid not in self.acks]
        return waiting + sorted(self._http_pending)

    @property
    def redeliveries(self) -> list[Redelivery]:
        """Every redelivery made because an attempt was not acked in time, in order."""
        return self._deadlines.redeliveries

    @property
    def undelivered(self) -> list[str]:
        """Event ids given up on after three unacked retries."""
        return self._deadlines.undelivered

    async def wait_socket(self) -> None:
        await self.wait_until(lambda: self.socket_connected)

    async def wait_ack(self, envelope_id: str) -> float:
        await self.wait_until(lambda: envelope_id in self.acks)
        return self.acks[envelope_id]

    async def _handle_link(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True)  # answers the client's sdk-ping-pong pings
        await ws.prepare(request)
        self._sockets.append(ws)
        self._socket = ws
        self.socket_connections += 1
        await ws.send_json(hello(len(self._sockets)))
        self._notify()
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._on_socket_text(frame.data)
        finally:
            self._sockets.remove(ws)
            if self._socket is ws:
                self._socket = None
            self._notify()
        return ws

    def _on_socket_text(self, data: str) -> None:
        frame = json.loads(data)
        envelope_id = frame.get("envelope_id") if isinstance(frame, dict) else None
        if envelope_id in self._sent_at and envelope_id not in self.acks:
            self.acks[envelope_id] = self.clock() - self._sent_at[envelope_id]
            self.ack_payloads[envelope_id] = frame.get("payload")
            self._notify()

    async def disconnect_socket(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect; the old socket stays open until the client drops it."""
        ws = self._socket
        if ws is None:
            raise RuntimeError("no Socket Mode connection to disconnect")
        self._socket = None
        await ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "x"}})
        self._notify()

    async def drop_socket(self) -> None:
        """Close the Socket Mode connection from Slack's side, as a network drop would; the
        client reconnects at once (apps.connections.open, then a new socket) unless that
        call is failed by a fault."""
        ws = self._socket
        if ws is None:
            raise RuntimeError("no Socket Mode connection to drop")
        self._socket = None
        await ws.close(code=WSCloseCode.GOING_AWAY)
        self._notify()

    async def send_event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Deliver `event` in an events_api envelope; returns the envelope id.

        Redelivered (slack_acks) unless acked within `ack_timeout_s`.
        """
        payload = self._event_callback(event, event_id)
        return await self._send_event_payload(payload, retry_attempt, retry_reason)

    async def _send_event_payload(
        self, payload: dict[str, Any], retry_attempt: int, retry_reason: str
    ) -> str:
        envelope_id = await self._send_envelope(
            "events_api",
            payload,
            accepts_response_payload=False,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
        )

        async def check() -> str | None:
            with contextlib.suppress(TimeoutError):
                await self.wait_until(lambda: envelope_id in self.acks, self.ack_timeout_s)
                return None
            return SOCKET_RETRY_REASON

        async def redeliver(retry_num: int, reason: str) -> None:
            await self.wait_socket()  # Slack delivers on whichever connection is open
            await self._send_event_payload(payload, retry_num, reason)

        self._deadlines.watch(
            Attempt(payload["event_id"], retry_attempt, "socket"),
            check=check,
            redeliver=redeliver,
        )
        return envelope_id

    async def send_interaction(self, payload: dict[str, Any]) -> str:
        full = interaction_payload(payload, team_id=self.team_id, **self._payload_ids())
        accepts = full["type"] in ("view_submission", "block_suggestion")
        return await self._send_envelope("interactive", full, accepts_response_payload=accepts)

    async def send_slash_command(
        self, command: str, text: str, *, channel_id: str, user_id: str = HUMAN_USER_ID
    ) -> str:
        payload = self._slash_payload(command, text, channel_id, user_id)
        return await self._send_envelope("slash_commands", payload, accepts_response_payload=True)

    async def _send_envelope(self, kind: str, payload: dict[str, Any], **extra: Any) -> str:
        ws = self._socket
        if ws is None or ws.closed:
            raise RuntimeError("no Socket Mode connection; await wait_socket() first")
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload, **extra}
        self.envelopes[envelope_id] = envelope
        self._sent_at[envelope_id] = self.clock()
        await ws.send_json(envelope)
        self._notify()
        return envelope_id

    async def _echo(self, event: dict[str, Any]) -> None:
        # Real Slack echoes the bot's own writes when the app subscribes to message.* events.
        if not self.echo_events:
            return
        if self.echo_url is not None:
            event_id = f"Ev{next(self._ids):08d}"
            self.echo_envelopes.add(event_id)
            with contextlib.suppress(httpx.HTTPError):  # the app may already be gone
                await self.post_event_http(self.echo_url, event, event_id=event_id)
        elif self.socket_connected:
            # The socket may close between the check and the send: the echo is then lost.
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.echo_envelopes.add(await self.send_event(event))

    def _payload_ids(self) -> dict[str, str]:
        n = next(self._ids)
        return {"trigger_id": f"trigger-{n}", "response_url": f"{self.base_url}response/{n}"}

    def _event_callback(self, event: dict[str, Any], event_id: str | None) -> dict[str, Any]:
        return event_callback(
            event,
            team_id=self.team_id,
            bot_user_id=self.bot_user_id,
            event_id=event_id or f"Ev{next(self._ids):08d}",
        )

    def _slash_payload(
        self, command: str, text: str, channel_id: str, user_id: str
    ) -> dict[str, str]:
        return slash_payload(
            command,
            text,
            team_id=self.team_id,
            channel_id=channel_id,
            user_id=user_id,
            **self._payload_ids(),
        )


async def _read_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    if request.content_type == "application/json":
        body = await request.json()
        return body if isinstance(body, dict) else {}
    form = await request.post()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _bearer(header: str | None) -> str | None:
    if header and header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip() or None
    return None
