"""ConsoleRenderer: a conversation in a terminal (or a pipe).

Streamed text is written as it arrives — a terminal appends, so no pacing is needed. On a
TTY the typing cue and notes are dimmed with ANSI; on a pipe the output is plain text.
Buttons of the latest choice/card are numbered; the chat loop maps a typed number to them.
"""

from __future__ import annotations

from typing import TextIO

from core.platform import ButtonRef, Outcome
from core.traces import Card, Visual

__all__ = ["ConsoleRenderer", "ConsoleStream"]

DIM = "\x1b[2m"
RESET = "\x1b[0m"
TYPING = "…"


class ConsoleStream:
    def __init__(self, out: TextIO, *, ansi: bool) -> None:
        self._out = out
        self._ansi = ansi
        self._ends_with_newline = True
        self.text = ""

    def append(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()
        self.text += text
        self._ends_with_newline = text.endswith("\n")

    async def finish(self, outcome: Outcome = Outcome.COMPLETE) -> None:
        if outcome is not Outcome.COMPLETE:
            note = f"{DIM}{outcome.note}{RESET}" if self._ansi else outcome.note
            self._out.write(("" if self._ends_with_newline else "\n") + note)
            self._ends_with_newline = False
        if not self._ends_with_newline:
            self._out.write("\n")
        self._out.flush()


class ConsoleRenderer:
    typing_refresh_s = 3600.0

    def __init__(self, out: TextIO, *, ansi: bool) -> None:
        self._out = out
        self._ansi = ansi
        self._typing_shown = False
        #: The buttons a typed number refers to (the latest set shown).
        self.buttons: list[ButtonRef] = []

    async def show_typing(self) -> None:
        if self._ansi and not self._typing_shown:
            self._out.write(f"{DIM}{TYPING}{RESET}")
            self._out.flush()
            self._typing_shown = True

    def _clear_typing(self) -> None:
        if self._typing_shown:
            self._out.write("\r\x1b[K")
            self._typing_shown = False

    def start_stream(self, stop_id: str) -> ConsoleStream:
        self._clear_typing()
        return ConsoleStream(self._out, ansi=self._ansi)

    async def send_text(self, text: str) -> None:
        self._line(text)

    async def send_buttons(self, buttons: list[ButtonRef]) -> None:
        self.buttons = list(buttons)
        for number, ref in enumerate(self.buttons, start=1):
            self._line(self._button_line(number, ref))

    async def send_cards(self, cards: list[tuple[Card, list[ButtonRef]]]) -> None:
        self.buttons = []
        for card, refs in cards:
            self._line(f"▣ {card.title}" if card.title else "▣")
            if card.description:
                self._line(f"  {card.description}")
            if card.image_url:
                self._line(f"  [image] {card.image_url}")
            for ref in refs:
                self.buttons.append(ref)
                self._line("  " + self._button_line(len(self.buttons), ref))

    async def send_image(self, visual: Visual) -> None:
        self._line(f"[image] {visual.image_url}")

    async def send_notice(self, text: str) -> None:
        self._line(f"{DIM}{text}{RESET}" if self._ansi else text)

    def _button_line(self, number: int, ref: ButtonRef) -> str:
        link = f" → {ref.button.url}" if ref.button.url else ""
        return f"[{number}] {ref.button.name}{link}"

    def _line(self, text: str) -> None:
        self._clear_typing()
        self._out.write(text + "\n")
        self._out.flush()
