"""SlackWriter: the three raw message operations PacedMessage needs (post + update fallback).

A message that carries the stop button is a ``markdown`` block plus an actions block, with the
same text as notification fallback; every edit sends ``blocks`` too, because ``chat.update``
keeps the previous blocks when none are given (the stop button would outlive the answer). A
message posted without a stop control uses ``markdown_text``. All text is stripped of
broadcast mentions here, once, whatever path it took.
"""

from __future__ import annotations

from bots.slack.api import SlackApi
from bots.slack.blocks import markdown_blocks, plain_fallback
from bots.slack.mentions import neutralize_broadcasts
from bots.slack.place import SlackPlace

__all__ = ["SLACK_UPDATE_MAX_CHARS", "SlackWriter"]

#: chat.update refuses `text` above 4,000 characters (msg_too_long); keep headroom.
SLACK_UPDATE_MAX_CHARS = 3_900


class SlackWriter:
    """Implements :class:`core.platform.MessageWriter` for one place."""

    max_chars = SLACK_UPDATE_MAX_CHARS

    def __init__(self, api: SlackApi, place: SlackPlace) -> None:
        self._api = api
        self._place = place

    async def post(self, text: str, *, stop_id: str | None) -> str:
        text = neutralize_broadcasts(text)
        content: dict[str, object]
        content = {"markdown_text": text} if stop_id is None else self._with_blocks(text, stop_id)
        reply = await self._api.call(
            "chat.postMessage",
            channel=self._place.channel,
            thread_ts=self._place.thread_ts,
            **content,
        )
        return str(reply["ts"])

    async def edit(self, message_id: str, text: str, *, stop_id: str | None) -> None:
        text = neutralize_broadcasts(text)
        await self._api.call(
            "chat.update",
            channel=self._place.channel,
            ts=message_id,
            **self._with_blocks(text, stop_id),
        )

    async def delete(self, message_id: str) -> None:
        await self._api.call("chat.delete", channel=self._place.channel, ts=message_id)

    @staticmethod
    def _with_blocks(text: str, stop_id: str | None) -> dict[str, object]:
        return {"text": plain_fallback(text), "blocks": markdown_blocks(text, stop_id=stop_id)}
