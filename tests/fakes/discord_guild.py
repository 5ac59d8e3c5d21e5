"""The fixed world the fake Discord serves: two guilds, their channels and thread, one DM channel.

Guild "4000" (shard 0 of any count): text channels "3000" and "3001", public thread "3500"
(parent 3000). Guild "4194304" (shard 1 of 2): text channel "3200". Each has @everyone with
permissions "8" and its own bot role. DMs use channel "5000". Payload keys are the ones
discord.py 2.7 reads.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.discord_model import (
    BOT_ROLE_ID,
    DM_CHANNEL_ID,
    GUILD_ID,
    HUMAN_ID,
    OTHER_BOT_ROLE_ID,
    OTHER_GUILD_CHANNEL_ID,
    OTHER_GUILD_ID,
    SECOND_CHANNEL_ID,
    TEXT_CHANNEL_ID,
    THREAD_ID,
    member_payload,
    user_payload,
)

_JOINED = "2025-01-01T00:00:00+00:00"


def _text_channel(
    channel_id: str, name: str, position: int, guild_id: str = GUILD_ID
) -> dict[str, Any]:
    return {
        "id": channel_id,
        "type": 0,
        "guild_id": guild_id,
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "parent_id": None,
        "topic": None,
        "nsfw": False,
        "rate_limit_per_user": 0,
        "last_message_id": None,
    }


def _thread() -> dict[str, Any]:
    return {
        "id": THREAD_ID,
        "type": 11,
        "guild_id": GUILD_ID,
        "parent_id": TEXT_CHANNEL_ID,
        "owner_id": HUMAN_ID,
        "name": "a thread",
        "message_count": 0,
        "member_count": 1,
        "rate_limit_per_user": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": _JOINED,
            "locked": False,
        },
    }


def _dm_channel() -> dict[str, Any]:
    return {"id": DM_CHANNEL_ID, "type": 1, "recipients": [user_payload(HUMAN_ID)]}


CHANNELS: dict[str, dict[str, Any]] = {
    TEXT_CHANNEL_ID: _text_channel(TEXT_CHANNEL_ID, "general", 0),
    SECOND_CHANNEL_ID: _text_channel(SECOND_CHANNEL_ID, "random", 1),
    OTHER_GUILD_CHANNEL_ID: _text_channel(OTHER_GUILD_CHANNEL_ID, "lobby", 0, OTHER_GUILD_ID),
    THREAD_ID: _thread(),
    DM_CHANNEL_ID: _dm_channel(),
}


#: Each guild and the role Discord made for the bot there.
GUILDS: dict[str, str] = {GUILD_ID: BOT_ROLE_ID, OTHER_GUILD_ID: OTHER_BOT_ROLE_ID}


def guild_of(channel_id: str) -> str | None:
    """The guild a channel belongs to; unknown channels are treated as guild-less (DM-like)."""
    channel = CHANNELS.get(channel_id)
    return None if channel is None else channel.get("guild_id")


def bot_user(bot_user_id: str) -> dict[str, Any]:
    return user_payload(bot_user_id, bot=True, name="fakebot")


def application(application_id: str) -> dict[str, Any]:
    return {
        "id": application_id,
        "name": "fakeapp",
        "description": "",
        "icon": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": user_payload("2000", name="owner"),
        "verify_key": "00",
        "flags": 0,
    }


def shard_of(guild_id: str | None, shard_count: int) -> int:
    """The shard that receives a guild's events; DMs arrive on shard 0 (docs/discord.md §5)."""
    return 0 if guild_id is None else (int(guild_id) >> 22) % shard_count


def ready(
    bot_user_id: str,
    application_id: str,
    session_id: str,
    resume_url: str,
    shard: tuple[int, int] = (0, 1),
) -> dict[str, Any]:
    """READY of one session: it lists only the guilds of its shard."""
    guilds = [g for g in GUILDS if shard_of(g, shard[1]) == shard[0]]
    return {
        "v": 10,
        "user": bot_user(bot_user_id),
        "guilds": [{"id": g, "unavailable": True} for g in guilds],
        "session_id": session_id,
        "resume_gateway_url": resume_url,
        "shard": list(shard),
        "application": {"id": application_id, "flags": 0},
    }


def members(bot_user_id: str, guild_id: str = GUILD_ID) -> list[dict[str, Any]]:
    bot = member_payload(bot_user(bot_user_id))
    bot["roles"] = [GUILDS.get(guild_id, BOT_ROLE_ID)]
    return [bot, member_payload(user_payload(HUMAN_ID))]


def bot_role(bot_user_id: str, guild_id: str = GUILD_ID) -> dict[str, Any]:
    """The managed role Discord gives a bot in a guild; "@Bot" often autocompletes to it."""
    return {
        "id": GUILDS[guild_id],
        "name": "fakebot",
        "color": 0,
        "hoist": False,
        "position": 1,
        "permissions": "0",
        "managed": True,
        "mentionable": True,
        "flags": 0,
        "tags": {"bot_id": bot_user_id},
    }


def guild_create(bot_user_id: str, guild_id: str = GUILD_ID) -> dict[str, Any]:
    everyone = {
        "id": guild_id,
        "name": "@everyone",
        "color": 0,
        "hoist": False,
        "position": 0,
        "permissions": "8",
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }
    channels = [c for c in CHANNELS.values() if c.get("guild_id") == guild_id]
    return {
        "id": guild_id,
        "name": "Fake Guild" if guild_id == GUILD_ID else "Other Guild",
        "icon": None,
        "owner_id": HUMAN_ID,
        "unavailable": False,
        "member_count": 2,
        "large": False,
        "joined_at": _JOINED,
        "features": [],
        "roles": [everyone, bot_role(bot_user_id, guild_id)],
        "channels": [c for c in channels if c["type"] != 11],
        "threads": [c for c in channels if c["type"] == 11],
        "members": members(bot_user_id, guild_id),
        "emojis": [],
        "stickers": [],
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


#: Permission bit sets a clicking member may hold.
ADMINISTRATOR = "8"
MEMBER = str((1 << 10) | (1 << 11) | (1 << 16))  # view channel, send messages, read history
MODERATOR = str(int(MEMBER) | (1 << 13))  # and manage messages


def interaction(
    *,
    interaction_id: str,
    token: str,
    kind: int,
    application_id: str,
    channel_id: str,
    guild_id: str | None,
    user_id: str,
    data: dict[str, Any],
    message: dict[str, Any] | None = None,
    permissions: str = ADMINISTRATOR,
) -> dict[str, Any]:
    """INTERACTION_CREATE payload (type 2 application command, 3 component), per §2.3;
    ``permissions``: the member's resolved permissions in the channel (a bit set)."""
    channel = dict(CHANNELS.get(channel_id, {"id": channel_id, "type": 1}))
    payload: dict[str, Any] = {
        "id": interaction_id,
        "application_id": application_id,
        "type": kind,
        "token": token,
        "version": 1,
        "channel_id": channel_id,
        "channel": channel,
        "data": data,
        "app_permissions": "8",
        "locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {},
        "context": 0 if guild_id else 1,
        "attachment_size_limit": 10485760,
    }
    user = user_payload(user_id)
    if guild_id is not None:
        payload["guild_id"] = guild_id
        payload["member"] = {**member_payload(user), "permissions": permissions}
    else:
        payload["user"] = user
    if message is not None:
        payload["message"] = message
    return payload
