"""SlackRenderer: one turn's output in one Slack place (implements core.platform.Renderer).

Streamed answers go native (``chat.startStream``) in threads and fall back to post + update
(:class:`core.paced_message.PacedMessage` over :class:`SlackWriter`) in inline DMs — Slack
streams only as thread replies there — and whenever native streaming is off or out of budget.
Whole messages use ``markdown_text``; buttons, cards and images use Block Kit. Every post in
a channel draws from that channel's post budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Literal

from bots.slack.api import SlackApi
from bots.slack.blocks import button_blocks, card_blocks, image_blocks, plain_fallback
from bots.slack.budgets import WorkspaceBudgets
from bots.slack.journal import SlackJournal
from bots.slack.mentions import neutralize_broadcasts
from bots.slack.native_stream import NativeSwitch, SlackNativeStream
from bots.slack.place import SlackPlace
from bots.slack.writer import SlackWriter
from core.bridge import StopResult
from core.errors import PlatformError, PlatformRateLimitedError
from core.live_messages import GuardedStream, LiveMessages
from core.markdown import split_text
from core.paced_message import PacedMessage
from core.platform import ButtonRef, StreamedMessage
from core.traces import Card, Visual

__all__ = ["SlackRenderer"]

log = logging.getLogger(__name__)

#: assistant.threads.setStatus lasts 2 minutes without a message; refresh well before.
STATUS_REFRESH_S = 90.0
STATUS_TEXT = "is thinking…"
#: chat.postMessage `markdown_text` takes 12,000 characters; keep room for neutralizing.
POST_MAX_CHARS = 11_000
#: Blocks per message (Slack: 50).
MAX_BLOCKS = 50
POST_ATTEMPTS = 3


class SlackRenderer:
    typing_refresh_s = STATUS_REFRESH_S

    def __init__(
        self,
        *,
        api: SlackApi,
        place: SlackPlace,
        budgets: WorkspaceBudgets,
        native: NativeSwitch,
        stop: Callable[[str], StopResult],
        unit: Literal["word", "sentence"] = "word",
        journal: SlackJournal | None = None,
    ) -> None:
        self._api = api
        self._place = place
        self._budgets = budgets
        self._native = native
        self._stop = stop
        self._unit = unit
        self._journal = journal
        self._status_shown = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- Renderer --------------------------------------------------------------------------
    async def show_typing(self) -> None:
        if not self._place.status_ts:  # a welcome nobody asked for: no message to hang it on
            return
        try:
            await self._api.call(
                "assistant.threads.setStatus",
                channel_id=self._place.channel,
                thread_ts=self._place.status_ts,
                status=STATUS_TEXT,
            )
            self._status_shown = True
        except PlatformError as exc:  # best effort: the placeholder follows anyway
            log.debug("setStatus failed: %s", exc)

    def start_stream(self, stop_id: str) -> StreamedMessage:
        self._clear_inline_status()
        if self._place.thread_ts is None or not self._native.enabled:
            return self._paced(stop_id)
        return SlackNativeStream(
            api=self._api,
            place=self._place,
            budgets=self._budgets,
            switch=self._native,
            fallback=lambda: self._paced(stop_id),
            on_stopped_by_user=lambda: self._stop_quietly(stop_id),
            journal=self._journal,
            unit=self._unit,
        )

    async def send_text(self, text: str) -> None:
        for part in split_text(text, POST_MAX_CHARS):
            await self._post(markdown_text=neutralize_broadcasts(part.rendered))

    async def send_buttons(self, buttons: list[ButtonRef]) -> None:
        names = ", ".join(ref.button.name for ref in buttons)
        await self._post_blocks(button_blocks(buttons), fallback=names)

    async def send_cards(self, cards: list[tuple[Card, list[ButtonRef]]]) -> None:
        blocks: list[dict[str, Any]] = []
        for card, refs in cards:
            group = card_blocks(card, refs)
            if blocks and len(blocks) + 1 + len(group) > MAX_BLOCKS:
                await self._post_blocks(blocks, fallback=card.title)
                blocks = []
            blocks += [{"type": "divider"}, *group] if blocks else group
        if blocks:
            await self._post_blocks(blocks, fallback=" · ".join(c.title for c, _ in cards))

    async def send_image(self, visual: Visual) -> None:
        await self._post_blocks(image_blocks(visual), fallback="image")

    async def send_notice(self, text: str) -> None:
        await self._post(markdown_text=text)

    # -- lifecycle -------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Wait for the renderer's own background requests (status clearing)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- internals -------------------------------------------------------------------------
    def _paced(self, stop_id: str) -> GuardedStream:
        journal = self._journal
        live = LiveMessages(
            SlackWriter(self._api, self._place),
            budget=self._budgets.update,
            journal=journal,
            on_shown=journal.showing if journal is not None else None,
        )
        paced = PacedMessage(
            live,
            edit_budget=self._budgets.update,
            post_budget=self._budgets.post(self._place.channel),
            stop_id=stop_id,
            unit=self._unit,
            journal=journal,
        )
        return GuardedStream(paced, live)

    def _stop_quietly(self, stop_id: str) -> None:
        if self._stop(stop_id) is not StopResult.STOPPED:
            log.debug("stop %s: the turn had already ended", stop_id)

    async def _post_blocks(self, blocks: list[dict[str, Any]], *, fallback: str) -> None:
        self._clear_inline_status()
        await self._post(blocks=blocks, text=plain_fallback(fallback))

    async def _post(self, **content: Any) -> None:
        """Post into the place within its channel's budget; retries through 429s."""
        self._clear_inline_status()
        budget = self._budgets.post(self._place.channel)
        for _ in range(POST_ATTEMPTS):
            try:
                async with budget.slot(final=True):
                    await self._api.call(
                        "chat.postMessage",
                        channel=self._place.channel,
                        thread_ts=self._place.thread_ts,
                        **content,
                    )
                return
            except PlatformRateLimitedError as exc:
                budget.block_for(exc.retry_after)
            except PlatformError as exc:
                log.error("could not post to Slack %s: %s", self._place.channel, exc)
                return
        log.error("gave up posting to Slack %s after rate limits", self._place.channel)

    def _clear_inline_status(self) -> None:
        """An inline DM answer does not land in the status thread: clear the cue explicitly."""
        if not self._status_shown or self._place.thread_ts == self._place.status_ts:
            return
        self._status_shown = False
        task = asyncio.create_task(self._clear_status(), name="slack-clear-status")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _clear_status(self) -> None:
        try:
            await self._api.call(
                "assistant.threads.setStatus",
                channel_id=self._place.channel,
                thread_ts=self._place.status_ts,
                status="",
            )
        except PlatformError as exc:
            log.debug("clearing setStatus failed: %s", exc)
