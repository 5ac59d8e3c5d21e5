"""Self-tests of the fake Slack's ack deadline: what is not acked in time is redelivered.

A short `ack_timeout_s` stands in for Slack's 3 s. Raw clients (an aiohttp websocket, an
aiohttp app) play apps that never ack; real slack-bolt plays an app that acks late.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from tests.e2e import slack_fixtures
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_acks import Redelivery
from tests.test_fake_slack import HUMAN_DM, bolt_app, http_mode, socket_mode

slack_no_proxy = slack_fixtures.slack_no_proxy
pytestmark = pytest.mark.usefixtures("slack_no_proxy")

SHORT_ACK_S = 0.1


Transport = Literal["socket", "http"]


def redeliveries(event_id: str, reason: str, transport: Transport) -> list[Redelivery]:
    """Slack's three retries of one event."""
    return [Redelivery(event_id, n, reason, transport) for n in (1, 2, 3)]


@asynccontextmanager
async def raw_socket(slack: FakeSlack) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A Socket Mode connection that reads envelopes and never acks them."""
    opened = await AsyncWebClient(token=slack.app_token, base_url=slack.api_url).api_call(
        "apps.connections.open"
    )
    async with aiohttp.ClientSession() as session, session.ws_connect(opened["url"]) as ws:
        assert (await ws.receive_json())["type"] == "hello"
        yield ws


async def test_socket_envelope_never_acked_is_redelivered_three_times() -> None:
    async with FakeSlack(ack_timeout_s=SHORT_ACK_S, echo_events=False) as slack:
        async with raw_socket(slack) as ws:
            await slack.wait_socket()
            await slack.send_event(HUMAN_DM, event_id="EvLost")
            received = [await ws.receive_json(timeout=5) for _ in range(4)]
            await slack.wait_until(lambda: slack.undelivered == ["EvLost"])

        assert [e["retry_attempt"] for e in received] == [0, 1, 2, 3]
        assert [e["retry_reason"] for e in received] == ["", "timeout", "timeout", "timeout"]
        assert {e["payload"]["event_id"] for e in received} == {"EvLost"}
        assert len({e["envelope_id"] for e in received}) == 4, "a retry reused an envelope id"
        assert slack.redeliveries == redeliveries("EvLost", "timeout", "socket")
        assert len(slack.envelopes) == 4, "more than three retries"


async def test_http_event_never_answered_is_redelivered_with_retry_headers() -> None:
    seen: list[tuple[str | None, str | None]] = []
    release = asyncio.Event()

    async def never_in_time(request: web.Request) -> web.Response:
        seen.append(
            (request.headers.get("X-Slack-Retry-Num"), request.headers.get("X-Slack-Retry-Reason"))
        )
        await release.wait()  # the app is stuck; Slack does not wait for it
        return web.Response(text="")

    async with FakeSlack(ack_timeout_s=SHORT_ACK_S) as slack, app_at(never_in_time) as url:
        first = asyncio.create_task(slack.post_event_http(url, HUMAN_DM, event_id="EvSlow"))
        await slack.wait_until(lambda: slack.undelivered == ["EvSlow"])
        release.set()
        answered = await first
        await slack.wait_until(lambda: not slack.unacked)

    assert answered.status_code == 200, "the first attempt's late answer is still returned"
    assert seen == [(None, None), ("1", "http_timeout"), ("2", "http_timeout"),
                    ("3", "http_timeout")]  # fmt: skip
    assert slack.redeliveries == redeliveries("EvSlow", "http_timeout", "http")
    assert sorted(slack.late_acks) == ["EvSlow", *(f"EvSlow#retry{n}" for n in (1, 2, 3))]


@pytest.mark.parametrize("no_retry", [False, True], ids=["retried", "x-slack-no-retry"])
async def test_http_error_is_redelivered_unless_the_app_says_no_retry(no_retry: bool) -> None:
    seen: list[str | None] = []

    async def fails_once(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Slack-Retry-Reason"))
        if len(seen) > 1:
            return web.Response(text="")
        return web.Response(status=500, headers={"X-Slack-No-Retry": "1"} if no_retry else {})

    async with FakeSlack(ack_timeout_s=SHORT_ACK_S) as slack, app_at(fails_once) as url:
        response = await slack.post_event_http(url, HUMAN_DM, event_id="EvFail")
        if not no_retry:
            await slack.wait_until(lambda: len(seen) == 2 and not slack.unacked)
        forged = await slack.post_event_http(url, HUMAN_DM, bad_signature=True)

    assert response.status_code == 500 and forged.status_code == 200
    expected = [] if no_retry else [Redelivery("EvFail", 1, "http_error", "http")]
    assert slack.redeliveries == expected
    assert seen == [None, None] if no_retry else [None, "http_error", None]


@pytest.mark.parametrize("transport", ["socket", "http"])
async def test_bolt_acking_late_gets_one_redelivery(transport: Transport) -> None:
    """Bolt's ack waits on a middleware that holds the first delivery until Slack retries."""
    async with FakeSlack(ack_timeout_s=SHORT_ACK_S, echo_events=False) as slack:
        app = bolt_app(slack, signing_secret=slack.signing_secret)
        retried = asyncio.Event()
        handled: list[tuple[str, str]] = []

        @app.middleware
        async def hold_first_delivery(req: Any, next: Any) -> Any:
            if req.headers.get("x-slack-retry-num", ["0"]) == ["0"]:
                await retried.wait()
            else:
                retried.set()
            return await next()

        @app.event("message")
        async def on_message(body: dict[str, Any], request: Any) -> None:
            handled.append((body["event_id"], request.headers.get("x-slack-retry-num", ["0"])[0]))

        if transport == "socket":
            async with socket_mode(slack, app):
                await slack.send_event(HUMAN_DM, event_id="EvLate")
                await slack.wait_until(lambda: len(handled) == 2 and not slack.unacked)
        else:
            async with http_mode(app) as url:
                await slack.post_event_http(url, HUMAN_DM, event_id="EvLate")
                await slack.wait_until(lambda: len(handled) == 2 and not slack.unacked)

        reason = "timeout" if transport == "socket" else "http_timeout"
        assert slack.redeliveries == [Redelivery("EvLate", 1, reason, transport)]
        assert sorted(handled) == [("EvLate", "0"), ("EvLate", "1")]
        assert len(slack.late_acks) == 1 and slack.undelivered == []


@asynccontextmanager
async def app_at(handler: Any) -> AsyncIterator[str]:
    """A bare HTTP endpoint on 127.0.0.1 that answers every POST with ``handler``."""
    app = web.Application()
    app.router.add_post("/slack/events", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    finally:
        await runner.cleanup()
