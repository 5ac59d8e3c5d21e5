"""DiscordWriter: the raw message operations PacedMessage needs, with errors mapped once.

This module is the one boundary where discord.py errors become the core's error tree
(core/errors.py); the renderer sends whole messages through the same :meth:`DiscordWriter.create`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import discord

from bots.discord.components import stop_view
from bots.discord.ratelimits import ChannelBudgets
from core.errors import (
    MessageGoneError,
    MessageTooLongError,
    PlatformError,
    PlatformPermissionError,
    PlatformRateLimitedError,
)

__all__ = [
    "DISCORD_MAX_CHARS",
    "NO_MENTIONS",
    "Destination",
    "DiscordWriter",
    "ReplyTo",
    "uncancelled",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DISCORD_MAX_CHARS = 2000
#: LLM output never pings (SPEC §5): sent explicitly on every create and edit, because Discord
#: recomputes mentions on edit and applies its defaults when the field is missing.
NO_MENTIONS = discord.AllowedMentions.none()
#: A 429 that reached us (discord.py did not retry it) without a usable Retry-After.
FALLBACK_RETRY_AFTER_S = 1.0
#: A create that may have happened despite an error is tried this often, with the same nonce.
CREATE_ATTEMPTS = 3
CREATE_RETRY_DELAY_S = 0.5
#: Statuses discord.py retries by itself, five times (docs/discord.md §6).
RETRIED_BY_DISCORD_PY = frozenset({500, 502, 504, 524})
# Discord JSON error codes (topics/opcodes-and-status-codes.mdx).
UNKNOWN_MESSAGE = 10008
MISSING_ACCESS = 50001
INVALID_FORM_BODY = 50035
REPLY_NEEDS_HISTORY = 160002


async def uncancelled(request: Awaitable[T]) -> T:
    """Await a discord.py request so that cancelling the caller never cancels the request.

    discord.py sleeps out a global 429 inside the request with its global lock cleared and sets
    the lock again after the sleep. A request cancelled during that sleep leaves it cleared, and
    every later request of the bot, in every channel, waits on it forever — seen in the bench:
    a typing cue stopped by the answer's first output stalled 499 of 500 answers. The caller
    still sees the cancellation at once; the request finishes on its own, its outcome dropped.
    """
    task = asyncio.ensure_future(request)
    task.add_done_callback(_drop_outcome)
    return await asyncio.shield(task)


def _drop_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned request's failure is nobody's to report


@dataclass
class Destination:
    """Where a conversation's output goes: one channel, thread or DM, and its budgets."""

    channel: discord.PartialMessageable
    is_thread: bool
    budgets: ChannelBudgets
    #: Permission problems already logged, shared by the whole bot: one line each, not one per try.
    reported: set[tuple[int, str]] = field(default_factory=set)

    @property
    def channel_id(self) -> str:
        return str(self.channel.id)


class ReplyTo:
    """The user's message; the first message a turn creates replies to it, later ones do not."""

    def __init__(self, message_id: int, channel_id: int) -> None:
        self._reference: discord.MessageReference | None = discord.MessageReference(
            message_id=message_id, channel_id=channel_id, fail_if_not_exists=False
        )

    def take(self) -> discord.MessageReference | None:
        reference, self._reference = self._reference, None
        return reference


@dataclass
class _Create:
    """One message to create, as every attempt sends it."""

    content: str | None
    embeds: Sequence[discord.Embed]
    view: discord.ui.View | None
    reference: discord.MessageReference | None


class DiscordWriter:
    """Implements :class:`core.platform.MessageWriter` for one Discord channel."""

    max_chars = DISCORD_MAX_CHARS

    def __init__(self, destination: Destination, *, reply_to: ReplyTo | None = None) -> None:
        self._dest = destination
        self._reply_to = reply_to
        self._unsettled: dict[str | None, str] = {}  # content -> nonce of a create in doubt

    async def post(self, text: str, *, stop_id: str | None) -> str:
        message = await self.create(content=text, view=stop_view(stop_id) if stop_id else None)
        return str(message.id)

    async def edit(self, message_id: str, text: str, *, stop_id: str | None) -> None:
        message = self._dest.channel.get_partial_message(int(message_id))
        with self._translated("edit a message"):
            await uncancelled(
                message.edit(
                    content=text,
                    view=stop_view(stop_id) if stop_id else None,
                    allowed_mentions=NO_MENTIONS,
                )
            )

    async def delete(self, message_id: str) -> None:
        message = self._dest.channel.get_partial_message(int(message_id))
        try:
            with self._translated("delete a message"):
                await uncancelled(message.delete())
        except MessageGoneError:
            pass  # already gone is what we wanted

    async def create(
        self,
        *,
        content: str | None = None,
        embeds: Sequence[discord.Embed] = (),
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        """Create one message (replying to the user's message if this is the turn's first).

        ``nonce`` makes the create idempotent: discord.py adds ``enforce_nonce`` and Discord
        drops a retried duplicate instead of showing the answer twice.
        """
        reference = self._reply_to.take() if self._reply_to else None
        message = _Create(content, embeds, view, reference)
        try:
            return await self._send_idempotent(message)
        except PlatformPermissionError as exc:
            cause = exc.__cause__
            if reference is None or getattr(cause, "code", None) != REPLY_NEEDS_HISTORY:
                raise
            message.reference = None  # answer without the reply
            return await self._send_idempotent(message)

    async def _send_idempotent(self, message: _Create) -> discord.Message:
        """Send; a failure after which the message may exist anyway (a 5xx discord.py does not
        retry, a lost connection) is retried with the same nonce, so that Discord returns that
        message instead of creating a second one. A nonce whose create stayed unsettled is
        reused when the caller sends the same content again."""
        nonce = self._unsettled.pop(message.content, None) or new_nonce()
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                return await self._send(message, nonce)
            except PlatformError as exc:
                if not _maybe_created(exc):
                    raise
                if attempt == CREATE_ATTEMPTS:
                    self._unsettled[message.content] = nonce
                    raise
                log.warning("creating a message may have failed (%s); retrying its nonce", exc)
                await asyncio.sleep(CREATE_RETRY_DELAY_S * attempt)
        raise AssertionError("unreachable")

    async def _send(self, message: _Create, nonce: str) -> discord.Message:
        embeds, reference = list(message.embeds), message.reference
        with self._translated("send a message"):
            if message.view is None:  # discord.py's overloads take a view only when not None
                return await uncancelled(
                    self._dest.channel.send(
                        message.content,
                        embeds=embeds,
                        allowed_mentions=NO_MENTIONS,
                        nonce=nonce,
                        reference=reference,  # type: ignore[arg-type]
                    )
                )
            return await uncancelled(
                self._dest.channel.send(
                    message.content,
                    embeds=embeds,
                    view=message.view,
                    allowed_mentions=NO_MENTIONS,
                    nonce=nonce,
                    reference=reference,  # type: ignore[arg-type]
                )
            )

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except discord.HTTPException as exc:
            raise self._mapped(exc, action) from exc
        except discord.RateLimited as exc:
            raise PlatformRateLimitedError(str(exc), retry_after=exc.retry_after) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PlatformError(f"Discord unreachable while trying to {action}: {exc!r}") from exc

    def _mapped(self, exc: discord.HTTPException, action: str) -> PlatformError:
        where = f"channel {self._dest.channel_id}"
        if exc.code == UNKNOWN_MESSAGE:
            return MessageGoneError(f"message gone in {where} (10008)")
        if exc.status == 429:
            return PlatformRateLimitedError(
                f"Discord 429 in {where}", retry_after=_retry_after(exc)
            )
        if exc.code == INVALID_FORM_BODY and "length" in exc.text.lower():
            return MessageTooLongError(f"Discord refused the length in {where}: {exc.text}")
        if exc.status == 403 or exc.code == REPLY_NEEDS_HISTORY:
            permission = self._missing_permission(exc.code, action)
            self._report_permission(permission, action)
            return PlatformPermissionError(f"missing {permission!r} permission in {where}")
        return PlatformError(f"Discord {exc.status} ({exc.code}) in {where}: {exc.text}")

    def _missing_permission(self, code: int, action: str) -> str:
        if code == REPLY_NEEDS_HISTORY:
            return "Read Message History"
        if code == MISSING_ACCESS:
            return "View Channels"
        if action == "delete a message":
            return "Manage Messages"
        return "Send Messages in Threads" if self._dest.is_thread else "Send Messages"

    def _report_permission(self, permission: str, action: str) -> None:
        key = (self._dest.channel.id, permission)
        if key in self._dest.reported:
            return
        self._dest.reported.add(key)
        log.error(
            "Discord refused to %s in channel %s: the bot lacks the %r permission there; "
            "grant it to the bot's role (Server Settings → Roles) or in the channel's settings",
            action,
            self._dest.channel_id,
            permission,
        )


def _maybe_created(exc: PlatformError) -> bool:
    """Whether a failed create may have happened anyway: Discord failed after accepting it, or
    the answer was lost on the way. discord.py already repeated the 5xx it retries itself."""
    cause = exc.__cause__
    if isinstance(cause, discord.HTTPException):
        return cause.status >= 500 and cause.status not in RETRIED_BY_DISCORD_PY
    return isinstance(cause, aiohttp.ClientError | OSError | TimeoutError)


def new_nonce() -> str:
    """A unique create nonce (Discord allows ≤ 25 characters)."""
    return secrets.token_hex(12)


def _retry_after(exc: discord.HTTPException) -> float:
    headers = getattr(exc.response, "headers", None)
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return float(raw) if raw is not None else FALLBACK_RETRY_AFTER_S
    except ValueError:
        return FALLBACK_RETRY_AFTER_S
