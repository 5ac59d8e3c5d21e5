"""Self-tests of tests/fakes/slack.py, driving the real slack-bolt and slack_sdk against it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack

CHANNEL = "C0001"
DM = "D0001"
THREAD_TS = "1700000000.000100"
MENTION = {
    "type": "app_mention",
    "user": "UHUMAN",
    "text": "<@UBOT> hello",
    "ts": THREAD_TS,
    "channel": CHANNEL,
    "team": "T0001",
}
HUMAN_DM = {
    "type": "message",
    "user": "UHUMAN",
    "text": "hi",
    "ts": "1700000000.000200",
    "channel": DM,
    "channel_type": "im",
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # slack_sdk honours *_PROXY and ignores NO_PROXY (docs/testing-with-fakes.md §1).
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def web_client(slack: FakeSlack, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token or slack.bot_token, base_url=slack.api_url)


def bolt_app(slack: FakeSlack, **kwargs: Any) -> AsyncApp:
    return AsyncApp(client=web_client(slack), **kwargs)


@asynccontextmanager
async def socket_mode(slack: FakeSlack, app: AsyncApp) -> AsyncIterator[AsyncSocketModeHandler]:
    handler = AsyncSocketModeHandler(app, app_token=slack.app_token)
    await handler.connect_async()
    try:
        await slack.wait_socket()
        yield handler
    finally:
        await handler.close_async()


@asynccontextmanager
async def http_mode(app: AsyncApp) -> AsyncIterator[str]:
    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()


def reply_in_thread(app: AsyncApp, final_text: str = "hello human") -> None:
    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any, client: AsyncWebClient) -> None:
        posted = await say(text="thinking", thread_ts=event["ts"])
        await client.chat_update(channel=posted["channel"], ts=posted["ts"], text=final_text)


async def slack_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


# ---- Socket Mode with real bolt ------------------------------------------------------------


async def test_mention_reaches_listener_which_posts_and_updates() -> None:
    async with FakeSlack() as slack:
        app = bolt_app(slack)
        reply_in_thread(app)
        async with socket_mode(slack, app):
            envelope_id = await slack.send_event(MENTION)
            ack_s = await slack.wait_ack(envelope_id)
            await slack.wait_until(lambda: bool(slack.calls_to("chat.update")))

        assert ack_s < 1.0 and slack.late_acks == []
        assert [c.method for c in slack.calls[:2]] == ["apps.connections.open", "auth.test"]
        assert slack.calls[0].token == slack.app_token
        post = slack.calls_to("chat.postMessage")[0]
        assert post.token == slack.bot_token
        assert post.args == {
            "channel": CHANNEL,
            "text": "thinking",
            "thread_ts": THREAD_TS,
            "team_id": "T0001",
        }
        (reply,) = slack.thread_messages(CHANNEL, THREAD_TS)
        assert reply.user == "UBOT" and reply.bot_id == "B0001"
        assert reply.history == ["thinking", "hello human"]
        assert slack.visible_text(CHANNEL, reply.ts) == "hello human"


async def test_own_echo_events_are_acked_and_dropped_by_bolt() -> None:
    async with FakeSlack() as slack:
        app = bolt_app(slack)
        reply_in_thread(app)
        seen: list[dict[str, Any]] = []

        @app.event("message")
        async def on_message(event: dict[str, Any]) -> None:
            seen.append(event)

        async with socket_mode(slack, app):
            await slack.send_event(MENTION)
            await slack.wait_until(
                lambda: len(slack.echo_envelopes) == 2 and not slack.unacked,
            )
            await slack.send_event(HUMAN_DM)
            await slack.wait_until(lambda: bool(seen))

        echoes = [slack.envelopes[e]["payload"]["event"] for e in slack.echo_envelopes]
        assert sorted(str(e.get("subtype")) for e in echoes) == ["None", "message_changed"]
        assert all(e.get("bot_id") or e["message"]["bot_id"] for e in echoes)
        assert [e["user"] for e in seen] == ["UHUMAN"]


async def test_redelivered_event_carries_retry_headers() -> None:
    async with FakeSlack(echo_events=False) as slack:
        app = bolt_app(slack)
        retries: list[tuple[str, list[str]]] = []

        @app.event("message")
        async def on_message(body: dict[str, Any], request: Any) -> None:
            retries.append((body["event_id"], request.headers.get("x-slack-retry-num")))

        async with socket_mode(slack, app):
            first = await slack.send_event(HUMAN_DM, event_id="EvSAME")
            again = await slack.send_event(
                HUMAN_DM, event_id="EvSAME", retry_attempt=1, retry_reason="timeout"
            )
            await slack.wait_until(lambda: len(retries) == 2)

        assert first != again
        assert sorted(retries) == [("EvSAME", ["0"]), ("EvSAME", ["1"])]
        assert slack.envelopes[again]["retry_reason"] == "timeout"


async def test_disconnect_makes_the_handler_reconnect_and_events_still_arrive() -> None:
    async with FakeSlack(echo_events=False) as slack:
        app = bolt_app(slack)
        seen: list[str] = []

        @app.event("message")
        async def on_message(event: dict[str, Any]) -> None:
            seen.append(event["text"])

        async with socket_mode(slack, app):
            await slack.disconnect_socket()
            assert not slack.socket_connected
            await slack.wait_socket()
            await slack.send_event({**HUMAN_DM, "text": "after reconnect"})
            await slack.wait_until(lambda: bool(seen))

        assert seen == ["after reconnect"]
        assert slack.socket_connections == 2
        assert len(slack.calls_to("apps.connections.open")) == 2


async def test_block_action_and_slash_command_envelopes_reach_bolt() -> None:
    async with FakeSlack(echo_events=False) as slack:
        app = bolt_app(slack)
        clicked: list[str] = []

        @app.action("vfb:1")
        async def on_click(ack: Any, action: dict[str, Any]) -> None:
            await ack()
            clicked.append(action["value"])

        @app.command("/reset")
        async def on_reset(ack: Any, command: dict[str, Any]) -> None:
            await ack(f"reset {command['channel_id']}")

        async with socket_mode(slack, app):
            click = await slack.send_interaction(block_actions_payload())
            command = await slack.send_slash_command("/reset", "", channel_id=CHANNEL)
            await slack.wait_until(lambda: bool(clicked) and command in slack.acks)

        assert clicked == ["choice-1"] and click in slack.acks
        assert slack.envelopes[command]["type"] == "slash_commands"
        assert slack.ack_payloads[command] == {"text": f"reset {CHANNEL}"}


def block_actions_payload() -> dict[str, Any]:
    action = {"action_id": "vfb:1", "block_id": "b1", "type": "button", "value": "choice-1"}
    return {
        "type": "block_actions",
        "actions": [{**action, "action_ts": "1700000001.000200"}],
        "channel": {"id": CHANNEL, "name": "general"},
        "container": {"type": "message", "message_ts": THREAD_TS, "channel_id": CHANNEL},
    }


# ---- HTTP (Events API) mode with real bolt -------------------------------------------------


async def test_http_mode_signed_events_and_rejections() -> None:
    async with FakeSlack() as slack:
        app = bolt_app(slack, signing_secret=slack.signing_secret)
        reply_in_thread(app)
        async with http_mode(app) as url:
            good = await slack.post_event_http(url, MENTION, event_id="EvHTTP")
            await slack.wait_until(lambda: bool(slack.calls_to("chat.update")))
            bad = await slack.post_event_http(url, MENTION, bad_signature=True)
            stale = await slack.post_event_http(url, MENTION, timestamp=int(time.time()) - 301)
            other_secret = await slack.post_event_http(url, MENTION, signing_secret="nope")
            challenge = await slack.post_url_verification(url, "c-123")

        assert good.status_code == 200 and slack.acks["EvHTTP"] < 1.0
        assert [bad.status_code, stale.status_code, other_secret.status_code] == [401, 401, 401]
        assert challenge.status_code == 200 and challenge.json() == {"challenge": "c-123"}
        assert len(slack.calls_to("chat.postMessage")) == 1  # rejected requests ran nothing
        assert [status for _, status, _ in slack.http_acks] == [200, 401, 401, 401, 200]


async def test_http_mode_echoes_are_acked_and_dropped_by_bolt() -> None:
    async with FakeSlack() as slack:
        app = bolt_app(slack, signing_secret=slack.signing_secret)
        reply_in_thread(app)
        seen: list[dict[str, Any]] = []

        @app.event("message")
        async def on_message(event: dict[str, Any]) -> None:
            seen.append(event)

        async with http_mode(app) as url:
            slack.echo_url = url
            await slack.post_event_http(url, MENTION)
            await slack.wait_until(lambda: len(slack.echo_envelopes & set(slack.acks)) == 2)
            await slack.post_event_http(url, HUMAN_DM)
            await slack.wait_until(lambda: bool(seen))

        assert [e["user"] for e in seen] == ["UHUMAN"]


async def test_http_mode_interaction_and_slash_command() -> None:
    async with FakeSlack() as slack:
        app = bolt_app(slack, signing_secret=slack.signing_secret)
        clicked: list[str] = []

        @app.action("vfb:1")
        async def on_click(ack: Any, action: dict[str, Any]) -> None:
            await ack()
            clicked.append(action["value"])

        @app.command("/reset")
        async def on_reset(ack: Any, command: dict[str, Any]) -> None:
            await ack(f"reset by {command['user_id']}")

        async with http_mode(app) as url:
            click = await slack.post_interaction_http(url, block_actions_payload())
            reset = await slack.post_slash_http(url, "/reset", "", channel_id=CHANNEL)
            retried = await slack.post_slash_http(
                url, "/reset", "", channel_id=CHANNEL, retry_num=1
            )

        assert click.status_code == 200 and clicked == ["choice-1"]
        assert (
            reset.status_code == 200 and reset.text == "reset by UHUMAN"
        )  # bolt acks text as text
        assert retried.status_code == 200


# ---- Web API rules through the real AsyncWebClient -----------------------------------------


async def test_native_stream_start_append_stop() -> None:
    async with FakeSlack() as slack:
        client = web_client(slack)
        started = await client.chat_startStream(
            channel=CHANNEL,
            thread_ts=THREAD_TS,
            recipient_user_id="UHUMAN",
            recipient_team_id="T0001",
            markdown_text="Hel",
        )
        ts = started["ts"]
        assert slack.messages[(CHANNEL, ts)].streaming
        await client.chat_appendStream(channel=CHANNEL, ts=ts, markdown_text="lo ")
        await client.chat_appendStream(
            channel=CHANNEL, ts=ts, chunks=[{"type": "markdown_text", "text": "world"}]
        )
        await client.chat_stopStream(channel=CHANNEL, ts=ts, markdown_text="!")
        late = await slack_error(
            client.chat_appendStream(channel=CHANNEL, ts=ts, markdown_text="x")
        )

        message = slack.messages[(CHANNEL, ts)]
        assert slack.visible_text(CHANNEL, ts) == "Hello world!"
        assert message.history == ["Hel", "Hello ", "Hello world", "Hello world!"]
        assert not message.streaming and message.thread_ts == THREAD_TS
        assert late.response["error"] == "message_not_in_streaming_state"
        assert slack.calls_to("chat.appendStream")[1].args["chunks"][0]["text"] == "world"


async def test_bolt_say_stream_streams_natively_in_a_channel_thread() -> None:
    async with FakeSlack(echo_events=False) as slack:
        app = bolt_app(slack)

        @app.event("app_mention")
        async def on_mention(say_stream: Any) -> None:
            stream = await say_stream(buffer_size=5)
            await stream.append(markdown_text="hello ")
            await stream.append(markdown_text="world")
            await stream.stop()

        async with socket_mode(slack, app):
            await slack.send_event(MENTION)
            await slack.wait_until(lambda: bool(slack.calls_to("chat.stopStream")))

        start = slack.calls_to("chat.startStream")[0]
        assert start.ok and "chunks" in start.args and "markdown_text" not in start.args
        assert start.args["recipient_user_id"] == "UHUMAN"
        (reply,) = slack.thread_messages(CHANNEL, THREAD_TS)
        assert reply.visible_text == "hello world" and not reply.streaming


async def test_slow_ack_is_reported_late() -> None:
    clock = FakeClock()
    async with FakeSlack(clock=clock, echo_events=False) as slack:
        app = bolt_app(slack)

        @app.middleware
        async def slow_middleware(next: Any) -> None:
            clock.advance(4.0)  # more than ack_timeout_s passes before bolt acks
            await next()

        @app.event("message")
        async def on_message() -> None:
            pass

        async with socket_mode(slack, app):
            slow = await slack.send_event(HUMAN_DM)
            await slack.wait_ack(slow)

        assert slack.late_acks == [slow] and slack.acks[slow] == 4.0


async def test_stream_expires_after_max_age_and_update_recovers() -> None:
    clock = FakeClock()
    async with FakeSlack(stream_max_age_s=0.2, clock=clock) as slack:
        client = web_client(slack)
        ts = (
            await client.chat_startStream(channel=DM, thread_ts=THREAD_TS, markdown_text="partial")
        )["ts"]
        await client.chat_appendStream(channel=DM, ts=ts, markdown_text=" text")
        clock.advance(0.25)
        expired = await slack_error(client.chat_appendStream(channel=DM, ts=ts, markdown_text="!"))
        await client.chat_update(channel=DM, ts=ts, text="partial text, finished")

        assert expired.response["error"] == "message_not_in_streaming_state"
        assert slack.visible_text(DM, ts) == "partial text, finished"


async def test_update_recovers_a_stream_that_is_still_streaming() -> None:
    async with FakeSlack() as slack:
        client = web_client(slack)
        ts = (await client.chat_startStream(channel=DM, thread_ts=THREAD_TS, markdown_text="a"))[
            "ts"
        ]
        await client.chat_update(channel=DM, ts=ts, text="final")
        stopped = await slack_error(client.chat_stopStream(channel=DM, ts=ts))

        assert stopped.response["error"] == "message_not_in_streaming_state"
        assert slack.messages[(DM, ts)].history == ["a", "final"]


async def test_expire_stop_by_user_and_cumulative_limit() -> None:
    async with FakeSlack(stream_max_chars=10) as slack:
        client = web_client(slack)
        first = (
            await client.chat_startStream(channel=DM, thread_ts=THREAD_TS, markdown_text="12345")
        )["ts"]
        too_long = await slack_error(
            client.chat_appendStream(channel=DM, ts=first, markdown_text="678901")
        )
        await client.chat_appendStream(channel=DM, ts=first, markdown_text="67890")
        slack.expire_stream(DM, first)
        expired = await slack_error(client.chat_stopStream(channel=DM, ts=first))
        second = (
            await client.chat_startStream(channel=DM, thread_ts=THREAD_TS, markdown_text="b")
        )["ts"]
        slack.stop_by_user(DM, second)
        stopped = await slack_error(
            client.chat_appendStream(channel=DM, ts=second, markdown_text="c")
        )

        assert too_long.response["error"] == "msg_too_long"
        assert slack.visible_text(DM, first) == "1234567890"
        assert expired.response["error"] == "message_not_in_streaming_state"
        assert stopped.response["error"] == "stopped_by_user"


async def test_update_text_limit_is_4000_chars() -> None:
    async with FakeSlack() as slack:
        client = web_client(slack)
        ts = (await client.chat_postMessage(channel=CHANNEL, text="▌"))["ts"]
        await client.chat_update(channel=CHANNEL, ts=ts, text="x" * 4_000)
        error = await slack_error(client.chat_update(channel=CHANNEL, ts=ts, text="x" * 4_001))

        assert error.response.status_code == 200
        assert error.response["error"] == "msg_too_long"
        assert slack.visible_text(CHANNEL, ts) == "x" * 4_000


async def test_51st_update_in_a_minute_gets_429_with_retry_after() -> None:
    clock = FakeClock()
    async with FakeSlack(clock=clock) as slack:
        client = web_client(slack)
        ts = (await client.chat_postMessage(channel=CHANNEL, text="0"))["ts"]
        for i in range(50):
            await client.chat_update(channel=CHANNEL, ts=ts, text=str(i))
            clock.advance(0.5)
        limited = await slack_error(client.chat_update(channel=CHANNEL, ts=ts, text="51"))
        clock.advance(35.0)  # the first update's slot frees 60 s after it
        await client.chat_update(channel=CHANNEL, ts=ts, text="later")

        assert limited.response.status_code == 429
        assert limited.response["error"] == "ratelimited"
        assert limited.response.headers["Retry-After"] == "35"
        assert slack.count_429 == 1 and slack.calls_to("chat.update")[-1].ok


async def test_small_update_budget_is_shared_with_delete_across_messages() -> None:
    clock = FakeClock()
    async with FakeSlack(update_per_min=3, clock=clock) as slack:
        client = web_client(slack)
        a = (await client.chat_postMessage(channel=CHANNEL, text="a"))["ts"]
        b = (await client.chat_postMessage(channel="C0002", text="b"))["ts"]
        await client.chat_update(channel=CHANNEL, ts=a, text="a2")
        await client.chat_update(channel="C0002", ts=b, text="b2")
        clock.advance(59.5)
        await client.chat_delete(channel="C0002", ts=b)
        limited = await slack_error(client.chat_update(channel=CHANNEL, ts=a, text="a3"))

        assert limited.response.headers["Retry-After"] == "1"  # 0.5 s rounds up to a whole second
        assert slack.thread_messages(CHANNEL, None)[0].visible_text == "a2"
        assert slack.thread_messages("C0002", None) == []


async def test_post_message_bucket_per_channel() -> None:
    clock = FakeClock()
    async with FakeSlack(clock=clock) as slack:
        client = web_client(slack)
        for i in range(3):
            await client.chat_postMessage(channel=CHANNEL, text=f"burst {i}")
        limited = await slack_error(client.chat_postMessage(channel=CHANNEL, text="4th"))
        await client.chat_postMessage(channel="C0002", text="other channel")
        clock.advance(1.0)
        await client.chat_postMessage(channel=CHANNEL, text="after a second")

        assert limited.response.status_code == 429
        assert limited.response.headers["Retry-After"] == "1"
        texts = [m.visible_text for m in slack.thread_messages(CHANNEL, None)]
        assert texts == ["burst 0", "burst 1", "burst 2", "after a second"]


async def test_start_stop_tier_and_rate_limits_switch() -> None:
    clock = FakeClock()
    async with FakeSlack(start_stop_per_min=2, clock=clock) as slack:
        client = web_client(slack)
        ts = (await client.chat_startStream(channel=DM, thread_ts=THREAD_TS, markdown_text="a"))[
            "ts"
        ]
        await client.chat_stopStream(channel=DM, ts=ts)
        limited = await slack_error(
            client.chat_startStream(channel=DM, thread_ts=THREAD_TS, markdown_text="b")
        )
    async with FakeSlack(rate_limits=False, update_per_min=1) as unlimited:
        client = web_client(unlimited)
        ts = (await client.chat_postMessage(channel=CHANNEL, text="a"))["ts"]
        for text in ("b", "c", "d", "e"):
            await client.chat_update(channel=CHANNEL, ts=ts, text=text)

    assert limited.response.status_code == 429 and slack.count_429 == 1
    assert unlimited.count_429 == 0


@pytest.mark.parametrize(
    ("method", "body", "error"),
    [
        ("chat.postMessage", {"channel": CHANNEL, "text": ""}, "no_text"),
        ("chat.postMessage", {"channel": CHANNEL, "text": "a", "markdown_text": "b"},
         "markdown_text_conflict"),
        ("chat.postMessage", {"channel": CHANNEL, "blocks": [{"type": "divider"}],
                              "markdown_text": "b"}, "markdown_text_conflict"),
        ("chat.postMessage", {"channel": CHANNEL, "markdown_text": "m" * 12_001}, "msg_too_long"),
        ("chat.postMessage", {"channel": CHANNEL, "text": "t",
                              "blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
        ("chat.postMessage", {"text": "t"}, "channel_not_found"),
        ("chat.update", {"channel": CHANNEL, "ts": "1.2", "text": "t"}, "message_not_found"),
        ("chat.startStream", {"channel": CHANNEL, "thread_ts": THREAD_TS}, "invalid_arguments"),
        ("chat.startStream", {"channel": CHANNEL, "recipient_user_id": "U",
                              "recipient_team_id": "T0001"}, "invalid_arguments"),
        ("chat.startStream", {"channel": DM, "markdown_text": "a",
                              "chunks": [{"type": "markdown_text", "text": "b"}]},
         "invalid_arguments"),
        ("assistant.threads.setStatus", {"channel_id": DM, "thread_ts": THREAD_TS,
                                         "status": "is thinking...",
                                         "loading_messages": ["x" * 51]}, "invalid_arguments"),
    ],
)  # fmt: skip
async def test_validation_errors(method: str, body: dict[str, Any], error: str) -> None:
    async with FakeSlack() as slack:
        failure = await slack_error(web_client(slack).api_call(method, json=body))

        assert failure.response["error"] == error
        assert slack.calls[-1].error == error and not slack.messages


async def test_native_streaming_disabled_and_channel_stream_with_recipient() -> None:
    async with FakeSlack(native_streaming=False) as off:
        disabled = await slack_error(
            web_client(off).chat_startStream(channel=DM, thread_ts=THREAD_TS)
        )
    async with FakeSlack() as on:
        started = await web_client(on).chat_startStream(
            channel=CHANNEL, thread_ts=THREAD_TS, recipient_user_id="UHUMAN",
            recipient_team_id="T0001",
        )  # fmt: skip

    assert disabled.response["error"] == "feature_not_enabled"
    assert on.messages[(CHANNEL, started["ts"])].streaming


async def test_post_message_truncates_long_text_with_warning() -> None:
    async with FakeSlack() as slack:
        posted = await web_client(slack).chat_postMessage(channel=CHANNEL, text="y" * 40_001)

        assert posted["warning"] == "message_truncated"
        assert slack.visible_text(CHANNEL, posted["ts"]) == "y" * 40_000


async def test_tokens_and_unknown_methods() -> None:
    async with FakeSlack() as slack:
        wrong = await slack_error(web_client(slack, "xoxb-wrong").auth_test())
        missing = await slack_error(AsyncWebClient(base_url=slack.api_url).auth_test())
        app_token_on_chat = await slack_error(
            web_client(slack, slack.app_token).chat_postMessage(channel=CHANNEL, text="x")
        )
        bot_token_on_socket = await slack_error(
            web_client(slack).apps_connections_open(app_token=slack.bot_token)
        )
        unknown = await slack_error(web_client(slack).api_call("chat.nope"))
        opened = await web_client(slack).apps_connections_open(app_token=slack.app_token)

        assert wrong.response["error"] == "invalid_auth"
        assert missing.response["error"] == "not_authed"
        assert app_token_on_chat.response["error"] == "not_allowed_token_type"
        assert bot_token_on_socket.response["error"] == "not_allowed_token_type"
        assert unknown.response["error"] == "unknown_method"
        assert opened["url"].startswith("ws://127.0.0.1:") and "/link?ticket=" in opened["url"]


async def test_injected_faults_are_consumed_in_order() -> None:
    async with FakeSlack() as slack:
        client = web_client(slack)
        ts = (await client.chat_postMessage(channel=CHANNEL, text="a"))["ts"]
        slack.inject("chat.update", error="ratelimited", status=429, retry_after=2, times=2)
        slack.inject("chat.startStream", error="feature_not_enabled")
        first = await slack_error(client.chat_update(channel=CHANNEL, ts=ts, text="b"))
        second = await slack_error(client.chat_update(channel=CHANNEL, ts=ts, text="b"))
        await client.chat_update(channel=CHANNEL, ts=ts, text="b")
        no_stream = await slack_error(client.chat_startStream(channel=DM, thread_ts=THREAD_TS))
        await client.chat_startStream(channel=DM, thread_ts=THREAD_TS)

        assert [first.response.status_code, second.response.status_code] == [429, 429]
        assert first.response.headers["Retry-After"] == "2"
        assert no_stream.response["error"] == "feature_not_enabled"
        assert slack.count_429 == 2
        assert [c.ok for c in slack.calls_to("chat.update")] == [False, False, True]


async def test_form_encoded_methods_and_thread_listing() -> None:
    async with FakeSlack() as slack:
        client = web_client(slack)
        info = await client.conversations_info(channel=DM)
        user = await client.users_info(user="UHUMAN")
        await client.assistant_threads_setStatus(
            channel_id=DM, thread_ts=THREAD_TS, status="is thinking..."
        )
        await client.reactions_add(channel=DM, timestamp=THREAD_TS, name="eyes")
        again = await slack_error(
            client.reactions_add(channel=DM, timestamp=THREAD_TS, name="eyes")
        )
        older = (await client.chat_postMessage(channel=DM, text="1", thread_ts=THREAD_TS))["ts"]
        gone = (await client.chat_postMessage(channel=DM, text="2", thread_ts=THREAD_TS))["ts"]
        await client.chat_postMessage(channel=DM, text="top level")
        await client.chat_delete(channel=DM, ts=gone)
        ephemeral = await client.chat_postEphemeral(channel=DM, user="UHUMAN", text="psst")

        assert info["channel"]["is_im"] and user["user"]["id"] == "UHUMAN"
        assert slack.calls_to("users.info")[0].args["user"] == "UHUMAN"  # form-encoded body
        assert slack.statuses[(DM, THREAD_TS)] == ["is thinking..."]
        assert slack.reactions == [(DM, THREAD_TS, "eyes")]
        assert again.response["error"] == "already_reacted"
        assert [m.ts for m in slack.thread_messages(DM, THREAD_TS)] == [older]
        assert slack.messages[(DM, gone)].deleted and slack.visible_text(DM, gone) == ""
        assert ephemeral["message_ts"] and slack.ephemerals[0].ephemeral_user == "UHUMAN"


async def test_wait_until_times_out_with_context() -> None:
    async with FakeSlack() as slack:
        with pytest.raises(TimeoutError, match="condition not met"):
            await slack.wait_until(lambda: False, timeout=0.05)
