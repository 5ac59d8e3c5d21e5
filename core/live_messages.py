"""No placeholder left hanging: release messages a streamed answer had to abandon.

:class:`~core.paced_message.PacedMessage` guarantees the *text* — when it cannot edit a
message any more (a 429 storm outlasting its final attempts, edits failing in a row) it posts
what the user has not seen as new messages. The abandoned message then still shows its last
interim text with the ▌ cursor and the Stop control. :class:`LiveMessages` wraps the platform's
writer, remembers what each message carrying a stop control last showed, and
:meth:`LiveMessages.release` strips cursor and control from every one the stream left live
(an empty placeholder is deleted). It retries through rate limits for a bounded time; a
message it still cannot release stays in the journal, so the next start finalizes it.

:class:`GuardedStream` runs that release right after the answer's final write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from core.budget import RateBudget
from core.errors import MessageGoneError, PlatformError, PlatformRateLimitedError
from core.paced_message import CURSOR, PLACEHOLDER, PacedMessage
from core.platform import Journal, MessageWriter, Outcome

__all__ = ["GuardedStream", "LiveMessages", "interrupted_text"]

log = logging.getLogger(__name__)

RELEASE_ATTEMPTS = 6
RELEASE_BACKOFF_S = 0.5


#: Called with (message id, text, is_final) before a live message is edited: lets a platform
#: that cannot read its messages back (Slack) journal what a crash would leave on screen — and,
#: before the final edit, the final text, so that a crash right after that edit does not make
#: the next start replace a finished answer with its last interim text.
ShownHook = Callable[[str, str, bool], Awaitable[None]]


def interrupted_text(shown: str) -> str:
    """The last interim text of a message whose stream died with its process, marked."""
    body = shown.removesuffix(CURSOR).rstrip()
    note = Outcome.INTERRUPTED.note
    return note if body in ("", PLACEHOLDER) else f"{body}\n\n{note}"


class LiveMessages:
    """A :class:`core.platform.MessageWriter` that tracks messages still showing a live stream."""

    def __init__(
        self,
        writer: MessageWriter,
        *,
        budget: RateBudget,
        journal: Journal | None = None,
        on_shown: ShownHook | None = None,
    ) -> None:
        self.max_chars = writer.max_chars
        self._writer = writer
        self._budget = budget
        self._journal = journal
        self._on_shown = on_shown
        self._live: dict[str, str] = {}  # message id -> what it shows (with the cursor)

    @property
    def live(self) -> dict[str, str]:
        return dict(self._live)

    async def post(self, text: str, *, stop_id: str | None) -> str:
        message_id = await self._writer.post(text, stop_id=stop_id)
        if stop_id is not None:
            await self._showing(message_id, text)
        return message_id

    async def edit(self, message_id: str, text: str, *, stop_id: str | None) -> None:
        is_live = stop_id is not None and message_id in self._live
        if message_id in self._live and self._on_shown is not None:
            # Journaled before the edit: after a crash the message may show one edit more
            # than the user saw (text Voiceflow did send), never one edit less.
            await self._on_shown(message_id, text, stop_id is None)
        try:
            await self._writer.edit(message_id, text, stop_id=stop_id)
        except MessageGoneError:
            self._live.pop(message_id, None)  # nothing left to release
            raise
        if stop_id is None:
            self._live.pop(message_id, None)
        elif is_live:
            self._live[message_id] = text

    async def _showing(self, message_id: str, text: str) -> None:
        self._live[message_id] = text
        if self._on_shown is not None:
            await self._on_shown(message_id, text, False)

    async def delete(self, message_id: str) -> None:
        await self._writer.delete(message_id)
        self._live.pop(message_id, None)

    async def release(self, endings: Mapping[str, str] | None = None) -> None:
        """Strip the cursor and the stop control from every message still live; a message in
        ``endings`` ends with that text instead of what it shows."""
        for message_id, shown in list(self._live.items()):
            body = (endings or {}).get(message_id, shown.removesuffix(CURSOR))
            if await self._release(message_id, body):
                self._live.pop(message_id, None)
                if self._journal is not None:
                    await self._journal.closed(message_id)
            else:
                log.error(
                    "could not remove the stop control from message %s; "
                    "it is finalized at the next start",
                    message_id,
                )

    async def _release(self, message_id: str, body: str) -> bool:
        for attempt in range(RELEASE_ATTEMPTS):
            try:
                await self._write_once(message_id, body)
                return True
            except MessageGoneError:
                return True
            except PlatformRateLimitedError as exc:
                self._budget.block_for(exc.retry_after)  # the next acquire waits it out
            except PlatformError as exc:
                log.warning("releasing message %s failed (%d): %s", message_id, attempt + 1, exc)
                await asyncio.sleep(RELEASE_BACKOFF_S * 2**attempt)
        return False

    async def _write_once(self, message_id: str, body: str) -> None:
        slot = await self._budget.acquire(final=True)
        try:
            if body.strip() in ("", PLACEHOLDER):
                await self._writer.delete(message_id)
            else:
                await self._writer.edit(message_id, body, stop_id=None)
        finally:
            self._budget.settle(slot)


class GuardedStream:
    """A :class:`core.platform.StreamedMessage`: a PacedMessage whose abandoned messages are
    released after its final write."""

    def __init__(self, paced: PacedMessage, live: LiveMessages) -> None:
        self.paced = paced
        self._live = live

    @property
    def text(self) -> str:
        return self.paced.text

    def append(self, text: str) -> None:
        self.paced.append(text)

    async def finish(self, outcome: Outcome = Outcome.COMPLETE) -> None:
        await self.paced.finish(outcome)
        # Shielded like the final write: a stop or shutdown must not leave a Stop control.
        await asyncio.shield(self._live.release(self.paced.abandoned))
