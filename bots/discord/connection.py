"""Connecting discord.py to Discord (or to a fake): endpoints, login, waiting for READY.

discord.py reads its REST base and gateway URL from class attributes, so pointing one client
at ``DISCORD_API_URL`` / ``DISCORD_GATEWAY_URL`` means setting them for the process
(docs/discord.md §6); :class:`Endpoints` sets them and puts the old ones back. Every failure
on the way to READY becomes a core error naming the setting to fix.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord
import yarl

from bots.discord.onboarding import TOKEN_REJECTED, privileged_intents_error
from core.config import Settings
from core.errors import ConfigError, PlatformError, PlatformPermissionError

__all__ = ["READY_TIMEOUT_S", "Endpoints", "login", "wait_ready"]

log = logging.getLogger(__name__)

#: How long `start()` waits for READY before naming DISCORD_GATEWAY_URL as the problem.
READY_TIMEOUT_S = 60.0
#: Gateway close codes that mean the shard layout is wrong (docs/discord.md §4, §5).
_SHARDING_CLOSES = {
    4010: "Discord refused the shard layout (4010 invalid shard): every process of the bot "
    "needs the same count, and ids below it",
    4011: "Discord requires sharding for this bot (4011, more than 2,500 servers): "
    "set DISCORD_SHARD_COUNT=auto, or a count for several processes",
}


class Endpoints:
    """discord.py's REST base and gateway URL, pointed at the configured ones until restored."""

    def __init__(self) -> None:
        self._saved: tuple[str, yarl.URL] | None = None

    def point_at(self, settings: Settings) -> None:
        # Class attributes read by every Route and every gateway connection.
        if self._saved is None:
            gateway = discord.gateway.DiscordWebSocket
            self._saved = (discord.http.Route.BASE, gateway.DEFAULT_GATEWAY)
        discord.http.Route.BASE = settings.discord_api_url.rstrip("/")
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)

    def restore(self) -> None:
        if self._saved is not None:
            base, gateway = self._saved
            discord.http.Route.BASE = base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
            self._saved = None


async def login(client: discord.Client, settings: Settings) -> None:
    """Log in over REST; a refused token or an unreachable API names its setting."""
    assert settings.discord_token is not None
    try:
        await client.login(settings.discord_token.reveal())
    except discord.LoginFailure as exc:
        raise ConfigError("DISCORD_TOKEN", TOKEN_REJECTED) from exc
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        url = settings.discord_api_url
        raise ConfigError("DISCORD_API_URL", f"cannot reach {url} ({exc})") from exc


async def wait_ready(
    client: discord.Client,
    connection: asyncio.Task[None],
    settings: Settings,
    intents: discord.Intents,
    timeout_s: float = READY_TIMEOUT_S,
) -> None:
    """Return at READY (of every shard); raise a core error if the gateway closes first or
    stays silent for ``timeout_s``."""
    ready = asyncio.create_task(client.wait_until_ready(), name="discord-ready")
    done, _ = await asyncio.wait(
        {ready, connection}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
    )
    if ready in done:
        return
    ready.cancel()
    if connection not in done:
        url = settings.discord_gateway_url
        raise ConfigError("DISCORD_GATEWAY_URL", f"no READY from {url} in {timeout_s:.0f}s")
    raise _startup_error(connection.exception(), client, intents)


def _startup_error(
    exc: BaseException | None, client: discord.Client, intents: discord.Intents
) -> Exception:
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        text = privileged_intents_error(intents, client.application_id)
        log.error("%s", text)
        return PlatformPermissionError(text)
    if isinstance(exc, discord.ConnectionClosed) and exc.code == 4004:
        return ConfigError("DISCORD_TOKEN", TOKEN_REJECTED)
    if isinstance(exc, discord.ConnectionClosed) and exc.code in _SHARDING_CLOSES:
        return ConfigError("DISCORD_SHARD_COUNT", _SHARDING_CLOSES[exc.code])
    return PlatformError(f"Discord gateway closed before READY: {exc!r}")
