"""SlackNativeStream: one answer through chat.startStream / appendStream / stopStream.

Implements :class:`core.platform.StreamedMessage`. ``append`` only stores text and wakes the
pump task, which owns every request of this message (one in flight). Invariants:

* latest wins: each append carries *all* text not yet sent, read when the budget grants the
  slot, so a slow workspace sends fewer, larger appends instead of queueing; a timer
  (``flush_interval_s``) and new text both trigger a flush — never a size-only buffer
  (docs/slack.md §7 "long silence then a wall of text");
* interim appends end at a word (or sentence) boundary; the final ``stopStream`` carries the
  rest plus the outcome note;
* every start, append and stop draws from the workspace's shared budgets; a start that finds
  no slot *now* does not wait — the answer goes to the post + update fallback instead;
* ``_sent`` is the source text Slack confirmed (``ok: true``). Whenever native streaming
  cannot go on — unavailable (switched off for the process), failed, expired
  (``message_not_in_streaming_state``), or about to hit its ~5 min / ~12k limits (rotated
  before them) — the native message is finalized with exactly ``_sent`` and the unconfirmed
  remainder continues in a fallback message: nothing lost, nothing doubled;
* Slack's own stop control (``stopped_by_user`` on any append or stop) ends the answer as a
  Stop button does in post + update mode: the turn is stopped (the Voiceflow request
  cancelled) and the message keeps ``_sent`` plus "⏹️ stopped"
  (:meth:`SlackNativeStream._user_stop`);
* until the message is final the journal holds how a restart after ``kill -9`` ends it:
  the confirmed text, and during the final stop the whole text and note (``NativeEnd``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Literal

from bots.slack.api import NATIVE_UNAVAILABLE, SlackApi, slack_error_code
from bots.slack.budgets import WorkspaceBudgets
from bots.slack.journal import SlackJournal
from bots.slack.mentions import neutralize_broadcasts, open_mention_start
from bots.slack.native_ending import NativeEnd, ending, pinned_text
from bots.slack.place import SlackPlace
from bots.slack.writer import SLACK_UPDATE_MAX_CHARS
from core.errors import (
    PlatformError,
    PlatformRateLimitedError,
    PlatformUncertainError,
    StreamExpiredError,
)
from core.markdown import MIN_MAX_CHARS, fence_closer, fence_reopener, split_text
from core.platform import Outcome, StreamedMessage

__all__ = ["NativeSwitch", "SlackNativeStream"]

log = logging.getLogger(__name__)

#: Least time between two writes of one native message (the workspace budget may ask more).
FLUSH_INTERVAL_S = 0.25
#: Rotate before Slack's undocumented limits: ~12k cumulative chars, ~5 min of life.
NATIVE_MAX_CHARS = 11_000
NATIVE_MAX_AGE_S = 240.0
#: Room kept free in a segment: a fence closer and characters added by neutralizing.
ROTATION_MARGIN_CHARS = 64
#: A "word" longer than this is sent without waiting for its end (URLs, code).
HOLDBACK_MAX_CHARS = 200
STOP_ATTEMPTS = 3
_SENTENCE_END = re.compile(r"(?:[.!?…](?:\s+)|\n)")


class NativeSwitch:
    """Process-wide: is native streaming available? Turned off once Slack says it is not."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled

    def disable(self, reason: str) -> None:
        if self.enabled:
            log.warning("Slack native streaming unavailable (%s): using post + update", reason)
        self.enabled = False


class SlackNativeStream:
    def __init__(
        self,
        *,
        api: SlackApi,
        place: SlackPlace,
        budgets: WorkspaceBudgets,
        switch: NativeSwitch,
        fallback: Callable[[], StreamedMessage],
        on_stopped_by_user: Callable[[], None],
        journal: SlackJournal | None = None,
        unit: Literal["word", "sentence"] = "word",
        flush_interval_s: float = FLUSH_INTERVAL_S,
        max_chars: int = NATIVE_MAX_CHARS,
        max_age_s: float = NATIVE_MAX_AGE_S,
    ) -> None:
        self._api = api
        self._place = place
        self._budgets = budgets
        self._switch = switch
        self._make_fallback = fallback
        self._on_stopped_by_user = on_stopped_by_user
        self._journal = journal
        self._unit = unit
        self._interval = flush_interval_s
        self._max_chars = max_chars
        self._max_age_s = max_age_s
        self._chunks: list[str] = []
        self._sent = 0  # source chars confirmed in the native message
        self._segment_chars = 0  # chars the native message holds (after neutralizing)
        self._ts: str | None = None
        self._start_slot: float | None = None
        self._started_at = 0.0
        self._last_write = 0.0
        self._fallback: StreamedMessage | None = None
        self._outcome: Outcome | None = None
        self._user_stopped = False
        self._wake = asyncio.Event()
        self._finishing = asyncio.Event()
        self._task = asyncio.create_task(self._pump(), name="slack-native-stream")

    # -- StreamedMessage -------------------------------------------------------------------
    def append(self, text: str) -> None:
        if not text or self._outcome is not None or self._user_stopped:
            return
        if self._fallback is not None:
            self._fallback.append(text)
            return
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
        if len(self._chunks) > 1:
            self._chunks[:] = ["".join(self._chunks)]
        return self._chunks[0] if self._chunks else ""

    @property
    def ts(self) -> str | None:
        """The native message's ts once started (tests and logs)."""
        return self._ts

    # -- the pump --------------------------------------------------------------------------
    async def _pump(self) -> None:
        try:
            if await self._take_start_slot():
                await self._stream()
            else:
                self._switch_to_fallback("no native slot")
        except Exception:  # never leave the answer unshown
            log.exception("native stream failed; continuing with post + update")
            if self._fallback is None:
                self._switch_to_fallback("error")
        if self._fallback is not None:
            await self._finishing.wait()
            await self._fallback.finish(self._outcome or Outcome.INTERRUPTED)

    async def _take_start_slot(self) -> bool:
        budget = self._budgets.start
        if not self._switch.enabled or not budget.has_capacity(final=True):
            return False
        # acquire() returns without suspending when has_capacity() said so: no other
        # stream can take the slot in between.
        self._start_slot = await budget.acquire(final=True)
        return True

    async def _stream(self) -> None:
        while self._outcome is None:
            await self._wake.wait()
            self._wake.clear()
            await self._pace()
            if self._outcome is not None:
                break
            if not await self._flush():
                return  # switched to the fallback, or stopped by the user
        await self._close(self._outcome)

    async def _pace(self) -> None:
        """Wait out the flush interval since the last write (cut short by finish)."""
        delay = self._last_write + self._interval - time.monotonic()
        if delay > 0 and self._outcome is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finishing.wait(), delay)

    def _pending(self) -> str:
        """Unsent text up to the last word (or sentence) boundary."""
        rest = self.text[self._sent :]
        if self._unit == "sentence":
            ends = [m.end() for m in _SENTENCE_END.finditer(rest)]
            cut = ends[-1] if ends else 0
        else:
            cut = max(rest.rfind(" "), rest.rfind("\n")) + 1
        if cut == 0 and len(rest) >= HOLDBACK_MAX_CHARS:
            cut = len(rest)
        # Slack concatenates appends: never end one where the next could complete a mention
        # ("<!chan" + "nel>", "<!subteam^S1|@a " + "team>", "@he" + "re"): wait for its end.
        open_mention = open_mention_start(rest[:cut])
        return rest[: cut if open_mention is None else open_mention]

    # -- interim writes --------------------------------------------------------------------
    async def _flush(self) -> bool:
        """Send the pending text; False once native streaming is over (fallback, or a stop)."""
        if not self._pending():
            return True
        if self._ts is None:
            return await self._start(self._pending())
        if self._needs_rotation(len(self._pending())):
            await self._rotate(self._pending())
            return False
        slot = await self._budgets.append.acquire(weight=lambda: float(len(self._pending())))
        delta = self._pending()  # latest wins: whatever arrived while waiting goes too
        if self._outcome is not None or not delta or self._needs_rotation(len(delta)):
            self._budgets.append.refund(slot)
            self._wake.set()
            return True
        try:
            return await self._append(delta)
        finally:
            self._budgets.append.settle(slot)

    async def _start(self, delta: str) -> bool:
        wire = neutralize_broadcasts(delta)
        try:
            reply = await self._call_start(wire)
            ts: str | None = str(reply["ts"])
        except PlatformUncertainError as exc:  # no answer: the stream may exist all the same
            ts = await self._find_started(wire)
            if ts is None:
                log.warning("startStream got no answer (%s), and no such stream is there", exc)
                self._switch_to_fallback(str(exc))
                return False
            log.info("startStream got no answer (%s) but started %s: streaming on", exc, ts)
        except PlatformError as exc:
            self._note_start_failure(exc)
            self._switch_to_fallback(str(exc))
            return False
        self._ts = ts
        self._started_at = self._last_write = time.monotonic()
        await self._confirm(delta, wire)
        return True

    async def _find_started(self, wire: str) -> str | None:
        """The stream a start that timed out created, if it did: the thread's newest bot
        message, when it holds exactly what the start carried (the answer's first message,
        since a conversation's turns run one at a time). None when there is none, or the
        thread cannot be read (then the text goes out anew, as before)."""
        try:
            reply = await self._api.call(
                "conversations.replies",
                channel=self._place.channel,
                ts=self._place.thread_ts,
                oldest=self._place.status_ts,
                limit=200,
            )
        except PlatformError as exc:
            log.info("could not look for the started stream: %s", exc)
            return None
        messages = [m for m in reply.get("messages") or () if isinstance(m, dict)]
        ours = [m for m in messages if m.get("bot_id") and m.get("ts") != self._place.thread_ts]
        if ours and str(ours[-1].get("text") or "").strip() == wire.strip():
            return str(ours[-1]["ts"])
        return None

    async def _call_start(self, wire: str) -> dict[str, Any]:
        slot, self._start_slot = self._start_slot, None
        try:
            return await self._api.call(
                "chat.startStream",
                channel=self._place.channel,
                thread_ts=self._place.thread_ts,
                recipient_user_id=self._place.user_id,
                recipient_team_id=self._place.user_team_id,
                markdown_text=wire,
            )
        finally:
            if slot is not None:
                self._budgets.start.settle(slot)

    async def _append(self, delta: str) -> bool:
        assert self._ts is not None
        wire = neutralize_broadcasts(delta)
        try:
            await self._api.call(
                "chat.appendStream", channel=self._place.channel, ts=self._ts, markdown_text=wire
            )
        except StreamExpiredError:
            await self._recover_expired()
            return False
        except PlatformRateLimitedError as exc:
            self._budgets.append.block_for(exc.retry_after)
            self._wake.set()
            return True
        except PlatformError as exc:
            if slack_error_code(exc) == "stopped_by_user":
                await self._user_stop()
                return False
            log.warning("appendStream failed (%s); continuing with post + update", exc)
            await self._recover_expired(live=True)
            return False
        self._last_write = time.monotonic()
        await self._confirm(delta, wire)
        return True

    async def _confirm(self, delta: str, wire: str) -> None:
        self._sent += len(delta)
        self._segment_chars += len(wire)
        # After Slack's ok, so a restart never pins text the message did not hold.
        await self._journaled(self.text[: self._sent])

    async def _journaled(self, text: str, note: str = Outcome.INTERRUPTED.note) -> None:
        """Should the process die now, the next start ends this message as ``text`` + ``note``."""
        if self._journal is not None and self._ts is not None:
            await self._journal.streaming(self._ts, NativeEnd(text, self._sent, note))

    async def _closed(self) -> None:
        """The native message is final: nothing left for a restart to finish."""
        if self._journal is not None and self._ts is not None:
            await self._journal.closed(self._ts)

    def _needs_rotation(self, more_chars: int) -> bool:
        too_old = time.monotonic() - self._started_at > self._max_age_s
        return too_old or not self._fits(more_chars)

    def _fits(self, more_chars: int) -> bool:
        return self._segment_chars + more_chars + ROTATION_MARGIN_CHARS <= self._max_chars

    # -- final -----------------------------------------------------------------------------
    async def _close(self, outcome: Outcome) -> None:
        if self._ts is None:
            if self._start_slot is not None:  # never started: the slot was not used
                self._budgets.start.refund(self._start_slot)
            if self.text.strip() or outcome is not Outcome.COMPLETE:
                self._switch_to_fallback("answer ended before the first flush")
            return
        rest = self.text[self._sent :]
        wire = neutralize_broadcasts(rest) + ending(self.text, outcome.note)
        if not self._fits(len(wire)):
            await self._rotate(rest)
            return
        await self._journaled(self.text, outcome.note)
        for _ in range(STOP_ATTEMPTS):
            try:
                async with self._budgets.stop.slot(final=True):
                    await self._stop_stream(wire)
                self._sent += len(rest)
                await self._closed()
                return
            except PlatformRateLimitedError as exc:
                self._budgets.stop.block_for(exc.retry_after)
            except PlatformError as exc:
                if slack_error_code(exc) == "stopped_by_user":
                    await self._user_stop()
                    return
                log.warning("stopStream failed (%s); posting the rest", exc)
                break
        await self._recover_expired(live=True)

    async def _stop_stream(self, wire: str) -> None:
        assert self._ts is not None
        await self._api.call(
            "chat.stopStream",
            channel=self._place.channel,
            ts=self._ts,
            markdown_text=wire or None,
        )

    # -- leaving native streaming ------------------------------------------------------------
    async def _rotate(self, candidate: str) -> None:
        """Close this segment before Slack's limits with as much of ``candidate`` as fits;
        the rest continues in a new message."""
        head = self._head_that_fits(candidate)
        wire = neutralize_broadcasts(head)
        closer = fence_closer(self.text[: self._sent + len(head)])
        log.info("rotating native stream %s at %d chars", self._ts, self._segment_chars + len(wire))
        await self._journaled(self.text[: self._sent + len(head)])
        try:
            async with self._budgets.stop.slot(final=True):
                await self._stop_stream(wire + closer)
        except PlatformError as exc:
            if slack_error_code(exc) == "stopped_by_user":
                await self._user_stop()
                return
            log.info("stopStream on rotation failed (%s)", exc)
            await self._recover_expired(live=True)
            return
        self._sent += len(head)
        await self._closed()
        self._switch_to_fallback("rotation", reopen=True)

    def _head_that_fits(self, candidate: str) -> str:
        """The longest markdown-safe prefix of ``candidate`` the segment still has room for."""
        room = self._max_chars - self._segment_chars - ROTATION_MARGIN_CHARS
        if room < MIN_MAX_CHARS or not candidate:
            return ""
        if len(candidate) <= room:
            return candidate
        return split_text(candidate, room)[0].body

    async def _recover_expired(self, *, live: bool = False) -> None:
        """The stream takes no more appends (expired, or a write to it failed while it is
        ``live``): end it with exactly its confirmed text and continue elsewhere."""
        if self._ts is not None and self._sent > 0:
            # The rest moves on: a restart must not pin it here too (after a failed stop).
            await self._journaled(self.text[: self._sent])
            if await self._end_as_confirmed(live=live):
                await self._closed()
        self._switch_to_fallback("stream expired", reopen=True)

    async def _end_as_confirmed(self, *, live: bool) -> bool:
        """Pin the confirmed text (exact even if a failed append landed after all); where
        ``chat.update`` cannot hold that much, a live stream is stopped as it stands and an
        expired one keeps what it streamed. False: it stays journaled for the next start."""
        confirmed = self.text[: self._sent]
        pinned = pinned_text(confirmed)
        if live and len(pinned) > SLACK_UPDATE_MAX_CHARS:
            return await self._stop_as_it_stands(confirmed)
        try:
            await self._pin(pinned)
            return True
        except PlatformError as exc:
            if live:
                log.warning("could not pin the native message to its confirmed text: %s", exc)
                return await self._stop_as_it_stands(confirmed)
            if slack_error_code(exc) == "msg_too_long":
                log.info("native message %s keeps what it streamed", self._ts)
                return True
            log.warning("could not pin the native message to its confirmed text: %s", exc)
            return False

    async def _stop_as_it_stands(self, confirmed: str) -> bool:
        try:
            async with self._budgets.stop.slot(final=True):
                await self._stop_stream(fence_closer(confirmed))
            return True
        except PlatformError as exc:
            log.warning("could not end the native message: %s", exc)
            return False

    async def _pin(self, markdown_text: str) -> None:
        """Set the whole text of the native message, which no longer streams (chat.update)."""
        async with self._budgets.update.slot(final=True):
            await self._api.call(
                "chat.update", channel=self._place.channel, ts=self._ts, markdown_text=markdown_text
            )

    def _switch_to_fallback(self, reason: str, *, reopen: bool = False) -> None:
        """Hand the unconfirmed remainder to a post + update message (atomically)."""
        log.debug("slack answer continues with post + update: %s", reason)
        fallback = self._make_fallback()
        reopener = fence_reopener(self.text[: self._sent]) if reopen else ""
        rest = self.text[self._sent :]
        if reopener and rest.strip():
            rest = reopener + rest
        if rest:
            fallback.append(rest)
        self._fallback = fallback
        self._chunks[:] = [self.text[: self._sent]]

    async def _user_stop(self) -> None:
        """Slack's stop control ended the stream: finish the answer as stopped, here."""
        log.info("user stopped the native stream %s", self._ts)
        self._user_stopped = True
        if self._outcome is None:
            # The relay still streams into this message, so it ends the turn as stopped
            # without a notice of its own; once it is finishing us the answer is over anyway.
            self._on_stopped_by_user()
        end = NativeEnd(self.text[: self._sent], self._sent, Outcome.STOPPED.note)
        try:
            await self._pin(end.whole)
        except PlatformError as exc:  # e.g. above chat.update's size limit: the note alone
            log.info("could not end the stopped native message (%s); posting the note", exc)
            await self._post_note(end.note)
        await self._closed()

    async def _post_note(self, note: str) -> None:
        try:
            async with self._budgets.post(self._place.channel).slot(final=True):
                await self._api.call(
                    "chat.postMessage",
                    channel=self._place.channel,
                    thread_ts=self._place.thread_ts,
                    markdown_text=note,
                )
        except PlatformError as exc:
            log.warning("could not post the stopped note: %s", exc)

    def _note_start_failure(self, exc: PlatformError) -> None:
        code = slack_error_code(exc)
        if code in NATIVE_UNAVAILABLE:
            self._switch.disable(code)
        elif isinstance(exc, PlatformRateLimitedError):
            self._budgets.start.block_for(exc.retry_after)
        else:
            log.warning("startStream failed: %s", exc)
