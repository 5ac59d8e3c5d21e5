"""Per-channel rate budgets for Discord, learned from the ``X-RateLimit-*`` headers.

Discord partitions message buckets by channel (a message id is not a top-level resource), so
every edit in a channel shares one bucket and every create shares another (docs/discord.md §2).
:class:`ChannelBudgets` keeps one :class:`~core.budget.RateBudget` per channel and kind, shared
by every streamed and whole message written there, and feeds them what Discord reports: an
``aiohttp.TraceConfig`` handed to ``discord.Client(http_trace=...)`` sees every response.

Above the channels, Discord allows a bot 50 requests per second in all (the global limit,
docs/discord.md §2): every channel budget has one shared :attr:`ChannelBudgets.global_` as its
parent, so 500 conversations streaming at once queue for it instead of drawing 429s.

Why our own budget on top of discord.py's: discord.py sleeps ``Reset-After`` *inside* the
caller's await once a response leaves ``Remaining: 0`` (discord.py#9073). The budget keeps one
slot free for final edits, so interim edits never drain a bucket and never hit that sleep.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from multidict import CIMultiDictProxy

from core.budget import RateBudget
from core.fixed_window import FixedWindowBudget

__all__ = ["DEFAULT_LIMIT", "DEFAULT_WINDOW_S", "ChannelBudgets", "Kind"]

log = logging.getLogger(__name__)

#: Observed "5 per 5 s per channel" (docs/discord.md §2); replaced by the headers on first use.
DEFAULT_LIMIT = 5
DEFAULT_WINDOW_S = 5.0
#: Added to a learned window: our clock starts a request a little before Discord counts it,
#: so a window that is exact on our side could end a few milliseconds early on Discord's.
WINDOW_MARGIN_S = 0.05
#: Discord's global limit for a bot: 50 requests per second across every route.
GLOBAL_LIMIT = 50
GLOBAL_WINDOW_S = 1.0
#: Added to the global window. Small: it is measured from a request's completion, already
#: later than when Discord counted it.
GLOBAL_MARGIN_S = 0.01
#: A channel's budgets are forgotten after this long without use (longer than any answer can
#: stay open: VOICEFLOW_IDLE_TIMEOUT_S is at most an hour), checked every FORGET_EVERY channels.
FORGET_IDLE_S = 2 * 3600.0
FORGET_EVERY = 1_000
#: Used when a 429 carries no usable Retry-After.
FALLBACK_RETRY_AFTER_S = 1.0

Kind = Literal["post", "edit"]

# The base URL may carry a proxy prefix, so only the tail of the path is matched.
#: Typing cues spend a global slot of their own (DiscordRenderer.show_typing).
_TYPING = re.compile(r"/channels/\d+/typing/?$")
#: Routes the global limit does not cover: interaction callbacks and webhooks (docs/discord.md §2).
_NOT_GLOBAL = re.compile(r"/interactions/|/webhooks/")
_MESSAGE_ROUTE = re.compile(r"/channels/(?P<channel>\d+)/messages(?:/(?P<message>\d+))?/?$")


@dataclass
class _Channel:
    post: RateBudget
    edit: RateBudget
    buckets: dict[Kind, str] = field(default_factory=dict)


class ChannelBudgets:
    """One post budget and one edit budget per channel (a thread is a channel)."""

    def __init__(
        self,
        *,
        limit: int = DEFAULT_LIMIT,
        window_s: float = DEFAULT_WINDOW_S,
        global_limit: int = GLOBAL_LIMIT,
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._channels: dict[str, _Channel] = {}
        #: Every request of the bot spends one slot here as well (finals go first). A fixed
        #: window bounded by what we saw of each request (core/fixed_window.py): Discord
        #: reports nothing of it before a 429. ``global_limit``: this process's share when
        #: the bot's shards run in several processes (bots/discord/shards.py).
        self.global_ = FixedWindowBudget(
            global_limit, GLOBAL_WINDOW_S + GLOBAL_MARGIN_S, name="discord global"
        )

    def post(self, channel_id: str) -> RateBudget:
        return self._channel(channel_id).post

    def edit(self, channel_id: str) -> RateBudget:
        return self._channel(channel_id).edit

    def bucket(self, channel_id: str, kind: Kind) -> str | None:
        """The ``X-RateLimit-Bucket`` Discord last reported for this channel and kind."""
        channel = self._channels.get(channel_id)
        return channel.buckets.get(kind) if channel else None

    def budget_for(self, method: str, path: str) -> tuple[str, Kind] | None:
        """Which budget a REST call spends: ``(channel_id, kind)``, or None if it spends none."""
        match = _MESSAGE_ROUTE.search(path)
        if match is None:
            return None
        if method == "POST" and match["message"] is None:
            return match["channel"], "post"
        if method in ("PATCH", "DELETE") and match["message"] is not None:
            return match["channel"], "edit"  # Discord may group deletes with edits; learn both
        return None

    def observe_response(
        self, method: str, path: str, status: int, headers: CIMultiDictProxy[str]
    ) -> None:
        """Adopt one response's rate-limit headers; a 429 blocks the budget (or all of them)."""
        if status == 429 and _is_global(headers):
            self._block_all(_retry_after(headers))
            return
        target = self.budget_for(method, path)
        if target is None:
            if _TYPING.search(path):
                self.global_.saw_response()
            elif not _NOT_GLOBAL.search(path):
                self.global_.count_unbudgeted()  # discord.py's own: login, command sync, ...
            return
        self.global_.saw_response()
        channel_id, kind = target
        channel = self._channel(channel_id)
        budget = channel.edit if kind == "edit" else channel.post
        if bucket := headers.get("X-RateLimit-Bucket"):
            channel.buckets[kind] = bucket
        limit = _int(headers.get("X-RateLimit-Limit"))
        remaining = _int(headers.get("X-RateLimit-Remaining"))
        reset_after = _float(headers.get("X-RateLimit-Reset-After"))
        if limit is not None and remaining == limit - 1 and reset_after and status != 429:
            # This request opened a fresh window, so Reset-After is the window's length.
            budget.window_s = reset_after + WINDOW_MARGIN_S
        budget.observe(limit=limit, remaining=remaining, reset_after_s=reset_after)
        if status == 429:
            retry_after = _retry_after(headers)
            log.warning(
                "Discord 429 on %s in channel %s; holding it for %.2fs",
                kind,
                channel_id,
                retry_after,
            )
            budget.block_for(retry_after)

    def trace_config(self) -> aiohttp.TraceConfig:
        """A trace config for ``discord.Client(http_trace=...)`` that feeds these budgets."""
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._on_request_end)
        return trace

    async def _on_request_end(
        self,
        _session: aiohttp.ClientSession,
        _ctx: object,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        response = params.response
        self.observe_response(params.method, params.url.path, response.status, response.headers)

    def _channel(self, channel_id: str) -> _Channel:
        channel = self._channels.get(channel_id)
        if channel is None:
            channel = _Channel(
                post=RateBudget(
                    self._limit,
                    self._window_s,
                    name=f"discord post {channel_id}",
                    parent=self.global_,
                ),
                edit=RateBudget(
                    self._limit,
                    self._window_s,
                    name=f"discord edit {channel_id}",
                    parent=self.global_,
                ),
            )
            self._channels[channel_id] = channel
            if len(self._channels) % FORGET_EVERY == 0:
                self._forget_idle()
        return channel

    def _forget_idle(self) -> None:
        """Drop channels whose budgets have been idle for :data:`FORGET_IDLE_S`: a bot that
        meets thousands of DMs keeps budgets for the recent ones only."""
        self._channels = {
            channel_id: channel
            for channel_id, channel in self._channels.items()
            if not (channel.post.idle_for(FORGET_IDLE_S) and channel.edit.idle_for(FORGET_IDLE_S))
        }

    def _block_all(self, seconds: float) -> None:
        log.warning("Discord global rate limit; holding every channel for %.2fs", seconds)
        self.global_.distrust(GLOBAL_WINDOW_S + WINDOW_MARGIN_S)
        self.global_.block_for(seconds)
        for channel in self._channels.values():
            channel.post.block_for(seconds)
            channel.edit.block_for(seconds)


def _is_global(headers: CIMultiDictProxy[str]) -> bool:
    return headers.get("X-RateLimit-Global", "").lower() == "true" or (
        headers.get("X-RateLimit-Scope", "") == "global"
    )


def _retry_after(headers: CIMultiDictProxy[str]) -> float:
    for name in ("Retry-After", "X-RateLimit-Reset-After"):
        value = _float(headers.get(name))
        if value is not None and value >= 0:
            return value
    return FALLBACK_RETRY_AFTER_S


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None
