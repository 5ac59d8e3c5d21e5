"""`vf-bridge chat`: talk to the agent in a terminal, or through a pipe.

Every input line is one turn; a number clicks the matching button of the last answer's set
(a click, like any new turn, retires that set: a number then is just text); ``/reset``
starts over; ``/quit`` or end of input exits. Lines are read in a daemon thread so the
event loop keeps streaming while the user types, and Ctrl-C at the prompt exits at once (a
worker of the loop's executor would hold the exit until the user pressed Enter).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import sys
import threading
from typing import TextIO

from bots.console.renderer import ConsoleRenderer
from core.bridge import Bridge, ConversationKey, Speaker

__all__ = ["run_chat"]

CHAT_KEY = ConversationKey("console", "local", "terminal", "")
#: Told to Voiceflow with each turn (VOICEFLOW_CONTEXT_VARIABLES): a one-person conversation.
SPEAKER = Speaker("console", "local", is_dm=True)
PROMPT = "\n> "
HELP = "Type a message. A number clicks a button; /reset starts over; /quit exits."


async def run_chat(
    bridge: Bridge, *, stdin: TextIO | None = None, out: TextIO | None = None
) -> int:
    """Run the terminal conversation until EOF or /quit; returns the exit code."""
    source = stdin or sys.stdin
    sink = out or sys.stdout
    if isinstance(source, io.TextIOWrapper):  # bytes that are not UTF-8: U+FFFD, no crash
        source.reconfigure(errors="replace")
    interactive = source.isatty() and sink.isatty()
    task = asyncio.current_task()
    assert task is not None
    # The reader of a pipe went away (`| head`): stop the answer now, not after it streamed.
    renderer = ConsoleRenderer(sink, ansi=interactive, on_closed=task.cancel)
    try:
        return await _converse(bridge, renderer, source, sink, interactive=interactive)
    except asyncio.CancelledError:
        if not renderer.is_closed:
            raise
        task.uncancel()
        raise BrokenPipeError(errno.EPIPE, "the chat's output was closed") from None


async def _converse(
    bridge: Bridge, renderer: ConsoleRenderer, source: TextIO, sink: TextIO, *, interactive: bool
) -> int:
    if interactive:
        sink.write(HELP + "\n")
    await bridge.launch(CHAT_KEY, renderer, speaker=SPEAKER)
    while True:
        if interactive:
            renderer.prompt(PROMPT)
        line = await _read_line(source)
        renderer.answered()
        if not line:
            return 0
        if not await _handle_line(bridge, renderer, line.strip()):
            return 0


async def _read_line(source: TextIO) -> str:
    """The next line of ``source`` ("" at its end), read in a daemon thread."""
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()

    def settle(text: str | None, error: BaseException | None) -> None:
        if line.done():
            return
        if error is not None:
            line.set_exception(error)
        else:
            line.set_result(text or "")

    def read() -> None:
        try:
            text, error = source.readline(), None
        except Exception as exc:
            text, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, text, error)

    threading.Thread(target=read, name="chat-input", daemon=True).start()
    return await line


async def _handle_line(bridge: Bridge, renderer: ConsoleRenderer, line: str) -> bool:
    if not line:
        return True
    if line in ("/quit", "/exit"):
        return False
    offered, renderer.buttons = renderer.buttons, []  # this turn retires the set shown
    if line == "/reset":
        await bridge.reset(CHAT_KEY)
        await renderer.send_notice("Conversation reset.")
        await bridge.launch(CHAT_KEY, renderer, speaker=SPEAKER)
        return True
    if line.isdigit() and 1 <= int(line) <= len(offered):
        ref = offered[int(line) - 1]
        pressed = await bridge.lookup_button(ref.id)
        if pressed is not None:
            await renderer.send_notice(f"→ {ref.button.name}")
            await bridge.handle_button(pressed, renderer, speaker=SPEAKER)
            return True
    await bridge.handle_message(CHAT_KEY, line, renderer, speaker=SPEAKER)
    return True
