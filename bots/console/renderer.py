"""ConsoleRenderer: a conversation in a terminal (or a pipe).

Streamed text is written as it arrives — a terminal appends, so no pacing is needed. On a
TTY the typing cue and notes are dimmed with ANSI; on a pipe the output is plain text.
Buttons of the latest choice/card are numbered; the chat loop maps a typed number to them.
Text from Voiceflow is shown without control characters or escape sequences: an agent (or
its LLM) must not be able to recolour, retitle or beep the user's terminal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TextIO

from core.platform import ButtonRef, Outcome
from core.traces import Card, Visual

__all__ = ["ConsoleRenderer", "ConsoleStream", "shown"]

DIM = "\x1b[2m"
RESET = "\x1b[0m"
TYPING = "…"
#: A streamed chunk's unfinished escape sequence waits for the next chunk up to this length.
MAX_HELD_ESCAPE_CHARS = 256

# ESC-introduced sequences go whole: CSI (ESC [ … final), OSC (ESC ] … BEL or ESC \) and the
# two-character escapes, so no fragment of one is shown. Then C0 but tab and newline, DEL, C1.
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[ -/]*[0-~])")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# An escape sequence cut off by the end of a chunk (LLM chunks split anywhere).
_CUT_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[ -/]*)?\Z")


def shown(text: str) -> str:
    """``text`` fit for the terminal: no escape sequences, no control characters but \\n, \\t."""
    return _CONTROL.sub("", _ESCAPE.sub("", text))


class _Output:
    """The conversation's output; quiet once its reader has gone (``vf-bridge chat | head``).

    While the prompt waits for the user, output that comes anyway (a no-reply timer's turn)
    first erases the prompt line; the prompt is shown again once that output is whole
    (:meth:`restore_prompt`), so the user is never left typing on an answer's last line.
    """

    def __init__(self, out: TextIO, on_closed: Callable[[], object]) -> None:
        self._out = out
        self._on_closed = on_closed
        self.is_closed = False
        self._prompt = ""  # shown, waiting for the user
        self._erased_prompt = ""  # erased by output, to be shown again

    def prompt(self, prompt: str) -> None:
        self.write(prompt)
        self._prompt, self._erased_prompt = prompt, ""

    def answered(self) -> None:
        self._prompt = self._erased_prompt = ""

    def restore_prompt(self) -> None:
        """Show an erased prompt again, right under the output (without the blank line it
        keeps from the answer before: several late lines must not be spaced apart)."""
        prompt, self._erased_prompt = self._erased_prompt.lstrip("\n"), ""
        if prompt:
            self.prompt(prompt)

    def write(self, text: str) -> None:
        if self.is_closed:
            return
        if self._prompt:
            self._prompt, self._erased_prompt = "", self._prompt
            text = "\r\x1b[K" + text
        try:
            self._out.write(text)
            self._out.flush()
        except BrokenPipeError:
            self.is_closed = True
            self._on_closed()


class ConsoleStream:
    def __init__(self, out: _Output, *, ansi: bool) -> None:
        self._out = out
        self._ansi = ansi
        self._ends_with_newline = True
        self._held = ""  # the start of an escape sequence the next chunk may complete
        self.text = ""

    def append(self, text: str) -> None:
        self.text += text
        text, self._held = self._held + text, ""
        cut = _CUT_ESCAPE.search(text)
        if cut is not None and len(text) - cut.start() <= MAX_HELD_ESCAPE_CHARS:
            text, self._held = text[: cut.start()], text[cut.start() :]
        text = shown(text)
        if text:
            self._out.write(text)
            self._ends_with_newline = text.endswith("\n")

    async def finish(self, outcome: Outcome = Outcome.COMPLETE) -> None:
        rest, self._held = shown(self._held), ""
        if rest:
            self._out.write(rest)
            self._ends_with_newline = rest.endswith("\n")
        if outcome is not Outcome.COMPLETE:
            note = f"{DIM}{outcome.note}{RESET}" if self._ansi else outcome.note
            self._out.write(("" if self._ends_with_newline else "\n") + note)
            self._ends_with_newline = False
        if not self._ends_with_newline:
            self._out.write("\n")
        self._out.restore_prompt()


class ConsoleRenderer:
    typing_refresh_s = 3600.0

    def __init__(
        self, out: TextIO, *, ansi: bool, on_closed: Callable[[], object] = lambda: None
    ) -> None:
        """``on_closed`` is called once if ``out`` is a pipe whose reader went away."""
        self._out = _Output(out, on_closed)
        self._ansi = ansi
        self._typing_shown = False
        #: The buttons a typed number refers to (the latest set shown).
        self.buttons: list[ButtonRef] = []

    def prompt(self, prompt: str) -> None:
        """Show the input prompt (on a terminal) until :meth:`answered`; a typing cue the
        turn left (it showed nothing after it) goes first."""
        self._clear_typing()
        self._out.prompt(prompt)

    def answered(self) -> None:
        self._out.answered()

    @property
    def is_closed(self) -> bool:
        """Whether the output's reader went away: nothing written is seen any more."""
        return self._out.is_closed

    async def show_typing(self) -> None:
        if self._ansi and not self._typing_shown:
            self._out.write(f"{DIM}{TYPING}{RESET}")
            self._typing_shown = True

    def _clear_typing(self) -> None:
        if self._typing_shown:
            self._out.write("\r\x1b[K")
            self._typing_shown = False

    def start_stream(self, stop_id: str) -> ConsoleStream:
        self._clear_typing()
        return ConsoleStream(self._out, ansi=self._ansi)

    async def send_text(self, text: str) -> None:
        self._line(shown(text))

    async def send_buttons(self, buttons: list[ButtonRef]) -> None:
        self.buttons = list(buttons)
        for number, ref in enumerate(self.buttons, start=1):
            self._line(self._button_line(number, ref))

    async def send_cards(self, cards: list[tuple[Card, list[ButtonRef]]]) -> None:
        self.buttons = []
        for card, refs in cards:
            self._line(f"▣ {shown(card.title)}" if card.title else "▣")
            if card.description:
                self._line(f"  {shown(card.description)}")
            if card.image_url:
                self._line(f"  [image] {shown(card.image_url)}")
            for ref in refs:
                self.buttons.append(ref)
                self._line("  " + self._button_line(len(self.buttons), ref))

    async def send_image(self, visual: Visual) -> None:
        self._line(f"[image] {shown(visual.image_url)}")

    async def send_notice(self, text: str) -> None:
        """Our own note (it may quote Voiceflow, as a button's name does), dimmed on a TTY."""
        text = shown(text)
        self._line(f"{DIM}{text}{RESET}" if self._ansi else text)

    def _button_line(self, number: int, ref: ButtonRef) -> str:
        link = f" → {shown(ref.button.url)}" if ref.button.url else ""
        return f"[{number}] {shown(ref.button.name)}{link}"

    def _line(self, text: str) -> None:
        self._clear_typing()
        self._out.write(text + "\n")
        self._out.restore_prompt()
