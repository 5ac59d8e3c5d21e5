"""TurnRelay against the recording platform, fed by scripted trace sequences (our seam)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from core.errors import (
    PlatformError,
    PlatformPermissionError,
    StreamInterruptedError,
    VoiceflowAuthError,
    VoiceflowUnavailableError,
)
from core.platform import ButtonRef, Outcome
from core.relay import AGENT_ERROR_NOTE, REFUSED_NOTE, TurnRelay
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
from tests.fakes.recording import Platform, RecordingRenderer

BUTTON = Button("Go", {"type": "path-1", "payload": {"label": "Go"}})


async def save(buttons: Sequence[Button]) -> list[ButtonRef]:
    return [ButtonRef(f"id{i}", b) for i, b in enumerate(buttons)]


async def script(*traces: Trace, error: Exception | None = None) -> AsyncIterator[Trace]:
    for trace in traces:
        yield trace
        await asyncio.sleep(0.001)
    if error is not None:
        raise error


def relay(renderer: RecordingRenderer) -> TurnRelay:
    return TurnRelay(renderer, save, stop_id="stop1")


def completion(text: str) -> list[Trace]:
    chunks = [Completion("content", text[i : i + 5]) for i in range(0, len(text), 5)]
    return [Completion("start"), *chunks, Completion("end")]


async def test_every_trace_is_rendered_in_order() -> None:
    renderer = RecordingRenderer(Platform(window_s=0.5))
    card = Card("T", "D", "https://x/i.png", (BUTTON,))
    traces = [
        Text("Hello"),
        *completion("First answer."),
        Choice((BUTTON,)),
        *completion("Second answer."),
        card,
        Carousel((card, card)),
        Visual("https://x/v.png"),
        Ignored("debug"),
        End(),
    ]
    result = await relay(renderer).run(script(*traces))
    kinds = [kind for kind, _ in renderer.events]
    assert kinds == ["text", "stream", "buttons", "stream", "cards", "cards", "image"]
    assert renderer.platform.visible() == ["First answer.", "Second answer."]
    assert result.ended and result.outcome is Outcome.COMPLETE
    carousel = renderer.events[5][1]
    assert isinstance(carousel, list) and len(carousel) == 2


async def test_content_without_start_opens_a_message() -> None:
    renderer = RecordingRenderer(Platform(window_s=0.5))
    await relay(renderer).run(script(Completion("content", "orphan text")))
    assert renderer.platform.visible() == ["orphan text"]


async def test_start_end_without_content_leaves_nothing() -> None:
    renderer = RecordingRenderer(Platform(window_s=0.5))
    await relay(renderer).run(script(Completion("start"), Completion("end")))
    assert renderer.platform.visible() == []


async def test_a_broken_stream_keeps_the_text_and_says_so() -> None:
    renderer = RecordingRenderer(Platform(window_s=0.5))
    traces = completion("Kept text")[:-1]
    result = await relay(renderer).run(script(*traces, error=StreamInterruptedError("eof")))
    assert result.outcome is Outcome.INTERRUPTED and result.retryable
    assert renderer.platform.visible() == [f"Kept text\n\n{Outcome.INTERRUPTED.note}"]


async def test_an_agent_failure_mid_answer_ends_it_as_interrupted() -> None:
    """A runtime crash (a debug trace, then end) cuts the answer short: it says so."""
    renderer = RecordingRenderer(Platform(window_s=0.5))
    crash = AgentError("An internal error occurred.")
    traces = [*completion("Kept text")[:-1], crash, End()]
    result = await relay(renderer).run(script(*traces))
    assert result.outcome is Outcome.INTERRUPTED and result.ended and result.retryable
    assert renderer.platform.visible() == [f"Kept text\n\n{Outcome.INTERRUPTED.note}"]
    assert ("notice", AGENT_ERROR_NOTE) not in renderer.events


async def test_an_agent_failure_before_any_answer_is_a_notice() -> None:
    renderer = RecordingRenderer(Platform(window_s=0.5))
    result = await relay(renderer).run(script(AgentError("ERROR: turn timeout"), End()))
    assert ("notice", AGENT_ERROR_NOTE) in renderer.events
    assert result.outcome is Outcome.INTERRUPTED


async def test_refusal_before_output_becomes_a_notice() -> None:
    renderer = RecordingRenderer(Platform(window_s=0.5))
    result = await relay(renderer).run(script(error=VoiceflowAuthError("401")))
    assert ("notice", VoiceflowAuthError.user_message) in renderer.events
    assert isinstance(result.error, VoiceflowAuthError)
    assert not result.retryable  # sending it again would be refused again


async def test_an_unavailable_agent_is_worth_a_retry() -> None:
    renderer = RecordingRenderer(Platform(window_s=0.5))
    result = await relay(renderer).run(script(error=VoiceflowUnavailableError("503")))
    assert ("notice", VoiceflowUnavailableError.user_message) in renderer.events
    assert result.retryable


async def test_stop_closes_the_upstream_and_finalizes_as_stopped() -> None:
    renderer = RecordingRenderer(Platform(window_s=0.5))
    closed = asyncio.Event()
    streaming = asyncio.Event()

    async def endless() -> AsyncIterator[Trace]:
        try:
            yield Completion("start")
            yield Completion("content", "Some words ")
            streaming.set()
            await asyncio.Event().wait()
            yield Completion("end")
        finally:
            closed.set()

    turn = relay(renderer)
    task = asyncio.create_task(turn.run(endless()))
    await streaming.wait()
    turn.stop()
    result = await task
    assert closed.is_set()
    assert result.outcome is Outcome.STOPPED and not result.retryable
    assert renderer.platform.visible() == [f"Some words \n\n{Outcome.STOPPED.note}"]


async def test_typing_shows_until_the_first_output_only() -> None:
    renderer = RecordingRenderer(Platform(window_s=0.5))
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[Trace]:
        await gate.wait()
        yield Text("late")

    task = asyncio.create_task(relay(renderer).run(slow()))
    for _ in range(2):  # shown, then refreshed while Voiceflow is silent
        renderer.typing_shown.clear()
        await renderer.typing_shown.wait()
    gate.set()
    await task
    count = renderer.typing
    await asyncio.sleep(renderer.typing_refresh_s * 2)
    assert renderer.typing == count


async def test_no_reply_timeout_is_reported() -> None:
    renderer = RecordingRenderer(Platform(window_s=0.5))
    result = await relay(renderer).run(script(Text("Still there?"), NoReply(4.0)))
    assert result.no_reply_timeout_s == 4.0


async def test_static_text_can_be_fake_streamed() -> None:
    renderer = RecordingRenderer(Platform(window_s=0.5))
    turn = TurnRelay(renderer, save, stop_id="s", stream_static_text=True)
    await turn.run(script(Text("A static message with several words.")))
    assert renderer.platform.visible() == ["A static message with several words."]
    assert [k for k, _ in renderer.events] == ["stream"]


@pytest.mark.parametrize("still_reading", [False, True])
async def test_stop_during_fake_streamed_text_ends_it_as_stopped(still_reading: bool) -> None:
    """Both when Voiceflow has sent everything already and while it is still sending."""
    words = " ".join(f"word{i}" for i in range(200))
    renderer = RecordingRenderer(Platform(window_s=0.5))
    turn = TurnRelay(renderer, save, stop_id="s", stream_static_text=True)

    async def traces() -> AsyncIterator[Trace]:
        yield Text(words)
        if still_reading:
            await asyncio.Event().wait()
        yield Text("after the stop")

    task = asyncio.create_task(turn.run(traces()))
    while not renderer.platform.visible():
        renderer.platform.changed.clear()
        await renderer.platform.changed.wait()
    turn.stop()
    result = await task
    assert result.outcome is Outcome.STOPPED
    (shown,) = renderer.platform.visible()  # one message, no second notice
    text, _, note = shown.rpartition("\n\n")
    assert note == Outcome.STOPPED.note
    assert words.startswith(text) and 0 < len(text) < len(words)


class GatedRenderer(RecordingRenderer):
    """Buttons wait for ``gate`` (a slow or rate-limited platform), or fail with ``error``."""

    def __init__(self, platform: Platform, error: Exception | None = None) -> None:
        super().__init__(platform)
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self.error = error

    async def send_buttons(self, buttons: list[ButtonRef]) -> None:
        self.waiting.set()
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        await super().send_buttons(buttons)


async def test_reading_never_waits_on_the_platform() -> None:
    renderer = GatedRenderer(Platform(window_s=0.5))
    read_all = asyncio.Event()

    async def traces() -> AsyncIterator[Trace]:
        for trace in [*completion("Before."), Choice((BUTTON,)), *completion("After."), End()]:
            yield trace
        read_all.set()

    task = asyncio.create_task(relay(renderer).run(traces()))
    await renderer.waiting.wait()
    await asyncio.wait_for(read_all.wait(), 5)  # the whole stream, buttons still blocked
    assert not task.done() and renderer.platform.visible() == ["Before."]
    renderer.gate.set()
    result = await task
    assert [kind for kind, _ in renderer.events] == ["stream", "buttons", "stream"]
    assert renderer.platform.visible() == ["Before.", "After."]
    assert result.ended and result.outcome is Outcome.COMPLETE


async def test_a_refused_message_is_skipped_visibly_and_the_turn_goes_on() -> None:
    renderer = GatedRenderer(Platform(window_s=0.5), error=PlatformError("400 bad form"))
    renderer.gate.set()
    traces = [*completion("Before."), Choice((BUTTON,)), *completion("After."), End()]
    result = await relay(renderer).run(script(*traces))
    assert ("notice", REFUSED_NOTE) in renderer.events
    assert renderer.platform.visible() == ["Before.", "After."]
    assert result.ended and result.outcome is Outcome.COMPLETE


async def test_a_missing_permission_ends_the_turn_and_the_upstream() -> None:
    renderer = GatedRenderer(Platform(window_s=0.5), error=PlatformPermissionError("403"))
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[Trace]:
        try:
            yield Choice((BUTTON,))
            await asyncio.Event().wait()
            yield End()
        finally:
            closed.set()

    task = asyncio.create_task(relay(renderer).run(endless()))
    await renderer.waiting.wait()
    renderer.gate.set()
    result = await asyncio.wait_for(task, 5)
    assert closed.is_set()
    assert result.outcome is Outcome.INTERRUPTED
    assert ("notice", Outcome.INTERRUPTED.note) in renderer.events
