"""HTTP (Events API) delivery of the fake Slack: signed POSTs to the app, redelivered like Slack.

A mixin of :class:`tests.fakes.slack.FakeSlack` (which owns the attributes declared below):
`post_event_http` signs an ``event_callback`` like Slack (v0 HMAC over ``v0:{ts}:{body}``) and
POSTs it; when the app does not answer 2xx within ``ack_timeout_s`` it is delivered again with
``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason`` (tests/fakes/slack_acks.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.fakes.slack_acks import AckDeadlines, Attempt, http_retry_reason
from tests.fakes.slack_payloads import HUMAN_USER_ID, interaction_payload

__all__ = ["SlackHttpEvents"]


class SlackHttpEvents:
    """Delivers events, interactions and slash commands to an app's HTTP endpoint."""

    team_id: str
    signing_secret: str
    ack_timeout_s: float
    clock: Callable[[], float]
    acks: dict[str, float]
    http_acks: list[tuple[str, int, float]]
    _http: httpx.AsyncClient | None
    _http_pending: set[str]
    _deadlines: AckDeadlines
    _ids: itertools.count[int]

    def _notify(self) -> None:
        raise NotImplementedError

    def _event_callback(self, event: dict[str, Any], event_id: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def _payload_ids(self) -> dict[str, str]:
        raise NotImplementedError

    def _slash_payload(
        self, command: str, text: str, channel_id: str, user_id: str
    ) -> dict[str, str]:
        raise NotImplementedError

    async def post_event_http(
        self, url: str, event: dict[str, Any], *, event_id: str | None = None, **signing: Any
    ) -> httpx.Response:
        """POST a signed event_callback to the app; its ack time lands in `acks[event_id]`.

        Returns the app's answer to this attempt; redeliveries (slack_acks) run in the
        background unless it was answered 2xx within `ack_timeout_s`.
        """
        payload = self._event_callback(event, event_id)
        return await self._post_event_payload(url, payload, **signing)

    async def _post_event_payload(
        self, url: str, payload: dict[str, Any], *, retry_num: int = 0, **signing: Any
    ) -> httpx.Response:
        event_id = payload["event_id"]
        key = event_id if not retry_num else f"{event_id}#retry{retry_num}"
        body = json.dumps(payload).encode()
        attempt = asyncio.ensure_future(
            self.post_signed_http(
                url, body, "application/json", ack_key=key, retry_num=retry_num, **signing
            )
        )
        if not _is_forged(signing):

            async def redeliver(retry: int, reason: str) -> None:
                changed = {**signing, "retry_reason": reason}
                await self._post_event_payload(url, payload, retry_num=retry, **changed)

            self._deadlines.watch(
                Attempt(event_id, retry_num, "http"),
                check=lambda: http_retry_reason(attempt, self.ack_timeout_s),
                redeliver=redeliver,
            )
        return await attempt

    async def post_url_verification(
        self, url: str, challenge: str, **signing: Any
    ) -> httpx.Response:
        body = {
            "token": "legacy-verification-token",
            "challenge": challenge,
            "type": "url_verification",
        }
        return await self.post_signed_http(
            url, json.dumps(body).encode(), "application/json", **signing
        )

    async def post_interaction_http(
        self, url: str, payload: dict[str, Any], **signing: Any
    ) -> httpx.Response:
        body = urlencode(
            {
                "payload": json.dumps(
                    interaction_payload(payload, team_id=self.team_id, **self._payload_ids())
                )
            }
        ).encode()
        return await self.post_signed_http(
            url, body, "application/x-www-form-urlencoded", **signing
        )

    async def post_slash_http(
        self,
        url: str,
        command: str,
        text: str,
        *,
        channel_id: str,
        user_id: str = HUMAN_USER_ID,
        **signing: Any,
    ) -> httpx.Response:
        payload = self._slash_payload(command, text, channel_id, user_id)
        body = urlencode(payload).encode()
        return await self.post_signed_http(
            url, body, "application/x-www-form-urlencoded", **signing
        )

    async def post_signed_http(
        self,
        url: str,
        body: bytes,
        content_type: str,
        *,
        ack_key: str | None = None,
        retry_num: int = 0,
        retry_reason: str = "http_timeout",
        signing_secret: str | None = None,
        timestamp: int | None = None,
        bad_signature: bool = False,
    ) -> httpx.Response:
        """Sign like Slack (v0 HMAC over `v0:{ts}:{body}`) and POST; records the ack time."""
        assert self._http is not None, "use FakeSlack as an async context manager"
        ts = str(int(time.time()) if timestamp is None else timestamp)
        secret = (signing_secret or self.signing_secret).encode()
        # Computed here rather than with slack_sdk's SignatureVerifier, which bolt uses to check it.
        digest = hmac.new(secret, b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": "v0=" + ("0" * 64 if bad_signature else digest),
        }
        if retry_num > 0:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        key = ack_key or f"http-{next(self._ids)}"
        started = self.clock()
        self._http_pending.add(key)
        try:
            response = await self._http.post(url, content=body, headers=headers)
        finally:
            self._http_pending.discard(key)
        elapsed = self.clock() - started
        self.http_acks.append((key, response.status_code, elapsed))
        if response.is_success:
            self.acks[key] = elapsed
        self._notify()
        return response


def _is_forged(signing: dict[str, Any]) -> bool:
    """A request the test forges on purpose: Slack did not send it, so it never retries it."""
    forged = ("bad_signature", "timestamp", "signing_secret")
    return any(signing.get(name) for name in forged)
