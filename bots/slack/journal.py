"""Slack messages in flight, journaled with what they show, finalized after a crash.

Slack cannot read a message back without history scopes, so unlike Discord the journal keeps
the text each live message last showed (one store write per edit, ~1 per second). At startup
:func:`finalize_slack_dangling` turns every message a killed process left streaming into its
last text plus "⚠️ interrupted", without the Stop button.
"""

from __future__ import annotations

import logging
from typing import Any

from bots.slack.api import SlackApi
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

    async def showing(self, ts: str, text: str) -> None:
        self._texts[ts] = text
        await self._put(ts)

    async def opened(self, ts: str) -> None:
        await self._put(ts)

    async def closed(self, ts: str) -> None:
        self._texts.pop(ts, None)
        await self._store.drop_inflight(PLATFORM, self._id(ts))

    async def _put(self, ts: str) -> None:
        data = {"channel": self._channel, "ts": ts, "text": self._texts.get(ts, "")}
        await self._store.put_inflight(InFlight(self._id(ts), PLATFORM, data))


async def finalize_slack_dangling(store: Store, api: SlackApi) -> int:
    """Finalize every Slack message left streaming by a previous process (chat.update)."""

    async def finalize(data: dict[str, Any]) -> None:
        place = SlackPlace(
            team_id="",
            channel=str(data["channel"]),
            thread_ts=None,
            user_id="",
            user_team_id="",
            status_ts="",
        )
        text = interrupted_text(str(data.get("text") or ""))
        await SlackWriter(api, place).edit(str(data["ts"]), text, stop_id=None)

    return await finalize_dangling(store, PLATFORM, finalize)
