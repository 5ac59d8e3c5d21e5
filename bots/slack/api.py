"""The one boundary where slack_sdk errors become core errors (STYLE: translate once).

:class:`SlackApi` sends every Web API call of the adapter as JSON and checks ``ok`` (slack_sdk
raises for ``ok: false`` inside HTTP 200, docs/slack.md §1), mapping failures onto the core
error tree. Rate limits come both as HTTP 429 ``ratelimited`` and as ``rate_limited``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.errors import (
    MessageGoneError,
    MessageTooLongError,
    PlatformError,
    PlatformPermissionError,
    PlatformRateLimitedError,
    PlatformUncertainError,
    StreamExpiredError,
)
from core.metrics import ResponseResult

__all__ = [
    "NATIVE_UNAVAILABLE",
    "SlackApi",
    "SlackCallError",
    "map_slack_error",
    "slack_error_code",
]

#: Errors that mean "this workspace/app has no native streaming": switch it off for the process.
NATIVE_UNAVAILABLE = frozenset({"feature_not_enabled", "unknown_method", "method_deprecated"})
RATE_LIMITED = frozenset({"ratelimited", "rate_limited"})
GONE = frozenset({"message_not_found", "cant_update_message"})
TOO_LONG = frozenset({"msg_too_long", "msg_blocks_too_long", "invalid_blocks_format"})
PERMISSION = frozenset(
    {
        "missing_scope",
        "not_in_channel",
        "channel_not_found",
        "is_archived",
        "restricted_action",
        "not_allowed_token_type",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "no_permission",
    }
)
DEFAULT_RETRY_AFTER_S = 1.0


class SlackCallError(PlatformError):
    """A Slack error without a more specific core meaning; ``error`` is Slack's code."""

    def __init__(self, message: str, *, error: str) -> None:
        super().__init__(message)
        self.error = error


def map_slack_error(method: str, exc: SlackApiError) -> PlatformError:
    """Translate one slack_sdk failure into the core error tree (keeps Slack's code)."""
    error = str(exc.response.get("error") or "unknown_error")
    text = f"{method}: {error}"
    if exc.response.status_code == 429 or error in RATE_LIMITED:
        return PlatformRateLimitedError(text, retry_after=_retry_after(exc))
    if error == "message_not_in_streaming_state":
        return StreamExpiredError(text)
    if error in GONE:
        return MessageGoneError(text)
    if error in TOO_LONG:
        return MessageTooLongError(text)
    if error in PERMISSION:
        return PlatformPermissionError(text)
    return SlackCallError(text, error=error)


def slack_error_code(exc: PlatformError) -> str:
    """Slack's error code of a mapped error (the exception class name for network errors)."""
    if isinstance(exc, SlackCallError):
        return exc.error
    return str(exc).partition(": ")[2]


def _retry_after(exc: SlackApiError) -> float:
    raw = exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else DEFAULT_RETRY_AFTER_S
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S


class SlackApi:
    """Web API calls with core errors; the client carries the token and ``SLACK_API_URL``."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        on_response: Callable[[ResponseResult], None] | None = None,
    ) -> None:
        """``on_response``: told how each call went (core/metrics.py)."""
        self.client = client
        self._on_response = on_response or (lambda _result: None)

    async def call(self, method: str, **args: Any) -> dict[str, Any]:
        body = {k: v for k, v in args.items() if v is not None}
        try:
            response = await self.client.api_call(method, json=body)
        except SlackApiError as exc:
            error = map_slack_error(method, exc)
            rate_limited = isinstance(error, PlatformRateLimitedError)
            self._on_response("rate_limited" if rate_limited else "error")
            raise error from exc
        except aiohttp.ClientConnectorError as exc:  # never reached Slack: safe to repeat
            self._on_response("error")
            raise PlatformError(f"{method}: {exc.__class__.__name__}") from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:  # it may have been done
            self._on_response("error")
            raise PlatformUncertainError(f"{method}: {exc.__class__.__name__}") from exc
        self._on_response("ok")
        data = response.data
        return dict(data) if isinstance(data, dict) else {}
