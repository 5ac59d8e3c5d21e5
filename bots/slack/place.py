"""Where a Slack conversation lives and whom the bot answers there."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SlackPlace"]


@dataclass(frozen=True)
class SlackPlace:
    """A channel, DM or thread the bot writes into for one turn.

    ``thread_ts`` is the thread the answer goes into (``None``: inline in a DM).
    ``status_ts`` is the message the status cue hangs on (the thread root, or the user's DM).
    """

    team_id: str
    channel: str
    thread_ts: str | None
    user_id: str
    #: The recipient's own team (differs from ``team_id`` in shared channels / Enterprise Grid).
    user_team_id: str
    status_ts: str

    @property
    def is_dm(self) -> bool:
        return self.channel.startswith("D")

    @property
    def conversation_place(self) -> str:
        """The ``place`` part of the conversation key: the channel, or ``channel:thread``."""
        return f"{self.channel}:{self.thread_ts}" if self.thread_ts else self.channel
