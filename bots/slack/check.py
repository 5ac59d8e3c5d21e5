"""`vf-bridge check` for Slack: can the tokens reach the workspace? One line per problem.

``auth.test`` checks the bot token (and, when Slack reports them, its scopes);
``apps.connections.open`` checks the app-level token of Socket Mode. Tokens never appear in a
line or a log record.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.config import Settings
from core.errors import ConfigError

__all__ = ["OPTIONAL_BOT_SCOPES", "REQUIRED_BOT_SCOPES", "check_slack", "startup_error"]

CHECK_TIMEOUT_S = 10
#: Bot scopes slack-manifest.yml grants; a token missing one was installed from an old manifest.
REQUIRED_BOT_SCOPES = frozenset(
    {
        "app_mentions:read",
        "chat:write",
        "im:history",
        "channels:history",
        "groups:history",
        "commands",
    }
)
#: Granted by the manifests but not required: without it Voiceflow gets no member names.
OPTIONAL_BOT_SCOPES = frozenset({"users:read"})
REJECTED = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)
FIXES = {
    "SLACK_BOT_TOKEN": "copy the Bot User OAuth Token (xoxb-…) from OAuth & Permissions",
    "SLACK_APP_TOKEN": "create an app-level token (xapp-…) with connections:write "
    "under Basic Information",
}


async def check_slack(settings: Settings) -> list[str]:
    """Problems with the Slack configuration, one line each (empty when all is well)."""
    if settings.slack_bot_token is None:
        return []
    problems: list[str] = []
    bot = AsyncWebClient(
        token=settings.slack_bot_token.reveal(),
        base_url=settings.slack_api_url,
        timeout=CHECK_TIMEOUT_S,
    )
    problem, reply = await _call(settings, bot, "SLACK_BOT_TOKEN", "auth.test", {})
    if problem is not None:
        return [problem]
    problems += _scope_problems(reply)
    if settings.slack_app_token is not None:
        args = {"app_token": settings.slack_app_token.reveal()}
        problem, _ = await _call(settings, bot, "SLACK_APP_TOKEN", "apps.connections.open", args)
        if problem is not None:
            problems.append(problem)
    return problems


async def _call(
    settings: Settings,
    client: AsyncWebClient,
    variable: str,
    method: str,
    args: dict[str, Any],
) -> tuple[str | None, dict[str, Any]]:
    try:
        if method == "apps.connections.open":
            response = await client.apps_connections_open(**args)
        else:
            response = await client.api_call(method)
    except SlackApiError as exc:
        return _refusal(variable, method, str(exc.response.get("error") or "unknown")), {}
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        reason = exc.__class__.__name__
        return f"SLACK_API_URL: cannot reach {settings.slack_api_url} ({reason})", {}
    headers = {k.lower(): v for k, v in (response.headers or {}).items()}
    data = response.data if isinstance(response.data, dict) else {}
    return None, {**data, "_scopes": headers.get("x-oauth-scopes")}


def _refusal(variable: str, method: str, error: str) -> str:
    if error in REJECTED:
        return f"{variable}: rejected by Slack ({error}) — {FIXES[variable]}"
    if error == "not_allowed_token_type":
        return f"{variable}: is the wrong kind of token ({error}) — {FIXES[variable]}"
    if error == "missing_scope":
        return f"{variable}: lacks a scope {method} needs ({error}) — {FIXES[variable]}"
    return f"{variable}: {method} failed ({error})"


def _scope_problems(reply: dict[str, Any]) -> list[str]:
    raw = reply.get("_scopes")
    if not isinstance(raw, str):
        return []  # Slack did not say; nothing to compare
    granted = {s.strip() for s in raw.split(",") if s.strip()}
    missing = sorted(REQUIRED_BOT_SCOPES - granted)
    if not missing:
        return []
    return [
        f"SLACK_BOT_TOKEN: missing scopes {', '.join(missing)} — "
        "update the app from slack-manifest.yml and reinstall it"
    ]


def startup_error(settings: Settings, error: str, *, reached: bool) -> ConfigError:
    """The one line ``vf-bridge run`` ends with when ``auth.test`` fails at start.

    ``error`` is Slack's code, or the transport error's name when Slack was not ``reached``.
    """
    if not reached:
        return ConfigError("SLACK_API_URL", f"cannot reach {settings.slack_api_url} ({error})")
    if error == "unknown_error":  # an answer without Slack's {"ok": …, "error": …} shape
        return ConfigError(
            "SLACK_API_URL", f"{settings.slack_api_url} did not answer as Slack's Web API does"
        )
    line = _refusal("SLACK_BOT_TOKEN", "auth.test", error)
    return ConfigError("SLACK_BOT_TOKEN", line.removeprefix("SLACK_BOT_TOKEN: "))
