"""`vf-bridge chat`: talk to the agent in a terminal, or through a pipe.

Every input line is one turn; a number clicks the matching button of the last answer's set
(a click, like any new turn, retires that set: a number then is just text); ``/reset``
starts over; ``/quit`` or end of input exits. Lines are read in a worker thread so
the event loop keeps streaming while the user types.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bots.console.renderer import ConsoleRenderer
from core.bridge import Bridge, ConversationKey

__all__ = ["run_chat"]

CHAT_KEY = ConversationKey("console", "local", "terminal", "")
HELP = "Type a message. A number clicks a button; /reset starts over; /quit exits."


async def run_chat(
    bridge: Bridge, *, stdin: TextIO | None = None, out: TextIO | None = None
) -> int:
    """Run the terminal conversation until EOF or /quit; returns the exit code."""
    source = stdin or sys.stdin
    sink = out or sys.stdout
    interactive = source.isatty() and sink.isatty()
    renderer = ConsoleRenderer(sink, ansi=interactive)
    if interactive:
        sink.write(HELP + "\n")
    await bridge.launch(CHAT_KEY, renderer)
    while True:
        if interactive:
            sink.write("\n> ")
            sink.flush()
        line = await asyncio.to_thread(source.readline)
        if not line:
            return 0
        if not await _handle_line(bridge, renderer, line.strip()):
            return 0


async def _handle_line(bridge: Bridge, renderer: ConsoleRenderer, line: str) -> bool:
    if not line:
        return True
    if line in ("/quit", "/exit"):
        return False
    offered, renderer.buttons = renderer.buttons, []  # this turn retires the set shown
    if line == "/reset":
        await bridge.reset(CHAT_KEY)
        await renderer.send_notice("Conversation reset.")
        await bridge.launch(CHAT_KEY, renderer)
        return True
    if line.isdigit() and 1 <= int(line) <= len(offered):
        ref = offered[int(line) - 1]
        pressed = await bridge.lookup_button(ref.id)
        if pressed is not None:
            await renderer.send_notice(f"→ {ref.button.name}")
            await bridge.handle_button(pressed, renderer)
            return True
    await bridge.handle_message(CHAT_KEY, line, renderer)
    return True
