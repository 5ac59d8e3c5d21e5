"""The turn relay: the one place that orders a turn's output.

Two tasks per turn, joined by an unbounded queue: the *reader* pulls typed traces from
Voiceflow as fast as they come and never waits on the platform; the *renderer* drives a
:class:`~core.platform.Renderer` in stream order — completion start → ``start_stream``,
content → ``append``, end → ``finish`` (which waits for the final edit); every other trace is
rendered whole. So a slow final edit or a rate-limited button post never holds the Voiceflow
stream, whose idle timeout keeps measuring Voiceflow alone.

The relay owns the typing cue (shown until the first output) and the stop control:
:meth:`TurnRelay.stop` cancels the reader, which closes the HTTP request itself; what was read
but not yet rendered is dropped, and the open message is finalized as stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.errors import (
    PlatformError,
    PlatformPermissionError,
    StreamInterruptedError,
    VoiceflowError,
    VoiceflowUnavailableError,
)
from core.platform import ButtonRef, Outcome, Renderer, StreamedMessage
from core.traces import (
    AgentError,
    Button,
    Card,
    Carousel,
    Choice,
    Completion,
    End,
    Ignored,
    NoReply,
    Text,
    Trace,
    Visual,
)

__all__ = ["ButtonSaver", "TurnRelay", "TurnResult"]

log = logging.getLogger(__name__)

ButtonSaver = Callable[[Sequence[Button]], Awaitable[list[ButtonRef]]]

#: Pace of fake-streamed static text (STREAM_STATIC_TEXT=true): one word every this often.
STATIC_WORD_DELAY_S = 0.02
#: Shown where the platform refused one whole message (an image URL it rejects, a card).
REFUSED_NOTE = "⚠️ A part of this answer could not be shown here."
#: Shown where the agent's runtime failed with no streamed message open to end as interrupted.
AGENT_ERROR_NOTE = "⚠️ The agent ran into an error. Please try again."
_WORD = re.compile(r"\S+\s*|\s+")


@dataclass
class TurnResult:
    ended: bool = False
    no_reply_timeout_s: float | None = None
    outcome: Outcome = Outcome.COMPLETE
    error: VoiceflowError | None = None
    shown_output: bool = False
    #: Seconds from the request to the first output (None: the turn showed nothing).
    first_output_s: float | None = None
    #: The agent's side failed (a broken stream, a crash, unavailable): the same request may
    #: well succeed if sent again — the bridge offers a Retry button. Never after a stop.
    retryable: bool = False


class TurnRelay:
    def __init__(
        self,
        renderer: Renderer,
        save_buttons: ButtonSaver,
        *,
        stop_id: str,
        stream_static_text: bool = False,
        tell_agent_error: bool = True,
    ) -> None:
        """``tell_agent_error=False``: an agent failure before any answer is only logged (a
        launch with the user's own turn right behind it, which says so if it fails too)."""
        self._renderer = renderer
        self._save_buttons = save_buttons
        self._stop_id = stop_id
        self._static = stream_static_text
        self._tell_agent_error = tell_agent_error
        self._stream: StreamedMessage | None = None
        self._reader: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[Trace | None] = asyncio.Queue()
        self._typing: asyncio.Task[None] | None = None
        self._stopped = False
        self._quiet = False
        self.result = TurnResult()
        self._started: float  # when run() began: the request to Voiceflow

    def stop(self, *, quiet: bool = False) -> None:
        """Cancel the Voiceflow request; the open message ends as stopped. ``quiet``: with
        no message open, say nothing (the question was withdrawn: nobody waits for a note)."""
        self._stopped = True
        self._quiet = self._quiet or quiet
        if self._reader is not None:
            self._reader.cancel()

    async def run(self, traces: AsyncIterator[Trace]) -> TurnResult:
        self._started = time.monotonic()
        self._typing = asyncio.create_task(self._keep_typing(), name="typing-cue")
        self._reader = asyncio.create_task(self._read(traces), name="voiceflow-reader")
        failure: Exception | None = None
        try:
            await self._render_all()
        except asyncio.CancelledError:  # shutdown: the message must not be left hanging
            self._reader.cancel()
            await asyncio.shield(self._close_stream(Outcome.INTERRUPTED))
            raise
        except Exception as exc:  # a platform failure ends this turn only
            failure = exc
            self._reader.cancel()
        finally:
            self._stop_typing()
        await asyncio.wait({self._reader})  # done already, unless rendering failed
        await self._conclude(self._reader, failure)
        self.result.retryable &= not self._stopped  # the user ended it: nothing to retry
        return self.result

    async def _conclude(self, reader: asyncio.Task[None], failure: Exception | None) -> None:
        exc = failure or (None if reader.cancelled() else reader.exception())
        if exc is None and reader.cancelled():
            noted = self.result.outcome is Outcome.STOPPED  # fake-streamed text ended so already
            self.result.outcome = Outcome.STOPPED if self._stopped else Outcome.INTERRUPTED
            notice = self._stopped and not noted and not self._quiet
            await self._close_stream(self.result.outcome, notice_if_none=notice)
        elif exc is None:
            await self._close_stream(Outcome.COMPLETE)
        elif isinstance(exc, StreamInterruptedError):
            log.warning("voiceflow stream interrupted: %s", exc)
            self.result.outcome = Outcome.INTERRUPTED
            self.result.error = exc
            self.result.retryable = True
            await self._close_stream(Outcome.INTERRUPTED, notice_if_none=True)
        elif isinstance(exc, VoiceflowError):
            log.error("Voiceflow failed the turn: %s", exc)
            self.result.error = exc
            self.result.retryable = isinstance(exc, VoiceflowUnavailableError)
            await self._close_stream(Outcome.INTERRUPTED)
            await self._renderer.send_notice(exc.user_message)
        else:
            log.error("turn failed", exc_info=exc)
            self.result.outcome = Outcome.INTERRUPTED
            await self._close_stream(Outcome.INTERRUPTED, notice_if_none=True)

    async def _close_stream(self, outcome: Outcome, *, notice_if_none: bool = False) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.finish(outcome)
        elif notice_if_none and outcome is not Outcome.COMPLETE:
            await self._renderer.send_notice(outcome.note)

    # -- reading and rendering -----------------------------------------------------------
    async def _read(self, traces: AsyncIterator[Trace]) -> None:
        try:
            async with contextlib.aclosing(traces):  # type: ignore[type-var]
                async for trace in traces:
                    self._inbox.put_nowait(trace)
        finally:
            self._inbox.put_nowait(None)  # however reading ended, rendering ends too

    async def _render_all(self) -> None:
        while (trace := await self._inbox.get()) is not None:
            if self._stopped:
                continue  # read before the stop, not wanted after it
            if not isinstance(trace, Ignored):
                self._first_output()
            await self._handle(trace)

    async def _handle(self, trace: Trace) -> None:
        match trace:
            case Completion(state="start"):
                await self._close_stream(Outcome.COMPLETE)
                self._stream = self._renderer.start_stream(self._stop_id)
            case Completion(state="content", content=content):
                if self._stream is None:  # content without start: open implicitly
                    self._stream = self._renderer.start_stream(self._stop_id)
                self._stream.append(content)
            case Completion(state="end"):
                await self._close_stream(Outcome.COMPLETE)
            case Text(message=message):
                await self._close_stream(Outcome.COMPLETE)
                await self._whole(self._text(message), "text")
            case AgentError(message=message):  # the answer so far ends as cut short
                log.warning("the agent failed mid-turn: %s", message)
                self.result.outcome = Outcome.INTERRUPTED
                self.result.retryable = True
                if self._stream is not None:
                    await self._close_stream(Outcome.INTERRUPTED)
                elif self._tell_agent_error:
                    await self._renderer.send_notice(AGENT_ERROR_NOTE)
            case _:
                await self._close_stream(Outcome.COMPLETE)
                await self._whole(self._render_other(trace), type(trace).__name__)

    async def _whole(self, rendering: Awaitable[None], what: str) -> None:
        """Render one whole message; one the platform refuses is skipped, visibly, and the
        turn goes on (the rest of the answer is not lost to one bad image). A missing
        permission ends the turn: nothing else could be shown either."""
        try:
            await rendering
        except PlatformPermissionError:
            raise
        except PlatformError as exc:
            log.warning("the platform refused a %s message (%s); the turn goes on", what, exc)
            try:
                await self._renderer.send_notice(REFUSED_NOTE)
            except PlatformError as again:
                log.warning("could not show that a message was refused: %s", again)

    async def _render_other(self, trace: Trace) -> None:
        match trace:
            case Choice(buttons=buttons):
                refs = await self._save_buttons(buttons)
                if refs:
                    await self._renderer.send_buttons(refs)
            case Card() as card:
                await self._renderer.send_cards([await self._card(card)])
            case Carousel(cards=cards):
                if cards:
                    await self._renderer.send_cards([await self._card(c) for c in cards])
            case Visual() as visual:
                await self._renderer.send_image(visual)
            case End():
                self.result.ended = True
            case NoReply(timeout_s=timeout_s):
                self.result.no_reply_timeout_s = timeout_s
            case Ignored(kind=kind):
                log.debug("ignored %s trace", kind)

    async def _card(self, card: Card) -> tuple[Card, list[ButtonRef]]:
        return card, await self._save_buttons(card.buttons)

    async def _text(self, message: str) -> None:
        if not message.strip():
            return
        if not self._static:
            await self._renderer.send_text(message)
            return
        stream = self._stream = self._renderer.start_stream(self._stop_id)
        for word in _WORD.findall(message):
            if self._stopped:  # the stop control: the message ends here, as stopped
                self.result.outcome = Outcome.STOPPED
                await self._close_stream(Outcome.STOPPED)
                return
            stream.append(word)
            await asyncio.sleep(STATIC_WORD_DELAY_S)
        await self._close_stream(Outcome.COMPLETE)

    # -- typing cue ----------------------------------------------------------------------
    def _first_output(self) -> None:
        if not self.result.shown_output:
            self.result.shown_output = True
            self.result.first_output_s = time.monotonic() - self._started
            self._stop_typing()

    def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()
            self._typing = None

    async def _keep_typing(self) -> None:
        while True:
            await self._renderer.show_typing()
            await asyncio.sleep(self._renderer.typing_refresh_s)
