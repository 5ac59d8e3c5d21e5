"""DiscordRenderer: one conversation place's output (SPEC §5, §6) as Discord messages.

Every message written here spends the channel's shared post budget, the same budget the
streamed placeholders and continuation messages of every turn in that channel spend.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import aiohttp
import discord

from bots.discord.components import card_messages, choice_views, image_embed
from bots.discord.writer import (
    DISCORD_MAX_CHARS,
    Destination,
    DiscordWriter,
    ReplyTo,
    uncancelled,
)
from core.errors import PlatformRateLimitedError
from core.live_messages import GuardedStream, LiveMessages
from core.markdown import split_text
from core.paced_message import PacedMessage
from core.platform import ButtonRef, Journal
from core.traces import Card, Visual

__all__ = ["TYPING_REFRESH_S", "DiscordRenderer"]

log = logging.getLogger(__name__)

#: Discord shows typing for 10 s after each POST /typing; refresh a little before it lapses.
TYPING_REFRESH_S = 8.0
#: Whole messages are never dropped: a 429 is waited out this many times before giving up.
SEND_ATTEMPTS = 3


class DiscordRenderer:
    """Implements :class:`core.platform.Renderer` for one channel, thread or DM."""

    typing_refresh_s = TYPING_REFRESH_S

    def __init__(
        self,
        destination: Destination,
        *,
        unit: Literal["word", "sentence"] = "word",
        reply_to: ReplyTo | None = None,
        journal: Journal | None = None,
    ) -> None:
        self._dest = destination
        self._unit = unit
        self._journal = journal
        self._writer = DiscordWriter(destination, reply_to=reply_to)
        self.streams: list[PacedMessage] = []

    async def show_typing(self) -> None:
        # A cue, not content: skipped while anything else waits for the global budget.
        budget = self._dest.budgets.global_
        if not budget.has_capacity(cue=True):
            return
        slot = await budget.acquire(cue=True)  # granted at once: has_capacity said so
        try:
            await uncancelled(self._dest.channel.typing())  # the relay stops it mid-request
        except (TimeoutError, discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            log.debug("typing cue failed in channel %s: %s", self._dest.channel_id, exc)
        finally:
            budget.settle(slot)

    def start_stream(self, stop_id: str) -> GuardedStream:
        budgets, channel_id = self._dest.budgets, self._dest.channel_id
        live = LiveMessages(self._writer, budget=budgets.edit(channel_id), journal=self._journal)
        stream = PacedMessage(
            live,
            edit_budget=budgets.edit(channel_id),
            post_budget=budgets.post(channel_id),
            stop_id=stop_id,
            unit=self._unit,
            journal=self._journal,
            demand=budgets.global_,
        )
        self.streams.append(stream)
        return GuardedStream(stream, live)

    async def send_text(self, text: str) -> None:
        for part in split_text(text, DISCORD_MAX_CHARS):
            await self._create(content=part.rendered)

    async def send_buttons(self, buttons: list[ButtonRef]) -> None:
        for view in choice_views(buttons):
            await self._create(view=view)

    async def send_cards(self, cards: list[tuple[Card, list[ButtonRef]]]) -> None:
        for message in card_messages(cards):
            await self._create(embeds=message.embeds, view=message.view)

    async def send_image(self, visual: Visual) -> None:
        await self._create(embeds=[image_embed(visual)])

    async def send_notice(self, text: str) -> None:
        await self.send_text(text)

    async def _create(
        self,
        *,
        content: str | None = None,
        embeds: Sequence[discord.Embed] = (),
        view: discord.ui.View | None = None,
    ) -> discord.Message:
        budget = self._dest.budgets.post(self._dest.channel_id)
        for attempt in range(SEND_ATTEMPTS):
            try:
                async with budget.slot(final=True):
                    return await self._writer.create(content=content, embeds=embeds, view=view)
            except PlatformRateLimitedError as exc:
                if attempt == SEND_ATTEMPTS - 1:
                    raise
                budget.block_for(exc.retry_after)
        raise AssertionError("unreachable")
