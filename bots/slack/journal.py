"""Slack messages in flight, journaled with what they show, finalized after a crash.

Slack cannot read a message back without history scopes, so unlike Discord the journal keeps
what each live message shows. A post + update message records its text before each edit
(~1 write a second), the last time with its final text. A native stream records a
:class:`~bots.slack.native_ending.NativeEnd`: the text Slack confirmed, after its start and
after each successful ``chat.appendStream`` (one small write per append, bounded by the
workspace's append budget), and before its final ``chat.stopStream`` the whole answer with
its note. At startup :func:`finalize_slack_dangling` turns every message a killed process left
streaming into its text plus "⚠️ interrupted" (or its final text, if that edit was under way),
without the Stop button; a native one is stopped, or pinned if Slack expired it meanwhile.
"""

from __future__ import annotations

import logging
from typing import Any

from bots.slack.api import SlackApi
from bots.slack.native_ending import NativeEnd, finalize_native
from bots.slack.place import SlackPlace
from bots.slack.writer import SlackWriter
from core.live_messages import interrupted_text
from core.recovery import finalize_dangling
from core.store import InFlight, Store

__all__ = ["PLATFORM", "SlackJournal", "finalize_slack_dangling"]

log = logging.getLogger(__name__)

PLATFORM = "slack"


class SlackJournal:
    """A :class:`core.platform.Journal` for one channel that also records the shown text."""

    def __init__(self, store: Store, channel: str) -> None:
        self._store = store
        self._channel = channel
        self._texts: dict[str, str] = {}

    def _id(self, ts: str) -> str:
        return f"{PLATFORM}|{self._channel}|{ts}"

    async def showing(self, ts: str, text: str, is_final: bool = False) -> None:
        self._texts[ts] = text
        await self._put(ts, text, {"final": True} if is_final else None)

    async def opened(self, ts: str) -> None:
        await self._put(ts, self._texts.get(ts, ""))

    async def streaming(self, ts: str, end: NativeEnd) -> None:
        """Native stream ``ts``: how the next start is to end it should the process die."""
        native = {"native": True, "sent": end.sent, "note": end.note}
        await self._put(ts, end.text, native)

    async def closed(self, ts: str) -> None:
        self._texts.pop(ts, None)
        await self._store.drop_inflight(PLATFORM, self._id(ts))

    async def _put(self, ts: str, text: str, extra: dict[str, Any] | None = None) -> None:
        data = {"channel": self._channel, "ts": ts, "text": text, **(extra or {})}
        await self._store.put_inflight(InFlight(self._id(ts), PLATFORM, data))


async def finalize_slack_dangling(store: Store, api: SlackApi) -> int:
    """Finalize every Slack message left streaming by a previous process."""

    async def finalize(data: dict[str, Any]) -> None:
        channel, ts, text = str(data["channel"]), str(data["ts"]), str(data.get("text") or "")
        if data.get("native"):
            end = NativeEnd(text, sent=int(data["sent"]), note=str(data["note"]))
            await finalize_native(api, channel, ts, end)
            return
        place = SlackPlace(
            team_id="",
            channel=channel,
            thread_ts=None,
            user_id="",
            user_team_id="",
            status_ts="",
        )
        final = text if data.get("final") else interrupted_text(text)  # the edit may have landed
        await SlackWriter(api, place).edit(ts, final, stop_id=None)

    return await finalize_dangling(store, PLATFORM, finalize)
