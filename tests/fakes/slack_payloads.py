"""Wire shapes the fake Slack sends: envelopes' payloads and the bot's own echo events.

Shapes follow docs/testing-with-fakes.md §3.3 and what real Slack delivers for message.*
subscriptions (bot posts carry `bot_id`; edits arrive as `message_changed`).
"""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.slack_model import FakeMessage

__all__ = [
    "APP_ID",
    "HUMAN_USER_ID",
    "changed_event",
    "deleted_event",
    "event_callback",
    "hello",
    "interaction_payload",
    "message_json",
    "posted_event",
    "slash_payload",
]

APP_ID = "A0001"
HUMAN_USER_ID = "UHUMAN"
LEGACY_TOKEN = "legacy-verification-token"


def message_json(msg: FakeMessage, team_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "message",
        "user": msg.user,
        "bot_id": msg.bot_id,
        "app_id": APP_ID,
        "text": msg.visible_text,
        "ts": msg.ts,
        "team": team_id,
        "bot_profile": {"id": msg.bot_id, "app_id": APP_ID, "name": "fakebot"},
    }
    if msg.thread_ts:
        body["thread_ts"] = msg.thread_ts
    if msg.blocks:
        body["blocks"] = msg.blocks
    return body


def _message_event(channel: str, event_ts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "channel": channel,
        "channel_type": "im" if channel.startswith("D") else "channel",
        "ts": event_ts,
        "event_ts": event_ts,
    }


def posted_event(msg: FakeMessage, team_id: str) -> dict[str, Any]:
    return {**_message_event(msg.channel, msg.ts), **message_json(msg, team_id)}


def changed_event(
    msg: FakeMessage, before: dict[str, Any], *, event_ts: str, team_id: str
) -> dict[str, Any]:
    after = {**message_json(msg, team_id), "edited": {"user": msg.user, "ts": event_ts}}
    return {
        **_message_event(msg.channel, event_ts),
        "subtype": "message_changed",
        "hidden": True,
        "message": after,
        "previous_message": before,
    }


def deleted_event(msg: FakeMessage, before: dict[str, Any], *, event_ts: str) -> dict[str, Any]:
    return {
        **_message_event(msg.channel, event_ts),
        "subtype": "message_deleted",
        "hidden": True,
        "deleted_ts": msg.ts,
        "previous_message": before,
    }


def event_callback(
    event: dict[str, Any], *, team_id: str, bot_user_id: str, event_id: str
) -> dict[str, Any]:
    """The events_api payload around `event`, authorized for the bot user."""
    authorization = {
        "team_id": team_id,
        "user_id": bot_user_id,
        "is_bot": True,
        "is_enterprise_install": False,
    }
    return {
        "token": LEGACY_TOKEN,
        "team_id": team_id,
        "api_app_id": APP_ID,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [authorization],
        "is_ext_shared_channel": False,
        "event": {"event_ts": event.get("ts", ""), **event},
    }


def interaction_payload(
    payload: dict[str, Any], *, team_id: str, trigger_id: str, response_url: str
) -> dict[str, Any]:
    """`payload` (block_actions by default) with the fields bolt needs filled in."""
    defaults = {
        "type": "block_actions",
        "token": LEGACY_TOKEN,
        "api_app_id": APP_ID,
        "team": {"id": team_id, "domain": "fake"},
        "user": {"id": HUMAN_USER_ID, "username": "human", "team_id": team_id},
        "is_enterprise_install": False,
        "trigger_id": trigger_id,
        "response_url": response_url,
    }
    return {**defaults, **payload}


def slash_payload(
    command: str,
    text: str,
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    trigger_id: str,
    response_url: str,
) -> dict[str, str]:
    return {
        "token": LEGACY_TOKEN,
        "team_id": team_id,
        "team_domain": "fake",
        "channel_id": channel_id,
        "channel_name": channel_id.lower(),
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def hello(num_connections: int) -> dict[str, Any]:
    return {
        "type": "hello",
        "num_connections": num_connections,
        "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
        "connection_info": {"app_id": APP_ID},
    }
