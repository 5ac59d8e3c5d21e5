"""Baseline streaming strategies, each a ``core.platform.StreamedMessage`` over an adapter's
own ``MessageWriter`` — the cadences of the anchors in docs/discord.md §7 and docs/slack.md §6.

They share what is not under comparison with ours: overflow into continuation messages at the
same split points (``core.markdown.split_text``, frozen parts never change) and an exact final
text, with rate limits waited out and retried. They differ in *when* they write:

* :class:`WaitForEnd` — Voiceflow's own examples: nothing until the end, then one message.
* :class:`Llmcord` — one global 1-second edit timer for the whole process, edits awaited inside
  the stream loop (reading stalls while an edit waits), no timer flush; the first message is
  sent with the first chunk.
* :class:`OpenClaw` — per message, latest wins, one request in flight, at most one edit per
  1.2 s with a trailing flush; the first message waits for ``MIN_INITIAL_CHARS``; ignores the
  shared channel/workspace budget.
* :class:`EveryTwentyDeltas` — ChatGPT-in-Slack: a placeholder, then an un-awaited update
  every 20 deltas (a new task per update, no time pacing); 429s retried twice after
  Retry-After with the same (stale) body, as ``RateLimitErrorRetryHandler`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from core.errors import PlatformError, PlatformRateLimitedError
from core.markdown import Part, split_text
from core.paced_message import split_limit
from core.platform import MessageWriter, Outcome, StreamedMessage

__all__ = ["BASELINES", "EveryTwentyDeltas", "Llmcord", "OpenClaw", "WaitForEnd"]

log = logging.getLogger(__name__)

LLMCORD_EDIT_DELAY_S = 1.0
LLMCORD_INDICATOR = " ⚪"
OPENCLAW_THROTTLE_S = 1.2
OPENCLAW_MIN_INITIAL_CHARS = 30
TWENTY_DELTAS = 20
TWENTY_SUFFIX = " ... ✍️"
TWENTY_PLACEHOLDER = "⏳ Wait a second, please ..."
WRITE_ATTEMPTS = 6
RETRIES_ON_429 = 2


class _Baseline:
    """Text buffer, parts, continuation messages and the exact final, shared by baselines."""

    def __init__(self, writer: MessageWriter) -> None:
        self._writer = writer
        self._limit = split_limit(writer.max_chars)
        self._chunks: list[str] = []
        self._frozen_parts = 0  # parts already final in earlier messages
        self._current: str | None = None  # the message holding the growing part
        self._done = asyncio.Event()
        self._new_text = asyncio.Event()
        self._outcome = Outcome.COMPLETE
        self.message_ids: list[str] = []
        self._task = asyncio.create_task(self._run(), name=type(self).__name__)

    # -- StreamedMessage -------------------------------------------------------------------
    def append(self, text: str) -> None:
        if text and not self._done.is_set():
            self._chunks.append(text)
            self._new_text.set()
            self._on_append(text)

    async def finish(self, outcome: Outcome = Outcome.COMPLETE) -> None:
        self._outcome = outcome
        self._done.set()
        self._new_text.set()
        await asyncio.shield(self._task)

    @property
    def text(self) -> str:
        if len(self._chunks) > 1:
            self._chunks[:] = ["".join(self._chunks)]
        return self._chunks[0] if self._chunks else ""

    # -- hooks -----------------------------------------------------------------------------
    def _on_append(self, text: str) -> None:
        """Called synchronously on every delta."""

    async def _run(self) -> None:
        raise NotImplementedError

    # -- shared writing --------------------------------------------------------------------
    def _parts(self) -> list[Part]:
        return split_text(self.text, self._limit) if self.text else []

    def _live_view(self, suffix: str = "") -> str | None:
        """The growing part's text as the next interim write shows it."""
        parts = self._parts()
        if len(parts) <= self._frozen_parts:
            return None
        live = parts[self._frozen_parts]
        return live.prefix + live.body + suffix

    async def _roll_over(self, suffix: str = "") -> None:
        """Freeze every full part and open a message for the next (with its text so far)."""
        parts = self._parts()
        while self._current is not None and len(parts) > self._frozen_parts + 1:
            await self._write(parts[self._frozen_parts].rendered, self._current)
            self._frozen_parts += 1
            live = parts[self._frozen_parts]
            self._current = await self._write(live.prefix + live.body + suffix, None)

    async def _final(self) -> None:
        """Every remaining part, exactly: the growing message edited, the rest posted."""
        parts = self._parts()[self._frozen_parts :]
        for i, part in enumerate(parts):
            target = self._current if i == 0 else None
            self._current = await self._write(part.rendered, target)

    async def _write(self, text: str, message_id: str | None, *, retries: int = 0) -> str:
        """Post (no id) or edit; rate limits waited out; returns the message id."""
        attempts = WRITE_ATTEMPTS if retries == 0 else retries + 1
        for attempt in range(attempts):
            try:
                if message_id is None:
                    new_id = await self._writer.post(text, stop_id=None)
                    self.message_ids.append(new_id)
                    return new_id
                await self._writer.edit(message_id, text, stop_id=None)
                return message_id
            except PlatformRateLimitedError as exc:
                await asyncio.sleep(exc.retry_after)
            except PlatformError as exc:
                log.warning("%s write failed (attempt %d): %s", type(self).__name__, attempt, exc)
                await asyncio.sleep(0.5)
        raise PlatformError(f"{type(self).__name__}: gave up writing")


class WaitForEnd(_Baseline):
    async def _run(self) -> None:
        await self._done.wait()
        await self._final()


class Llmcord(_Baseline):
    #: Process-wide, like llmcord's module-level ``last_task_time``: one timer for all channels.
    last_edit = 0.0

    def __init__(self, writer: MessageWriter) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        super().__init__(writer)

    def _on_append(self, text: str) -> None:
        self._queue.put_nowait(text)

    async def finish(self, outcome: Outcome = Outcome.COMPLETE) -> None:
        self._queue.put_nowait(None)
        await super().finish(outcome)

    async def _run(self) -> None:
        shown = ""
        while (delta := await self._queue.get()) is not None:
            shown += delta  # the text as far as the (stalled) stream loop has read
            if self._current is None:
                self._current = await self._write(shown + LLMCORD_INDICATOR, None)
                Llmcord.last_edit = time.monotonic()
                continue
            if len(split_text(shown, self._limit)) > self._frozen_parts + 1:
                await self._roll_over_upto(shown)
            elif time.monotonic() - Llmcord.last_edit >= LLMCORD_EDIT_DELAY_S:
                Llmcord.last_edit = time.monotonic()
                parts = split_text(shown, self._limit)
                live = parts[self._frozen_parts]
                await self._write(live.prefix + live.body + LLMCORD_INDICATOR, self._current)
        await self._final()

    async def _roll_over_upto(self, shown: str) -> None:
        parts = split_text(shown, self._limit)
        while self._current is not None and len(parts) > self._frozen_parts + 1:
            await self._write(parts[self._frozen_parts].rendered, self._current)
            self._frozen_parts += 1
            live = parts[self._frozen_parts]
            self._current = await self._write(live.prefix + live.body + LLMCORD_INDICATOR, None)
            Llmcord.last_edit = time.monotonic()


class OpenClaw(_Baseline):
    async def _run(self) -> None:
        last_send = -OPENCLAW_THROTTLE_S
        shown: str | None = None
        while not self._done.is_set():
            await self._new_text.wait()
            self._new_text.clear()
            if self._done.is_set():
                break
            if self._current is None and len(self.text) < OPENCLAW_MIN_INITIAL_CHARS:
                continue
            wait = last_send + OPENCLAW_THROTTLE_S - time.monotonic()
            if wait > 0:  # trailing flush: the latest text goes out when the throttle opens
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._done.wait(), wait)
                if self._done.is_set():
                    break
            shown = await self._send_latest(shown)
            last_send = time.monotonic()
        await self._final()

    async def _send_latest(self, shown: str | None) -> str | None:
        if self._current is None:
            view = self._live_view()
            if view is not None:
                self._current = await self._write(view, None)
            return view
        await self._roll_over()
        view = self._live_view()
        if view is not None and view != shown:  # OpenClaw skips identical text
            await self._write(view, self._current)
        return view


class EveryTwentyDeltas(_Baseline):
    def __init__(self, writer: MessageWriter) -> None:
        self._deltas = 0
        self._updates: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        super().__init__(writer)

    def _on_append(self, text: str) -> None:
        self._deltas += 1
        if self._deltas % TWENTY_DELTAS == 0 and self._current is not None:
            task = asyncio.create_task(self._update())
            self._updates.add(task)
            task.add_done_callback(self._updates.discard)

    async def _update(self) -> None:
        with contextlib.suppress(PlatformError):
            async with self._lock:
                await self._roll_over(TWENTY_SUFFIX)
            view = self._live_view(TWENTY_SUFFIX)
            if view is not None and self._current is not None:
                await self._write(view, self._current, retries=RETRIES_ON_429)

    async def _run(self) -> None:
        self._current = await self._write(TWENTY_PLACEHOLDER, None)
        await self._done.wait()
        while self._updates:
            await asyncio.gather(*self._updates, return_exceptions=True)
        await self._final()


BASELINES: dict[str, Callable[[MessageWriter], StreamedMessage]] = {
    "wait-for-end": WaitForEnd,
    "llmcord 1 s global": Llmcord,
    "OpenClaw 1.2 s": OpenClaw,
    "every 20 deltas": EveryTwentyDeltas,
}
