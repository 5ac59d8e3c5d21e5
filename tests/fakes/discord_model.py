"""State and wire payloads of the fake Discord: recorded requests, messages, interactions, guild.

Payload shapes follow docs/testing-with-fakes.md §2.2/§2.3 (verified against discord.py 2.7.1).
Snowflakes are strings on the wire, as Discord sends them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GUILD_ID = "4000"
TEXT_CHANNEL_ID = "3000"
SECOND_CHANNEL_ID = "3001"
THREAD_ID = "3500"
DM_CHANNEL_ID = "5000"
HUMAN_ID = "2000"
#: The role Discord makes for a bot when it joins a guild (managed, tagged with its id).
BOT_ROLE_ID = "4100"
#: A second guild, on shard 1 of 2 (``(id >> 22) % 2``; GUILD_ID is on shard 0), with one
#: text channel and its own bot role.
OTHER_GUILD_ID = str(1 << 22)
OTHER_GUILD_CHANNEL_ID = "3200"
OTHER_BOT_ROLE_ID = str((1 << 22) + 100)

PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message content
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
MESSAGE_TYPE_DEFAULT = 0
MESSAGE_TYPE_REPLY = 19

_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Snowflakes:
    """Increasing ids shared by messages and interactions (ordering matches creation order)."""

    def __init__(self, start: int = 1_100_000_000_000_000_000) -> None:
        self._next = itertools.count(start)

    def new(self) -> str:
        return str(next(self._next))


@dataclass
class Recorded:
    """One REST request as the fake saw it; `route` is its template, e.g.
    "POST /channels/{id}/messages"; `t` is loop time (monotonic) at arrival."""

    method: str
    path: str
    route: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    status: int
    t: float


@dataclass
class FakeMessage:
    """Current state of one message. `edits` holds the content after each edit, in order."""

    id: str
    channel_id: str
    guild_id: str | None
    author: dict[str, Any]
    content: str = ""
    components: list[Any] = field(default_factory=list)
    embeds: list[Any] = field(default_factory=list)
    flags: int = 0
    nonce: str | int | None = None
    message_reference: dict[str, Any] | None = None
    allowed_mentions: dict[str, Any] | None = None
    mentions: list[dict[str, Any]] = field(default_factory=list)
    webhook_id: str | None = None
    deleted: bool = False
    edits: list[str] = field(default_factory=list)
    timestamp: str = field(default_factory=now_iso)
    edited_timestamp: str | None = None

    @property
    def author_id(self) -> str:
        return str(self.author["id"])

    def apply(self, body: dict[str, Any]) -> None:
        """Apply the editable fields present in a create/edit body."""
        if "content" in body:
            self.content = body["content"] or ""
        for key in ("components", "embeds"):
            if key in body:
                setattr(self, key, body[key] or [])
        if body.get("allowed_mentions") is not None:
            self.allowed_mentions = body["allowed_mentions"]
        if body.get("flags") is not None:
            self.flags = int(body["flags"])


def user_payload(user_id: str, *, bot: bool = False, name: str | None = None) -> dict[str, Any]:
    username = name or ("human" if user_id == HUMAN_ID else f"user{user_id}")
    return {
        "id": user_id,
        "username": username,
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "bot": bot,
    }


def member_payload(user: dict[str, Any] | None = None) -> dict[str, Any]:
    member: dict[str, Any] = {
        "roles": [],
        "joined_at": "2025-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
    }
    if user is not None:
        member["user"] = user
    return member


def mentioned_ids(content: str) -> list[str]:
    return _MENTION.findall(content)


def message_payload(
    msg: FakeMessage, messages: dict[str, FakeMessage], *, event: bool = False
) -> dict[str, Any]:
    """Full message object; gateway events (`event=True`) also carry guild_id and member."""
    data: dict[str, Any] = {
        "id": msg.id,
        "channel_id": msg.channel_id,
        "author": msg.author,
        "content": msg.content,
        "timestamp": msg.timestamp,
        "edited_timestamp": msg.edited_timestamp,
        "tts": False,
        "mention_everyone": False,
        "mentions": msg.mentions,
        "mention_roles": _ROLE_MENTION.findall(msg.content),
        "attachments": [],
        "embeds": msg.embeds,
        "components": msg.components,
        "pinned": False,
        "type": MESSAGE_TYPE_DEFAULT,
        "flags": msg.flags,
    }
    if msg.nonce is not None:
        data["nonce"] = msg.nonce
    if msg.webhook_id is not None:
        data["webhook_id"] = msg.webhook_id
    if msg.message_reference is not None:
        data["type"] = MESSAGE_TYPE_REPLY
        data["message_reference"] = msg.message_reference
        parent = messages.get(str(msg.message_reference.get("message_id")))
        if parent is not None and not parent.deleted:
            data["referenced_message"] = message_payload(parent, {})
    if event and msg.guild_id is not None:
        data["guild_id"] = msg.guild_id
        data["member"] = member_payload()
    return data


@dataclass
class InteractionState:
    """What the bot did with one dispatched interaction (times are loop-monotonic seconds)."""

    id: str
    token: str
    type: int
    channel_id: str
    guild_id: str | None
    dispatched_t: float
    message_id: str | None = None
    responded: bool = False
    response_type: int | None = None
    response_body: dict[str, Any] | None = None
    response_after_s: float | None = None
    original_message_id: str | None = None
    followups: list[str] = field(default_factory=list)
