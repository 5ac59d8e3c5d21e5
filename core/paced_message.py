"""PacedMessage: a streamed answer on an edit-based platform (Discord, Slack fallback).

Reading the Voiceflow stream never waits on the platform: :meth:`PacedMessage.append` only
stores text and wakes a pump task that owns every request of this message. Invariants:

* one request in flight per message — the pump is the only writer;
* latest wins — the text is read when a budget slot is granted, not when it arrived, so
  interim states that could not be shown in time are skipped, never queued;
* a slot is kept for the final edit (:class:`~core.budget.RateBudget` ``reserve``);
* the final state is exact: the source text, split into parts by
  :func:`core.markdown.split_text` (every part but the last is frozen as soon as the next one
  starts, so continuation messages never change afterwards), plus the outcome's note;
* nothing is lost or doubled: a deleted message gets its part posted anew; when edits keep
  failing, only the text not yet visible is posted as new messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Literal

from core.budget import RateBudget, Weight
from core.errors import (
    MessageGoneError,
    MessageTooLongError,
    PlatformError,
    PlatformPermissionError,
    PlatformRateLimitedError,
    PlatformUncertainError,
)
from core.interim import interim_text, open_marker_start
from core.markdown import Part, parts_from, split_text, with_note
from core.platform import Journal, MessageWriter, Outcome

__all__ = ["CURSOR", "HEADROOM_CHARS", "PacedMessage", "split_limit"]

log = logging.getLogger(__name__)

CURSOR = " ▌"
PLACEHOLDER = "▌"
#: Characters kept free in every part for the cursor, interim markdown closers and the note.
HEADROOM_CHARS = 48
#: Consecutive failed interim edits after which the remainder goes out as new messages.
MAX_FAILED_EDITS = 3
FINAL_ATTEMPTS = 4
#: Added to the weight of an edit that would show an answer's first text.
FIRST_TEXT_WEIGHT = 1e9
RETRY_DELAY_S = 0.5


def split_limit(max_chars: int) -> int:
    """The part size used for splitting a message of ``max_chars`` (tests reuse it)."""
    return max_chars - HEADROOM_CHARS


class PacedMessage:
    """A streamed message; implements :class:`core.platform.StreamedMessage`."""

    def __init__(
        self,
        writer: MessageWriter,
        *,
        edit_budget: RateBudget,
        post_budget: RateBudget,
        stop_id: str | None,
        unit: Literal["word", "sentence"] = "word",
        cursor: str = CURSOR,
        journal: Journal | None = None,
        demand: RateBudget | None = None,
    ) -> None:
        self._writer = writer
        self._demand = demand  # told this stream is open until its final write is done
        if demand is not None:
            demand.expect(1)
        self._journal = journal
        self._edit_budget = edit_budget
        self._post_budget = post_budget
        self._stop_id = stop_id
        self._unit = unit
        self._cursor = cursor
        self._limit = split_limit(writer.max_chars)
        self._chunks: list[str] = []
        self._frozen = 0  # source chars finalized in earlier messages
        self._carry = ""  # the reopened code fence the live part starts with, if any
        self._current: str | None = None  # id of the message holding the growing part
        self._shown = ""  # what the current message shows now
        self._visible_upto = 0  # source offset confirmed visible to the user
        self._failed_edits = 0
        self._edits_broken = False
        self._outcome: Outcome | None = None
        self._finishing = asyncio.Event()
        self._wake = asyncio.Event()
        self.posts = 0
        self.edits = 0
        self.message_ids: list[str] = []
        #: Messages given up on (edits kept failing) whose text must end short of what they
        #: show: message id -> that text (see :meth:`_abandon_current`).
        self.abandoned: dict[str, str] = {}
        #: (monotonic time, source chars visible) after every successful write.
        self.timeline: list[tuple[float, int]] = []
        self._task = asyncio.create_task(self._pump(), name="paced-message")

    # -- StreamedMessage ---------------------------------------------------------------
    def append(self, text: str) -> None:
        if text and self._outcome is None:
            self._chunks.append(text)
            self._wake.set()

    async def finish(self, outcome: Outcome = Outcome.COMPLETE) -> None:
        if self._outcome is None:
            self._outcome = outcome
            self._finishing.set()
            self._wake.set()
        # Shielded: a stop that cancels the turn must still leave a clean final message.
        await asyncio.shield(self._task)

    @property
    def text(self) -> str:
        """Everything appended so far."""
        if len(self._chunks) > 1:
            self._chunks[:] = ["".join(self._chunks)]
        return self._chunks[0] if self._chunks else ""

    # -- the pump --------------------------------------------------------------------
    async def _pump(self) -> None:
        try:
            await self._post_placeholder()
            while self._outcome is None:
                await self._wait_for_news()
                if self._outcome is None and not self._edits_broken:
                    await self._interim()
            await self._finalize(self._outcome)
        except Exception:  # the pump must never die silently with text unshown
            log.exception("streamed message failed; the rest follows when the answer ends")
            self._edits_broken = True
            await self._finishing.wait()  # text still arriving must go out too
            await self._post_remainder(self._outcome or Outcome.INTERRUPTED)
        finally:
            if self._demand is not None:
                self._demand.expect(-1)

    async def _wait_for_news(self) -> None:
        """New text, the end, or the retry timer after a failed edit — whichever comes first.

        Text that arrives while no slot is free waits inside the budget's ``acquire``, whose
        timer fires when a slot frees: that is the flush timer of normal pacing. A failed edit
        has no such timer, so without this one its text would stay unshown until more arrives.
        """
        retry_in = RETRY_DELAY_S * self._failed_edits if self._failed_edits else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), retry_in)
        self._wake.clear()

    async def _post_placeholder(self) -> None:
        """Post the message that will grow — at once, normally before any text has arrived.

        It is a cue: on a congested budget (hundreds of answers queued for Discord's global
        limit) it goes after every write that shows text, so its slot may come late. The
        placeholder then already shows the text so far, and an answer that ended meanwhile is
        posted whole by :meth:`_finalize`, one request instead of two.
        """
        slot = await self._acquire_unless_finishing(self._post_budget, cue=True)
        if slot is None:
            return  # _finalize posts the whole answer (self._current stays None)
        view = self._interim_view() if len(self._parts()) == 1 else PLACEHOLDER
        try:
            self._current = await self._post(view, stop_id=self._stop_id, slot=slot)
            self._shown = view
        except PlatformError as exc:
            log.warning("could not post the placeholder: %s", exc)
            self._edits_broken = True

    async def _interim(self) -> None:
        if self._current is None:
            return
        await self._roll_over_full_parts()  # before the interim slot: slot time ≈ send time
        if self._current is None or self._interim_view() == self._shown:
            return
        slot = await self._acquire_unless_finishing(self._edit_budget, weight=self._unseen_chars)
        if slot is None:
            return
        if len(self._parts()) > 1:  # the part filled up while we waited: roll over first
            self._edit_budget.refund(slot)
            self._wake.set()
            return
        view = self._interim_view()  # latest wins: read the text now, not when it arrived
        if view == self._shown or self._current is None:
            self._edit_budget.refund(slot)
            return
        await self._try_interim_edit(view, slot)

    async def _acquire_unless_finishing(
        self, budget: RateBudget, *, cue: bool = False, weight: Weight | None = None
    ) -> float | None:
        """Wait for a placeholder or interim slot, but give way at once when the answer ends.

        Behind other streams on a shared budget such a wait can last a whole round; the final
        write (with its reserved slot) must not queue behind it.
        """
        acquire = asyncio.ensure_future(budget.acquire(cue=cue, weight=weight))
        finishing = asyncio.ensure_future(self._finishing.wait())
        try:
            await asyncio.wait({acquire, finishing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            finishing.cancel()
            if not acquire.done():
                acquire.cancel()  # a cancelled acquire spends nothing
        if not acquire.done() or acquire.cancelled():
            return None
        slot = acquire.result()
        if self._outcome is not None:  # granted just as the answer ended: the final uses it
            budget.refund(slot)
            return None
        return slot

    async def _try_interim_edit(self, view: str, slot: float) -> None:
        assert self._current is not None
        try:
            await self._edit(self._current, view, stop_id=self._stop_id, slot=slot)
            self._failed_edits = 0
        except MessageGoneError:
            await self._repost_current()
        except PlatformRateLimitedError as exc:
            self._edit_budget.block_for(exc.retry_after)
            self._wake.set()
        except PlatformError as exc:
            self._failed_edits += 1
            log.warning("interim edit failed (%d in a row): %s", self._failed_edits, exc)
            self._edits_broken = self._failed_edits >= MAX_FAILED_EDITS

    def _unseen_chars(self) -> float:
        """How much an edit now would add: the budget serves the message with most first, and
        an answer showing no text yet before every other (its first words matter most)."""
        unseen = float(len(self.text) - self._visible_upto)
        return unseen if self._visible_upto else unseen + FIRST_TEXT_WEIGHT

    def _parts(self) -> list[Part]:
        """The live part and any that follow, split from where the frozen messages end.

        Splitting only the rest keeps each edit's cost proportional to one message, not to
        the whole answer. A rest that starts inside a code block is split with its reopened
        fence in front (as text), so its closing fence is not parsed as an opener.
        """
        rest = self.text[self._frozen :]
        if not rest:
            return []
        parts = split_text(self._carry + rest, self._limit)
        if self._carry:
            first = parts[0]
            parts[0] = Part(
                first.body[len(self._carry) :], self._carry + first.prefix, first.suffix
            )
        return parts

    def _interim_view(self) -> str:
        parts = self._parts()
        if not parts:
            return self._shown or PLACEHOLDER
        tail = parts[-1]
        view = interim_text(tail.prefix + tail.body, unit=self._unit)
        if not view.strip():
            return PLACEHOLDER if len(parts) == 1 else self._shown
        return view + self._cursor

    async def _roll_over_full_parts(self) -> None:
        """Freeze every full part into its message and open the next one."""
        parts = self._parts()
        while len(parts) > 1 and self._current is not None:
            done = parts.pop(0)
            if not await self._write_final(self._current, done.rendered):
                self._edits_broken = True  # _finalize posts exactly the unseen rest anew
                return
            self._frozen += len(done.body)
            self._carry = parts[0].prefix
            self._visible_upto = self._frozen
            self._current = None
            await self._post_continuation()
            parts = self._parts()

    async def _post_continuation(self) -> None:
        """Open the next message of the answer, retrying through rate limits and passing
        failures. If it cannot be posted, the unseen rest goes out when the answer ends."""

        def view() -> str:  # latest wins: the text as it is when the slot is granted
            nxt = self._parts()[0]
            return interim_text(nxt.prefix + nxt.body, unit=self._unit) + self._cursor

        posted = await self._post_retrying(view, stop_id=self._stop_id, what="the next message")
        if isinstance(posted, tuple):
            self._current, self._shown = posted
            return
        log.warning("could not open the next message (%s); the rest goes at the end", posted)
        self._edits_broken = True  # _finalize posts exactly the unseen rest anew

    async def _repost_current(self) -> None:
        """The message was deleted: post its part anew and carry on streaming there."""
        log.info("streamed message was deleted; posting the rest anew")
        slot = await self._post_budget.acquire(final=True, weight=self._unseen_chars)
        try:
            self._current = await self._post(self._interim_view(), stop_id=self._stop_id, slot=slot)
            self._shown = self._interim_view()
        except PlatformError as exc:
            log.warning("could not repost the deleted message: %s", exc)
            self._current = None
            self._edits_broken = True

    # -- final -----------------------------------------------------------------------
    async def _finalize(self, outcome: Outcome) -> None:
        if self._edits_broken or self._current is None:
            await self._post_remainder(outcome)
            return
        parts = self._final_parts(outcome)
        if not "".join(p.rendered for p in parts).strip():  # no content, or blanks only:
            # remove the placeholder (a blank message is no answer, and Discord refuses one)
            await self._delete_current()
            return
        first, rest = parts[0], parts[1:]
        if not await self._write_final(self._current, first.rendered):
            await self._post_remainder(outcome)
            return
        self._visible_upto = self._frozen + len(first.body)
        for part in rest:
            if not await self._post_final(part.rendered):
                return  # refused for good (a permission): the next part would be too

    def _final_parts(self, outcome: Outcome) -> list[Part]:
        parts = self._parts()
        if outcome is Outcome.COMPLETE:
            return parts
        return with_note(parts, outcome.note)

    async def _write_final(self, message_id: str, text: str) -> bool:
        """Edit in a final text, retrying through rate limits; False if it cannot be done."""
        for attempt in range(FINAL_ATTEMPTS):
            slot = await self._edit_budget.acquire(final=True, weight=self._unseen_chars)
            try:
                await self._edit(message_id, text, stop_id=None, slot=slot)
                return True
            except MessageGoneError:
                await self._post_final(text)
                return True
            except PlatformRateLimitedError as exc:
                self._edit_budget.block_for(exc.retry_after)
            except (MessageTooLongError, PlatformPermissionError) as exc:
                log.error("platform refused a final part of %d chars: %s", len(text), exc)
                return False
            except PlatformError as exc:
                log.warning("final edit failed (attempt %d): %s", attempt + 1, exc)
                await asyncio.sleep(RETRY_DELAY_S * (attempt + 1))
        return False

    async def _post_remainder(self, outcome: Outcome) -> None:
        """Deliver, as new messages, exactly the text the user has not seen yet."""
        parts = parts_from(self.text, self._abandon_current(), self._limit)
        if outcome is not Outcome.COMPLETE:
            parts = with_note(parts, outcome.note)
        for part in parts:
            if part.rendered.strip() and not await self._post_final(part.rendered):
                return  # refused for good (a permission): the next part would be too

    def _abandon_current(self) -> int:
        """Where the message that cannot be edited any more ends in the source: where its text
        ends — or, when its interim view had to close an inline marker (``**in**`` for
        ``**in order**``: that closer is no source text), before the marker."""
        shown = self._carry + self.text[self._frozen : self._visible_upto]
        opened = open_marker_start(shown)
        if opened is None or self._current is None:
            return self._visible_upto
        self.abandoned[self._current] = shown[:opened]
        return self._frozen + opened - len(self._carry)

    async def _post_final(self, text: str) -> bool:
        """Post a final part, retrying through rate limits and passing failures; False if
        the platform refuses it for good (a missing permission: retrying changes nothing)."""
        posted = await self._post_retrying(lambda: text, stop_id=None, what="a final part")
        if isinstance(posted, PlatformUncertainError):  # posting again could show it twice
            log.warning("no answer to posting a final part (%s); not posted again", posted)
        elif isinstance(posted, PlatformPermissionError):
            log.error("cannot post the answer here: %s", posted)
            return False
        elif posted is None:
            log.error("gave up posting %d chars of a final answer", len(text))
        return True

    async def _post_retrying(
        self, text: Callable[[], str], *, stop_id: str | None, what: str
    ) -> tuple[str, str] | PlatformUncertainError | PlatformPermissionError | None:
        """Post ``text()`` (read when a slot is granted), retrying through rate limits and
        passing failures: (message id, text posted); or the failure that retrying cannot
        mend; or None when the attempts ran out."""
        for attempt in range(FINAL_ATTEMPTS):
            slot = await self._post_budget.acquire(final=True, weight=self._unseen_chars)
            shown = text()
            try:
                return await self._post(shown, stop_id=stop_id, slot=slot), shown
            except PlatformRateLimitedError as exc:
                self._post_budget.block_for(exc.retry_after)
            except (PlatformUncertainError, PlatformPermissionError) as exc:
                return exc
            except PlatformError as exc:
                log.warning("posting %s failed (attempt %d): %s", what, attempt + 1, exc)
                await asyncio.sleep(RETRY_DELAY_S * (attempt + 1))
        return None

    async def _delete_current(self) -> None:
        if self._current is None:
            return
        try:
            await self._writer.delete(self._current)
        except PlatformError as exc:
            log.warning("could not delete an empty placeholder: %s", exc)
        if self._journal is not None:
            await self._journal.closed(self._current)

    # -- requests with bookkeeping -----------------------------------------------------
    async def _post(self, text: str, *, stop_id: str | None, slot: float) -> str:
        try:
            message_id = await self._writer.post(text, stop_id=stop_id)
        finally:
            self._post_budget.settle(slot)
        self.posts += 1
        self.message_ids.append(message_id)
        self._record(text)
        if stop_id is not None and self._journal is not None:
            await self._journal.opened(message_id)
        return message_id

    async def _edit(self, message_id: str, text: str, *, stop_id: str | None, slot: float) -> None:
        try:
            await self._writer.edit(message_id, text, stop_id=stop_id)
        finally:
            self._edit_budget.settle(slot)
        self.edits += 1
        self._shown = text
        self._record(text)
        if stop_id is None and self._journal is not None:
            await self._journal.closed(message_id)

    def _record(self, shown: str) -> None:
        source = self.text
        rest = source[self._frozen :]
        if shown.startswith(("```", "~~~")) and not rest.startswith(shown[:3]):
            shown = shown.partition("\n")[2]  # a reopened fence is decoration, not source
        # Character by character is what is wanted here (these are texts, not paths).
        visible = self._frozen + len(os.path.commonprefix((shown, rest)))  # noqa: RUF071
        self._visible_upto = max(self._visible_upto, min(visible, len(source)))
        self.timeline.append((time.monotonic(), self._visible_upto))
