"""The terminal adapter: `vf-bridge chat`."""

from bots.console.chat import run_chat
from bots.console.renderer import ConsoleRenderer

__all__ = ["ConsoleRenderer", "run_chat"]
