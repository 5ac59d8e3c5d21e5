"""How a native stream's message ends: shared by the live stream and by startup recovery.

A native message ends with what Slack confirmed, then the rest of the answer and — unless it
completed — an open code fence closed and the outcome note. ``chat.stopStream`` appends that
ending. Once the stream expired (``message_not_in_streaming_state``, ~5 min, docs/slack.md §4)
only ``chat.update`` can change the message, so it gets the whole text instead, neutralized
like every streamed piece. Either way the user sees the same message, nothing doubled.

:class:`NativeEnd` is what the journal keeps of a live native message (:mod:`bots.slack.journal`)
and :func:`finalize_native` ends it at the next start, after the process died.
"""

from __future__ import annotations

from dataclasses import dataclass

from bots.slack.api import SlackApi
from bots.slack.mentions import neutralize_broadcasts
from core.errors import StreamExpiredError
from core.markdown import fence_closer
from core.platform import Outcome

__all__ = ["NativeEnd", "ending", "finalize_native", "pinned_text"]


def ending(text: str, note: str) -> str:
    """What follows ``text`` so that its message ends with ``note`` ("" for no note)."""
    if not note:
        return ""
    return f"{fence_closer(text)}\n\n{note}" if text.strip() else note


def pinned_text(confirmed: str) -> str:
    """What ``chat.update`` pins an expired message to while the rest moves on (fences closed)."""
    return neutralize_broadcasts(confirmed) + fence_closer(confirmed)


@dataclass(frozen=True)
class NativeEnd:
    """A native message is to end as ``text`` (source) + ``note``; Slack holds ``text[:sent]``."""

    text: str
    sent: int
    note: str = Outcome.INTERRUPTED.note

    @property
    def appended(self) -> str:
        """What ``chat.stopStream`` adds to the message."""
        return neutralize_broadcasts(self.text[self.sent :]) + ending(self.text, self.note)

    @property
    def whole(self) -> str:
        """The message's whole text, for ``chat.update``."""
        return neutralize_broadcasts(self.text) + ending(self.text, self.note)


async def finalize_native(api: SlackApi, channel: str, ts: str, end: NativeEnd) -> None:
    """End a native message a previous process left streaming.

    Stopping appends only what Slack does not hold yet; a stream Slack expired meanwhile — or
    that the previous process stopped just before it died — is pinned with ``chat.update``
    (a native segment stays below ``markdown_text``'s 12,000 characters, so its whole text
    fits one update). Raises :class:`~core.errors.PlatformError` for other failures.
    """
    appended = end.appended or None
    try:
        await api.call("chat.stopStream", channel=channel, ts=ts, markdown_text=appended)
    except StreamExpiredError:
        await api.call("chat.update", channel=channel, ts=ts, markdown_text=end.whole)
