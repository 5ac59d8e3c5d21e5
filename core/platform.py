"""The platform-neutral interface every adapter implements (Discord, Slack, console).

The turn relay (`core/relay.py`) talks to a platform only through these protocols:

* :class:`Renderer` — one per conversation place (DM, channel, thread): shows the typing cue,
  opens streamed messages and renders every non-streamed trace.
* :class:`StreamedMessage` — one growing answer. ``append`` never blocks; ``finish`` is awaited
  and leaves exactly the concatenated text (plus an outcome note) on the platform.
* :class:`MessageWriter` — the three raw operations an edit-based platform offers. Adapters
  that implement it get pacing, overflow splitting and fault handling for free from
  :class:`core.paced_message.PacedMessage`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from core.traces import Button, Card, Visual

__all__ = [
    "ButtonRef",
    "Journal",
    "MessageWriter",
    "Outcome",
    "Renderer",
    "StreamedMessage",
]


class Outcome(enum.Enum):
    """How a streamed message ended; every outcome but COMPLETE adds a visible note."""

    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    STOPPED = "stopped"

    @property
    def note(self) -> str:
        return _NOTES[self]


_NOTES = {
    Outcome.COMPLETE: "",
    Outcome.INTERRUPTED: "⚠️ interrupted",
    Outcome.STOPPED: "⏹️ stopped",
}


@dataclass(frozen=True)
class ButtonRef:
    """A button whose request is stored server-side under ``id`` (≤ 24 chars).

    Adapters put ``id`` into the platform's button id (Discord ``custom_id``, Slack
    ``action_id``/``value``); a click hands ``id`` back to ``Bridge.click``. Link buttons
    (``button.url``) open the URL; where the platform reports the click too (Slack), it is
    sent on as the stored request like any other (Discord sends no event for a link button).
    """

    id: str
    button: Button


class StreamedMessage(Protocol):
    def append(self, text: str) -> None:
        """Add streamed text. Never waits on the platform."""

    async def finish(self, outcome: Outcome = Outcome.COMPLETE) -> None:
        """Show exactly the appended text (plus the outcome's note); remove the stop control.

        Never raises for platform faults: text that cannot be edited in is posted anew.
        """


class Renderer(Protocol):
    """Renders a conversation's output in one place; created by the adapter for each turn."""

    #: Seconds between typing-cue refreshes before the first output (Discord 8, Slack 90).
    typing_refresh_s: float

    async def show_typing(self) -> None:
        """Show (or refresh) the typing/status cue. Best effort: never raises."""

    def start_stream(self, stop_id: str) -> StreamedMessage:
        """Open a streamed message at once (placeholder); ``stop_id`` goes on its stop control."""

    async def send_text(self, text: str) -> None:
        """A whole message (text/speak trace); markdown."""

    async def send_buttons(self, buttons: list[ButtonRef]) -> None:
        """A choice trace: the buttons, in order."""

    async def send_cards(self, cards: list[tuple[Card, list[ButtonRef]]]) -> None:
        """A cardV2 (one card) or carousel (several) with each card's buttons."""

    async def send_image(self, visual: Visual) -> None: ...

    async def send_notice(self, text: str) -> None:
        """A short system message for the user (errors, rate limits, reset confirmations)."""


class MessageWriter(Protocol):
    """Raw message operations of an edit-based platform, for :class:`PacedMessage`.

    Each method performs one request. Errors are mapped to the core tree:
    :class:`~core.errors.MessageGoneError` (message deleted),
    :class:`~core.errors.MessageTooLongError`, :class:`~core.errors.PlatformRateLimitedError`
    (with ``retry_after``) and :class:`~core.errors.PlatformError` for anything else.
    """

    #: Characters one message may hold (after the writer's own decoration).
    max_chars: int

    async def post(self, text: str, *, stop_id: str | None) -> str:
        """Create a message; returns its id. ``stop_id`` adds the stop control."""

    async def edit(self, message_id: str, text: str, *, stop_id: str | None) -> None:
        """Replace a message's text; ``stop_id=None`` removes the stop control."""

    async def delete(self, message_id: str) -> None: ...


class Journal(Protocol):
    """Where a streamed message records that it is live, so a crash can be cleaned up.

    ``opened`` is awaited after a message with a stop control is posted, ``closed`` after
    its final text is in. Whatever is still open at startup ended with the process.
    """

    async def opened(self, message_id: str) -> None: ...

    async def closed(self, message_id: str) -> None: ...
