"""Slack Web API semantics for the fake: auth, limits, messages and native streams.

Transport-free: `SlackWebApi.handle_call` takes a parsed request and returns the reply, so the
server in `tests/fakes/slack.py` only translates HTTP. Rules follow docs/slack.md §1–§4.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tests.fakes.slack_blocks import check_blocks
from tests.fakes.slack_model import (
    POST_MAX_CHARS,
    UPDATE_MAX_CHARS,
    Call,
    FakeMessage,
    SlackError,
    SlidingWindow,
    TokenBucket,
    retry_after_header,
)
from tests.fakes.slack_payloads import changed_event, deleted_event, message_json, posted_event
from tests.fakes.slack_rules import (
    check_content,
    decode_json_arg,
    require,
    require_channel,
    stream_piece,
    ts_key,
)

__all__ = ["Reply", "SlackWebApi"]

APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
# Workspace-wide per-minute tiers (docs/slack.md §1); chat.postMessage has its own bucket.
TIER_OF_METHOD = {
    "chat.update": "update",
    "chat.delete": "update",
    "chat.startStream": "start_stop",
    "chat.stopStream": "start_stop",
    "chat.appendStream": "append",
}
FIRST_TS_S = 1_700_001_000  # above the 1700000000.x timestamps tests give human messages

Reply = tuple[int, dict[str, Any], dict[str, str], list[dict[str, Any]]]
"""HTTP status, JSON body, extra headers, echo events to emit after responding."""


class SlackWebApi:
    """State and method handlers behind `/api/{method}`; see FakeSlack for the public API."""

    def __init__(
        self,
        *,
        team_id: str,
        bot_user_id: str,
        bot_id: str,
        bot_token: str,
        app_token: str,
        native_streaming: bool,
        stream_max_age_s: float,
        stream_max_chars: int,
        rate_limits: bool,
        update_per_min: int,
        start_stop_per_min: int,
        append_per_min: int,
        post_per_s_per_channel: float,
        post_burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.team_id, self.bot_user_id, self.bot_id = team_id, bot_user_id, bot_id
        self.bot_token, self.app_token = bot_token, app_token
        self.native_streaming = native_streaming
        self.stream_max_age_s = stream_max_age_s
        self.stream_max_chars = stream_max_chars
        self.update_max_chars = UPDATE_MAX_CHARS  # lower it to make Slack count stricter
        self.rate_limits = rate_limits
        self.post_per_s_per_channel = post_per_s_per_channel
        self.post_burst = post_burst
        self.clock = clock
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], FakeMessage] = {}
        self.ephemerals: list[FakeMessage] = []
        self.statuses: dict[tuple[str, str], list[str]] = {}
        self.reactions: list[tuple[str, str, str]] = []
        self.channels: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.count_429 = 0
        self._faults: dict[str, deque[SlackError]] = {}
        self._stalls: dict[str, deque[float]] = {}
        self._windows = {
            "update": SlidingWindow(update_per_min),
            "start_stop": SlidingWindow(start_stop_per_min),
            "append": SlidingWindow(append_per_min),
        }
        self._post_buckets: dict[str, TokenBucket] = {}
        self._ts_counter = 0
        self._tickets: set[str] = set()
        self._echoes: list[dict[str, Any]] = []
        self._handlers: dict[str, Callable[[dict[str, Any], float], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._connections_open,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.startStream": self._start_stream,
            "chat.appendStream": self._append_stream,
            "chat.stopStream": self._stop_stream,
            "assistant.threads.setStatus": self._set_status,
            "conversations.info": self._conversations_info,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "reactions.add": self._reactions_add,
        }

    # ---- queries -------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def visible_text(self, channel: str, ts: str) -> str:
        return self.messages[(channel, ts)].visible_text

    def thread_messages(self, channel: str, thread_ts: str | None) -> list[FakeMessage]:
        """Undeleted bot messages in a thread (or at the channel's top level), in ts order."""
        found = [
            m
            for m in self.messages.values()
            if m.channel == channel and m.thread_ts == thread_ts and not m.deleted
        ]
        return sorted(found, key=lambda m: ts_key(m.ts))

    # ---- scripting -----------------------------------------------------------------------

    def inject(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int = 200,
        retry_after: float | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` calls of `method` with this failure (before rate limits)."""
        default = "ratelimited" if status == 429 else "internal_error"
        fault = SlackError(error or default, status=status, retry_after=retry_after)
        self._faults.setdefault(method, deque()).extend([fault] * times)

    def clear_faults(self) -> None:
        """Stop every injected failure: later calls are served normally."""
        self._faults.clear()

    def stall(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Carry out the next `times` calls of `method`, but answer each `seconds` late (a
        slow Slack: a client that times out cannot tell whether the call was done)."""
        self._stalls.setdefault(method, deque()).extend([seconds] * times)

    def take_stall(self, method: str) -> float:
        stalls = self._stalls.get(method)
        return stalls.popleft() if stalls else 0.0

    def expire_stream(self, channel: str, ts: str) -> None:
        self.messages[(channel, ts)].streaming = False

    def stop_by_user(self, channel: str, ts: str) -> None:
        """The user pressed stop: the next append/stop gets `stopped_by_user`."""
        msg = self.messages[(channel, ts)]
        msg.streaming = False
        msg.stopped_by_user = True

    def issue_ticket(self) -> str:
        ticket = str(len(self._tickets) + 1)
        self._tickets.add(ticket)
        return ticket

    def socket_url(self, ticket: str) -> str:
        raise NotImplementedError

    # ---- dispatch ------------------------------------------------------------------------

    def handle_call(self, method: str, args: dict[str, Any], token: str | None) -> Reply:
        args = {k: decode_json_arg(k, v) for k, v in args.items()}
        call = Call(method=method, args=args, token=token, t=self.clock())
        self.calls.append(call)
        self._echoes = []
        headers: dict[str, str] = {}
        try:
            body = self._dispatch(call)
        except SlackError as exc:
            call.ok, call.error, call.status = False, exc.error, exc.status
            body = {"ok": False, "error": exc.error}
            if exc.messages:
                body["response_metadata"] = {"messages": exc.messages}
            if exc.retry_after is not None:
                headers["Retry-After"] = retry_after_header(exc.retry_after)
            self.count_429 += exc.status == 429
        call.response = body
        return call.status, body, headers, self._echoes

    def _dispatch(self, call: Call) -> dict[str, Any]:
        handler = self._handlers.get(call.method)
        if handler is None:
            raise SlackError("unknown_method")
        self._check_token(call.method, call.token)
        faults = self._faults.get(call.method)
        if faults:
            raise faults.popleft()
        self._check_rate(call.method, call.args, call.t)
        return handler(call.args, call.t)

    def _check_token(self, method: str, token: str | None) -> None:
        expected = self.app_token if method in APP_TOKEN_METHODS else self.bot_token
        if not token:
            raise SlackError("not_authed")
        if token == expected:
            return
        if token in (self.bot_token, self.app_token):
            raise SlackError("not_allowed_token_type")
        raise SlackError("invalid_auth")

    def _check_rate(self, method: str, args: dict[str, Any], now: float) -> None:
        if not self.rate_limits:
            return
        if method == "chat.postMessage":
            channel = str(args.get("channel", ""))
            bucket = self._post_buckets.get(channel)
            if bucket is None:
                bucket = TokenBucket(self.post_per_s_per_channel, self.post_burst, now)
                self._post_buckets[channel] = bucket
            wait = bucket.acquire(now)
        elif method in TIER_OF_METHOD:
            wait = self._windows[TIER_OF_METHOD[method]].acquire(now)
        else:
            return
        if wait is not None:
            raise SlackError("ratelimited", status=429, retry_after=wait)

    # ---- methods -------------------------------------------------------------------------

    def _auth_test(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "fakebot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _connections_open(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        return {"ok": True, "url": self.socket_url(self.issue_ticket())}

    def _post_message(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        channel = require_channel(args)
        check_content(args, text_max=None)
        text = str(args.get("text") or "")
        truncated = len(text) > POST_MAX_CHARS
        msg = self._new_message(
            channel,
            args,
            text=text[:POST_MAX_CHARS],
            markdown_text=args.get("markdown_text"),
            blocks=args.get("blocks"),
        )
        body = {
            "ok": True,
            "channel": channel,
            "ts": msg.ts,
            "message": message_json(msg, self.team_id),
        }
        if truncated:
            body["warning"] = "message_truncated"
            body["response_metadata"] = {"warnings": ["message_truncated"]}
        return body

    def _update(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        msg = self._message(args)
        check_content(args, text_max=self.update_max_chars)
        if len(str(args.get("markdown_text") or "")) > self.update_max_chars:
            raise SlackError("msg_too_long")
        before = message_json(msg, self.team_id)
        if args.get("markdown_text") is not None:
            msg.markdown_text, msg.text = args["markdown_text"], ""
        else:
            msg.markdown_text, msg.text = None, str(args.get("text") or "")
        if "blocks" in args:  # omitted blocks are kept; `[]` removes them
            msg.blocks = args["blocks"] or None
        msg.streaming = False  # the documented recovery for a stuck native stream
        self._changed(msg, before)
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "text": msg.text}

    def _delete(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        msg = self._message(args)
        before = message_json(msg, self.team_id)
        msg.deleted, msg.streaming = True, False
        msg.snapshot()
        self._echoes.append(deleted_event(msg, before, event_ts=self._next_ts()))
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _post_ephemeral(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        channel = require_channel(args)
        user = require(args, "user", "user_not_in_channel")
        check_content(args, text_max=None)
        msg = FakeMessage(
            channel=channel,
            ts=self._next_ts(),
            text=str(args.get("text") or "")[:POST_MAX_CHARS],
            markdown_text=args.get("markdown_text"),
            blocks=args.get("blocks"),
            thread_ts=args.get("thread_ts") or None,
            user=self.bot_user_id,
            bot_id=self.bot_id,
            ephemeral_user=user,
        )
        msg.snapshot()
        self.ephemerals.append(msg)
        return {"ok": True, "message_ts": msg.ts}

    def _start_stream(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        if not self.native_streaming:
            raise SlackError("feature_not_enabled")
        channel = require_channel(args)
        thread_ts = args.get("thread_ts") or None
        recipient = args.get("recipient_user_id") and args.get("recipient_team_id")
        if not channel.startswith("D") and not (recipient and thread_ts):
            raise SlackError("invalid_arguments")
        text, chunks = stream_piece(args, required=False)
        self._check_stream_size(0, text)
        msg = self._new_message(
            channel,
            args,
            markdown_text=text,
            streaming=True,
            stream_started_at=now,
            stream_chunks=chunks,
        )
        return {"ok": True, "channel": channel, "ts": msg.ts}

    def _append_stream(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        msg = self._streaming_message(args, now)
        text, chunks = stream_piece(args, required=True)
        self._check_stream_size(len(msg.markdown_text or ""), text)
        msg.markdown_text = (msg.markdown_text or "") + text
        msg.stream_chunks.extend(chunks)
        msg.snapshot()
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _stop_stream(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        msg = self._streaming_message(args, now)
        text, chunks = stream_piece(args, required=False)
        blocks = args.get("blocks")
        check_blocks(blocks)
        self._check_stream_size(len(msg.markdown_text or ""), text)
        before = message_json(msg, self.team_id)
        msg.markdown_text = (msg.markdown_text or "") + text
        msg.stream_chunks.extend(chunks)
        msg.blocks = blocks or msg.blocks
        msg.streaming = False
        self._changed(msg, before)
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _set_status(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        channel = require(args, "channel_id", "channel_not_found")
        thread_ts = require(args, "thread_ts", "invalid_arguments")
        loading = args.get("loading_messages") or []
        if len(loading) > 10 or any(len(str(m)) > 50 for m in loading):
            raise SlackError("invalid_arguments")
        self.statuses.setdefault((channel, thread_ts), []).append(str(args.get("status", "")))
        return {"ok": True}

    def _conversations_info(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        channel = require_channel(args)
        default = {
            "id": channel,
            "name": channel.lower(),
            "is_channel": channel.startswith("C"),
            "is_im": channel.startswith("D"),
            "is_private": not channel.startswith("C"),
            "is_member": True,
        }
        return {"ok": True, "channel": self.channels.get(channel, default)}

    def _conversations_replies(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        """A thread's messages the fake holds (the bot's), oldest first, after ``oldest``."""
        channel = require_channel(args)
        thread_ts = require(args, "ts", "thread_not_found")
        oldest = ts_key(str(args.get("oldest") or "0"))
        found = [
            message_json(m, self.team_id)
            for m in self.thread_messages(channel, thread_ts)
            if ts_key(m.ts) > oldest
        ]
        limit = int(args.get("limit") or 1000)
        return {"ok": True, "messages": found[:limit], "has_more": len(found) > limit}

    def _users_info(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        user = require(args, "user", "user_not_found")
        name = user.lower()
        default = {
            "id": user,
            "team_id": self.team_id,
            "name": name,
            "real_name": name.title(),
            "is_bot": user == self.bot_user_id,
            "profile": {"display_name": name, "real_name": name.title()},
        }
        return {"ok": True, "user": self.users.get(user, default)}

    def _reactions_add(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        key = (
            require_channel(args),
            require(args, "timestamp", "message_not_found"),
            require(args, "name", "invalid_name"),
        )
        if key in self.reactions:
            raise SlackError("already_reacted")
        self.reactions.append(key)
        return {"ok": True}

    # ---- message bookkeeping -------------------------------------------------------------

    def _next_ts(self) -> str:
        self._ts_counter += 1
        return f"{FIRST_TS_S + self._ts_counter}.{self._ts_counter:06d}"

    def _new_message(self, channel: str, args: dict[str, Any], **fields: Any) -> FakeMessage:
        msg = FakeMessage(
            channel=channel,
            ts=self._next_ts(),
            thread_ts=args.get("thread_ts") or None,
            user=self.bot_user_id,
            bot_id=self.bot_id,
            **fields,
        )
        msg.snapshot()
        self.messages[(channel, msg.ts)] = msg
        self._echoes.append(posted_event(msg, self.team_id))
        return msg

    def _changed(self, msg: FakeMessage, before: dict[str, Any]) -> None:
        msg.snapshot()
        event = changed_event(msg, before, event_ts=self._next_ts(), team_id=self.team_id)
        self._echoes.append(event)

    def _message(self, args: dict[str, Any]) -> FakeMessage:
        channel = require_channel(args)
        msg = self.messages.get((channel, str(args.get("ts", ""))))
        if msg is None or msg.deleted:
            raise SlackError("message_not_found")
        return msg

    def _streaming_message(self, args: dict[str, Any], now: float) -> FakeMessage:
        msg = self._message(args)
        if msg.stopped_by_user:
            raise SlackError("stopped_by_user")
        started = msg.stream_started_at
        if msg.streaming and started is not None and now - started > self.stream_max_age_s:
            msg.streaming = False
        if not msg.streaming:
            raise SlackError("message_not_in_streaming_state")
        return msg

    def _check_stream_size(self, so_far: int, text: str) -> None:
        if so_far + len(text) > self.stream_max_chars:
            raise SlackError("msg_too_long")
