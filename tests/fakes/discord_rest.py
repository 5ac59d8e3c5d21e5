"""REST side of the fake Discord: one pipeline (record → auth → scripted fault → global limit →
channel bucket → handler) and the channel/message routes.

Routes are matched against the path after `/api/v{n}`. Interaction callbacks and webhook routes are
token-authenticated and outside the bot's global and channel limits (docs/discord.md §2, §3).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.discord_guild import CHANNELS, application, bot_user, guild_of
from tests.fakes.discord_limits import (
    FixedWindow,
    FormError,
    bucket_headers,
    invalid_form,
    too_many,
    validate_message,
)
from tests.fakes.discord_model import (
    FLAG_EPHEMERAL,
    FakeMessage,
    Recorded,
    Snowflakes,
    message_payload,
    now_iso,
)

GLOBAL_WINDOW_S = 1.0
MAX_NONCE_CHARS = 25
_API_PREFIX = re.compile(r"^/api/v\d+")


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str
    handler: str
    bucket: str | None = None  # channel-partitioned rate-limit group
    is_webhook: bool = False  # token in the path, no bot auth, no global limit


def _route(method: str, path: str, name: str, handler: str, **kw: Any) -> Route:
    return Route(method, re.compile(path), f"{method} {name}", handler, **kw)


_CH, _MSG, _TOK = r"/channels/(?P<cid>\d+)", r"/messages/(?P<mid>\d+)", r"(?P<token>[^/]+)"
_HOOK = rf"/webhooks/(?P<app>\d+)/{_TOK}"
_HOOK_MSG = _HOOK + r"/messages/(?P<mid>@original|\d+)"
ROUTES = (
    _route("GET", r"/users/@me", "/users/@me", "_get_me"),
    _route("GET", r"/oauth2/applications/@me", "/oauth2/applications/@me", "_get_app"),
    _route("GET", r"/gateway/bot", "/gateway/bot", "_get_gateway_bot"),
    _route("GET", _CH, "/channels/{id}", "_get_channel"),
    _route("POST", _CH + "/typing", "/channels/{id}/typing", "_typing"),
    _route("POST", _CH + "/messages", "/channels/{id}/messages", "_create", bucket="create"),
    _route("GET", _CH + _MSG, "/channels/{id}/messages/{mid}", "_get_message"),
    _route("PATCH", _CH + _MSG, "/channels/{id}/messages/{mid}", "_edit", bucket="modify"),
    _route("DELETE", _CH + _MSG, "/channels/{id}/messages/{mid}", "_delete", bucket="modify"),
    _route("PUT", r"/applications/\d+/commands", "/applications/{id}/commands", "_put_commands"),
    _route(
        "PUT",
        r"/applications/\d+/guilds/(?P<gid>\d+)/commands",
        "/applications/{id}/guilds/{gid}/commands",
        "_put_commands",
    ),
    _route(
        "POST",
        rf"/interactions/(?P<iid>\d+)/{_TOK}/callback",
        "/interactions/{id}/{token}/callback",
        "_callback",
        is_webhook=True,
    ),
    _route("POST", _HOOK, "/webhooks/{id}/{token}", "_followup", is_webhook=True),
    *(
        _route(m, _HOOK_MSG, "/webhooks/{id}/{token}/messages/{mid}", h, is_webhook=True)
        for m, h in (("GET", "_hook_get"), ("PATCH", "_hook_edit"), ("DELETE", "_hook_delete"))
    ),
)  # fmt: skip


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def to_response(self) -> web.Response:
        if self.body is None:
            return web.Response(status=self.status, headers=self.headers)
        # discord.py parses JSON only for exactly this Content-Type (testing-with-fakes.md §2.4).
        headers = {**self.headers, "Content-Type": "application/json"}
        raw = json.dumps(self.body).encode()
        return web.Response(status=self.status, body=raw, headers=headers)


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    reply: Reply
    times: int
    after: int = 0  # matching requests let through before the fault starts
    commit: bool = False  # apply the request, then answer with the fault anyway

    def matches(self, method: str, path: str) -> bool:
        if self.times <= 0 or self.method not in ("*", method):
            return False
        return self.pattern.fullmatch(path) is not None

    def response(self) -> Reply:
        return Reply(self.reply.status, self.reply.body, dict(self.reply.headers))


def unknown_message() -> FormError:
    return FormError(404, 10008, "Unknown Message")


async def read_body(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        raw = form.get("payload_json")
        return json.loads(raw) if isinstance(raw, str) else None
    text = await request.text()
    return json.loads(text) if text else None


class RestCore:
    """Request pipeline plus channel and message routes; subclasses add interactions, server."""

    token = "MTAwMA.fake.token-for-tests"

    def __init__(
        self,
        *,
        rate_limits: bool,
        limit: int,
        window_s: float,
        global_limit: int,
        bot_user_id: str,
        application_id: str,
    ) -> None:
        self.bot_user_id = bot_user_id
        self.application_id = application_id
        self.requests: list[Recorded] = []
        self.messages: dict[str, FakeMessage] = {}
        self.count_429 = 0
        self.gateway_url = ""
        #: What GET /gateway/bot answers: Discord's recommended shard count, and its URL
        #: (the fake's own gateway unless a test sets another).
        self.recommended_shards = 1
        self.bot_gateway_url: str | None = None
        self.session_starts_remaining = 999
        self.max_concurrency = 1
        #: A test's own answer to GET /gateway/bot instead (a proxy without the route...).
        self.gateway_bot_reply: Reply | None = None
        self._rate_limits = rate_limits
        self._limit, self._window_s = limit, window_s
        self._global = FixedWindow(global_limit, GLOBAL_WINDOW_S)
        self._windows: dict[tuple[str, str], FixedWindow] = {}
        self._faults: list[Fault] = []
        self._nonces: dict[tuple[str, str], str] = {}
        self._ids = Snowflakes()

    def _dispatch(self, event: str, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def _changed(self) -> None:
        raise NotImplementedError

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    # -- pipeline ---------------------------------------------------------------------------------

    async def serve(self, request: web.Request) -> web.StreamResponse:
        now = self._now()
        path = _API_PREFIX.sub("", request.path, count=1)
        body = await read_body(request)
        route, params = _match(request.method, path)
        call = Call(request.method, path, params, dict(request.query), body)
        reply = self._respond(request, route, call, now)
        if reply.status == 429:
            self.count_429 += 1
        name = route.name if route else f"{request.method} <unknown>"
        self.requests.append(
            Recorded(request.method, path, name, call.query, body, dict(request.headers),
                     reply.status, now)
        )  # fmt: skip
        self._changed()
        return reply.to_response()

    def _respond(self, request: web.Request, route: Route | None, call: Call, now: float) -> Reply:
        if route is None:
            return Reply(404, {"message": "404: Not Found", "code": 0})
        if not route.is_webhook and request.headers.get("Authorization") != f"Bot {self.token}":
            return Reply(401, {"message": "401: Unauthorized", "code": 0})
        fault = self._take_fault(call)
        if fault is not None and not fault.commit:
            return fault.response()
        reply = self._limited_or_handled(route, call, now)
        # A committed fault: the write happened, only its answer is lost (a retry repeats it).
        return reply if fault is None else fault.response()

    def _take_fault(self, call: Call) -> Fault | None:
        fault = next((f for f in self._faults if f.matches(call.method, call.path)), None)
        if fault is not None and fault.after > 0:
            fault.after -= 1
            return None
        if fault is not None:
            fault.times -= 1
        return fault

    def _limited_or_handled(self, route: Route, call: Call, now: float) -> Reply:
        if self._rate_limits and not route.is_webhook and not self._global.take(now):
            headers, body = too_many(self._global.reset_after(now), is_global=True)
            return Reply(429, body, headers)
        window = self._bucket(route, call)
        if window is not None and not window.take(now):
            headers, body = too_many(window.reset_after(now), is_global=False)
            return Reply(429, body, {**bucket_headers(window, str(route.bucket), now), **headers})
        try:
            reply: Reply = getattr(self, route.handler)(call)
        except FormError as exc:
            reply = Reply(exc.status, exc.body)
        if window is not None:
            reply.headers.update(bucket_headers(window, str(route.bucket), now))
        return reply

    def _bucket(self, route: Route, call: Call) -> FixedWindow | None:
        if not self._rate_limits or route.bucket is None:
            return None
        key = (route.bucket, call.params["cid"])
        return self._windows.setdefault(key, FixedWindow(self._limit, self._window_s))

    # -- messages -------------------------------------------------------------------------------

    def payload(self, msg: FakeMessage) -> dict[str, Any]:
        return message_payload(msg, self.messages)

    def new_message(
        self, channel_id: str, body: dict[str, Any], *, webhook_id: str | None = None
    ) -> FakeMessage:
        """Store a bot-authored message and echo MESSAGE_CREATE (ephemeral ones are not echoed)."""
        msg = FakeMessage(
            id=self._ids.new(),
            channel_id=channel_id,
            guild_id=guild_of(channel_id),
            author=bot_user(self.bot_user_id),
            nonce=body.get("nonce"),
            message_reference=self._reference(channel_id, body.get("message_reference")),
            webhook_id=webhook_id,
        )
        msg.apply(body)
        self.messages[msg.id] = msg
        if not msg.flags & FLAG_EPHEMERAL:
            self._dispatch("MESSAGE_CREATE", message_payload(msg, self.messages, event=True))
        return msg

    def edit_message(self, msg: FakeMessage, body: dict[str, Any]) -> None:
        """Validate and apply an edit, record it in `edits`, echo MESSAGE_UPDATE."""
        validate_message(body, existing=self.payload(msg))
        msg.apply(body)
        msg.edits.append(msg.content)
        msg.edited_timestamp = now_iso()
        if not msg.flags & FLAG_EPHEMERAL:
            self._dispatch("MESSAGE_UPDATE", message_payload(msg, self.messages, event=True))

    def remove_message(self, msg: FakeMessage) -> None:
        msg.deleted = True
        event = {"id": msg.id, "channel_id": msg.channel_id}
        if msg.guild_id is not None:
            event["guild_id"] = msg.guild_id
        self._dispatch("MESSAGE_DELETE", event)

    def _reference(self, channel_id: str, ref: dict[str, Any] | None) -> dict[str, Any] | None:
        if not ref:
            return None
        parent_id = str(ref.get("message_id"))
        parent = self.messages.get(parent_id)
        if (parent is None or parent.deleted) and ref.get("fail_if_not_exists", True):
            raise invalid_form(["message_reference"], "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                               "Unknown message")  # fmt: skip
        normalized = {"message_id": parent_id, "channel_id": str(ref.get("channel_id", channel_id))}
        guild_id = guild_of(channel_id)
        if guild_id is not None:
            normalized["guild_id"] = guild_id
        return normalized

    def _live_message(self, channel_id: str, message_id: str) -> FakeMessage:
        msg = self.messages.get(message_id)
        if msg is None or msg.deleted or msg.channel_id != channel_id:
            raise unknown_message()
        return msg

    # -- routes -----------------------------------------------------------------------------------

    def _get_me(self, call: Call) -> Reply:
        return Reply(200, bot_user(self.bot_user_id))

    def _get_app(self, call: Call) -> Reply:
        return Reply(200, application(self.application_id))

    def _get_gateway_bot(self, call: Call) -> Reply:
        if self.gateway_bot_reply is not None:
            return self.gateway_bot_reply
        limit = {
            "total": 1000,
            "remaining": self.session_starts_remaining,
            "reset_after": 3_600_000,
            "max_concurrency": self.max_concurrency,
        }
        url = self.bot_gateway_url or self.gateway_url
        reply = {"url": url, "shards": self.recommended_shards, "session_start_limit": limit}
        return Reply(200, reply)

    def _get_channel(self, call: Call) -> Reply:
        channel = CHANNELS.get(call.params["cid"])
        if channel is None:
            raise FormError(404, 10003, "Unknown Channel")
        return Reply(200, channel)

    def _typing(self, call: Call) -> Reply:
        return Reply(204)

    def _create(self, call: Call) -> Reply:
        channel_id, body = call.params["cid"], call.body or {}
        nonce = body.get("nonce")
        if nonce is not None and len(str(nonce)) > MAX_NONCE_CHARS:
            raise invalid_form(["nonce"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        key = (channel_id, str(nonce))
        if body.get("enforce_nonce") and key in self._nonces:
            return Reply(200, self.payload(self.messages[self._nonces[key]]))
        validate_message(body)
        msg = self.new_message(channel_id, body)
        if body.get("enforce_nonce") and nonce is not None:
            self._nonces[key] = msg.id
        return Reply(200, self.payload(msg))

    def _get_message(self, call: Call) -> Reply:
        return Reply(200, self.payload(self._live_message(call.params["cid"], call.params["mid"])))

    def _edit(self, call: Call) -> Reply:
        msg = self._live_message(call.params["cid"], call.params["mid"])
        if msg.author_id != self.bot_user_id:
            raise FormError(403, 50005, "Cannot edit a message authored by another user")
        self.edit_message(msg, call.body or {})
        return Reply(200, self.payload(msg))

    def _delete(self, call: Call) -> Reply:
        self.remove_message(self._live_message(call.params["cid"], call.params["mid"]))
        return Reply(204)


def _match(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    for route in ROUTES:
        if route.method == method and (m := route.pattern.fullmatch(path)):
            return route, m.groupdict()
    return None, {}
