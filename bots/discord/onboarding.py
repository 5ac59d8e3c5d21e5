"""Operator-facing Discord setup: the invite URL, the intents error, `vf-bridge check`.

Every text here names the exact place to fix a problem (a variable, a portal switch) and
never contains the token.
"""

from __future__ import annotations

import contextlib
from typing import Any

import aiohttp
import discord

from bots.discord.session_starts import SessionStarts, used_up
from bots.discord.shards import ShardPlan
from core.config import Settings

__all__ = [
    "INVITE_SCOPES",
    "REQUIRED_PERMISSIONS",
    "TOKEN_REJECTED",
    "check_discord",
    "invite_url",
    "privileged_intents_error",
    "token_rejected_line",
]

INVITE_SCOPES = ("bot", "applications.commands")
#: Exactly what the bot uses: read the place, answer in channels and threads, embeds for
#: cards/images, and history so a reply can reference the user's message.
REQUIRED_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    read_message_history=True,
)
CHECK_TIMEOUT_S = 10.0

#: Privileged intent flag → its switch under Developer Portal → Bot → Privileged Gateway Intents.
_INTENT_SWITCHES = {
    "members": "Server Members Intent",
    "presences": "Presence Intent",
    "message_content": "Message Content Intent",
}


def invite_url(application_id: int | str) -> str:
    """The OAuth2 URL that adds the bot with exactly the scopes and permissions it needs."""
    return discord.utils.oauth_url(
        str(application_id), permissions=REQUIRED_PERMISSIONS, scopes=INVITE_SCOPES
    )


def bot_intents() -> discord.Intents:
    """No privileged intent: mentions and DMs carry their content without Message Content."""
    intents = discord.Intents.default()
    intents.members = False
    intents.presences = False
    intents.message_content = False
    return intents


def privileged_intents_error(intents: discord.Intents, application_id: int | str | None) -> str:
    """The startup error for gateway close 4014, naming each switch to turn on."""
    asked = [switch for flag, switch in _INTENT_SWITCHES.items() if getattr(intents, flag)]
    switches = " and ".join(f"“{s}”" for s in asked or _INTENT_SWITCHES.values())
    portal = "https://discord.com/developers/applications"
    if application_id is not None:
        portal = f"{portal}/{application_id}/bot"
    return (
        "Discord refused the gateway connection (close code 4014: privileged intents not "
        f"enabled). Turn on {switches} in the Developer Portal → your application → Bot → "
        f"Privileged Gateway Intents ({portal}), save, and restart."
    )


#: The problem text for a token Discord refuses (401 on REST, 4004 on the gateway).
TOKEN_REJECTED = "rejected by Discord (401) — reset the token in the Developer Portal → Bot"


def token_rejected_line() -> str:
    return f"DISCORD_TOKEN: {TOKEN_REJECTED}"


async def check_discord(settings: Settings) -> list[str]:
    """Verify the token with ``GET /users/@me`` and that session starts are left; one line per
    problem, naming the variable."""
    if settings.discord_token is None:
        return []
    try:
        status, _ = await _get(settings, "/users/@me")
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        reason = type(exc).__name__ if isinstance(exc, TimeoutError) else str(exc)
        return [f"DISCORD_API_URL: cannot reach {settings.discord_api_url} ({reason})"]
    if status == 401:
        return [token_rejected_line()]
    if status != 200:
        return [
            f"DISCORD_API_URL: {settings.discord_api_url} answered GET /users/@me with HTTP "
            f"{status}; is it the Discord REST API (…/api/v10)?"
        ]
    return await _check_session_starts(settings)


async def _check_session_starts(settings: Settings) -> list[str]:
    """Whether enough session starts are left for this process's connections (a token that
    runs out of them is reset by Discord). Unknown (an API without the route) is no problem."""
    try:
        _, body = await _get(settings, "/gateway/bot")
        starts = SessionStarts.from_wire(body["shards"], body["session_start_limit"])
    except (TimeoutError, aiohttp.ClientError, OSError, KeyError, TypeError, ValueError):
        return []  # None of a body is a TypeError
    plan = ShardPlan.of(settings).resolved(starts.recommended_shards)
    problem = used_up(starts, len(plan.served()))
    return [] if problem is None else [f"DISCORD_TOKEN: {problem}"]


async def _get(settings: Settings, path: str) -> tuple[int, Any]:
    """``GET`` a REST path with the bot token: the status, and the JSON body of a 200."""
    assert settings.discord_token is not None
    url = f"{settings.discord_api_url.rstrip('/')}{path}"
    headers = {"Authorization": f"Bot {settings.discord_token.reveal()}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT_S)) as http,
        http.get(url, headers=headers) as response,
    ):
        body = None
        if response.status == 200:
            with contextlib.suppress(ValueError):  # not JSON: no body to read
                body = await response.json(content_type=None)
        return response.status, body
