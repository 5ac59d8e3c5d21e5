"""Which Slack events become turns (SPEC §4), decided cheaply and exactly once.

:class:`EventGate` runs before bolt's authorization (docs/slack.md §3): it drops edits,
deletions and other subtypes, every bot's messages (our own ``chat.update`` echoes included),
events from workspaces/channels not allowed, and Slack's retried deliveries (SPEC §4): any
delivery marked as a retry (:func:`is_retry`: HTTP ``X-Slack-Retry-Num``, Socket Mode
``retry_attempt``) and any ``event_id`` already seen (Slack retries after 3 s without an
ack, or up to hours later with Delayed Events). The ids are remembered in this process only;
the mark also catches a retry whose first attempt reached another process, or this one
before a restart.

:func:`deleted_message` reads a deletion before the gate drops it: a deleted question
withdraws its turn (the bridge stops its answer).

:func:`classify` turns an admitted event into an :class:`Incoming` turn or ``None``. A
mention in a channel arrives twice — as ``app_mention`` and as ``message`` — so the caller
claims ``(channel, ts)`` once with :class:`TtlSet` before running the turn.

The caches are in-process: with several processes behind one app, they belong in Redis
(``SET NX EX``) so that a redelivery to another process is still recognized.
"""

from __future__ import annotations

import html
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bots.slack.place import SlackPlace

__all__ = [
    "EVENT_TTL_S",
    "EventGate",
    "Incoming",
    "TtlSet",
    "classify",
    "deleted_message",
    "is_reset",
    "is_retry",
    "welcome_place",
]

#: How long an event id is remembered (Slack retries within ~5 min; Delayed Events for 24 h).
EVENT_TTL_S = 24 * 3600.0
#: How long a (channel, ts) stays claimed (the app_mention/message pair arrives together).
MESSAGE_TTL_S = 3600.0
MAX_REMEMBERED = 200_000
#: Message subtypes that still carry a user's words; everything else is dropped.
USER_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
TURN_EVENTS = frozenset({"app_mention", "message", "app_home_opened"})
#: Set by Slack on an HTTP redelivery; bolt's Socket Mode adapter copies the envelope's
#: ``retry_attempt`` into it (slack_bolt/adapter/socket_mode/internals.py), 0 on a first try.
RETRY_NUM_HEADER = "x-slack-retry-num"

Kind = Literal["mention", "dm", "thread"]


class TtlSet:
    """Remembers keys for ``ttl_s`` seconds; :meth:`add` says whether a key is new."""

    def __init__(
        self,
        ttl_s: float,
        *,
        max_items: int = MAX_REMEMBERED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_items = max_items
        self._clock = clock
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def add(self, key: Hashable) -> bool:
        """Remember ``key``; False if it was already remembered (and not expired)."""
        now = self._clock()
        self._expire(now)
        if key in self._seen:
            return False
        self._seen[key] = now + self._ttl_s
        return True

    def __contains__(self, key: object) -> bool:
        self._expire(self._clock())
        return key in self._seen

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` (it may be added again)."""
        self._seen.pop(key, None)

    def _expire(self, now: float) -> None:
        # Insertion order is expiry order (one TTL for every key).
        while self._seen and (
            next(iter(self._seen.values())) <= now or len(self._seen) > self._max_items
        ):
            self._seen.popitem(last=False)


class EventGate:
    """The early filter for ``event_callback`` bodies (see the module docstring)."""

    def __init__(
        self,
        *,
        bot_user_id: str,
        bot_id: str,
        allowed_workspaces: frozenset[str] = frozenset(),
        allowed_channels: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self._workspaces = allowed_workspaces
        self._channels = allowed_channels
        self._event_ids = TtlSet(EVENT_TTL_S, clock=clock)

    def reject_reason(self, body: dict[str, Any], *, retried: bool = False) -> str | None:
        """Why this body must not reach a listener, or None to let it through.

        ``retried``: the delivery is marked as a retry (:func:`is_retry`).
        """
        if body.get("type") != "event_callback":
            return None
        event = body.get("event") or {}
        reason = self._content_reason(event) or self._place_reason(body, event)
        if reason is not None:
            return reason
        if retried:
            return "retried delivery"
        event_id = body.get("event_id")
        if isinstance(event_id, str) and not self._event_ids.add(event_id):
            return "redelivered event"
        return None

    def _content_reason(self, event: dict[str, Any]) -> str | None:
        if event.get("type") not in TURN_EVENTS:
            return f"{event.get('type')} event"
        if event.get("subtype") not in USER_SUBTYPES:
            return f"message subtype {event.get('subtype')}"
        if event.get("bot_id") or event.get("bot_profile"):
            return "bot message"
        if not event.get("user") or event.get("user") == self.bot_user_id:
            return "own message"
        return None

    def _place_reason(self, body: dict[str, Any], event: dict[str, Any]) -> str | None:
        if self._workspaces and body.get("team_id") not in self._workspaces:
            return "workspace not allowed"
        channel = str(event.get("channel") or "")
        if self._channels and not channel.startswith("D") and channel not in self._channels:
            return "channel not allowed"
        return None


def deleted_message(body: dict[str, Any]) -> tuple[str, str, str] | None:
    """(team, channel, ts) of the message a ``message_deleted`` event reports, or None."""
    event = body.get("event") or {}
    if event.get("type") != "message" or event.get("subtype") != "message_deleted":
        return None
    team, channel, ts = body.get("team_id"), event.get("channel"), event.get("deleted_ts")
    if not (isinstance(team, str) and isinstance(channel, str) and isinstance(ts, str)):
        return None
    return team, channel, ts


def is_retry(headers: Mapping[str, Sequence[str]]) -> bool:
    """Is this request a Slack redelivery? ``headers`` as bolt normalizes them (lower case)."""
    values = headers.get(RETRY_NUM_HEADER) or ()
    return any(value.strip() not in ("", "0") for value in values)


@dataclass(frozen=True)
class Incoming:
    """A user message that starts a turn."""

    kind: Kind
    place: SlackPlace
    ts: str
    text: str


def classify(
    body: dict[str, Any],
    *,
    bot_user_id: str,
    in_known_thread: Callable[[str, str], bool],
) -> Incoming | None:
    """The turn an admitted event asks for, or None (not addressed to the bot)."""
    event: dict[str, Any] = body.get("event") or {}
    channel, ts = str(event.get("channel") or ""), str(event.get("ts") or "")
    thread_ts = event.get("thread_ts") or None
    if not channel or not ts:
        return None
    kind: Kind
    if event.get("type") == "app_mention":
        kind, root = "mention", thread_ts or ts
    elif event.get("channel_type") == "im":
        kind, root = "dm", thread_ts
    elif thread_ts and thread_ts != ts and in_known_thread(channel, thread_ts):
        kind, root = "thread", thread_ts
    else:
        return None
    team_id = str(body.get("team_id") or event.get("team") or "")
    user = str(event.get("user") or "")
    place = SlackPlace(
        team_id=team_id,
        channel=channel,
        thread_ts=root,
        user_id=user,
        user_team_id=str(event.get("user_team") or event.get("team") or team_id),
        status_ts=root or ts,
    )
    return Incoming(kind, place, ts, clean_text(str(event.get("text") or ""), bot_user_id))


def welcome_place(body: dict[str, Any]) -> SlackPlace | None:
    """Where to welcome a member who opened the bot's Messages tab (``app_home_opened``): their
    DM with it, inline; None for the Home tab or an event without a DM and a member."""
    event: dict[str, Any] = body.get("event") or {}
    channel, user = str(event.get("channel") or ""), str(event.get("user") or "")
    if event.get("tab") != "messages" or not channel.startswith("D") or not user:
        return None
    team_id = str(body.get("team_id") or event.get("team") or "")
    return SlackPlace(
        team_id=team_id,
        channel=channel,
        thread_ts=None,
        user_id=user,
        user_team_id=team_id,
        status_ts="",  # no message of the member's to hang a status on
    )


def clean_text(text: str, bot_user_id: str) -> str:
    """The user's words as Voiceflow should see them: no bot mention, Slack's markup as the
    words it shows (``<https://x.io|x.io>`` → ``https://x.io``, ``<#C1|general>`` →
    ``#general``, ``<@U1>`` → ``@U1``), no HTML entities."""
    text = re.sub(rf"[ \t]*<@{re.escape(bot_user_id)}(?:\|[^>]*)?>[ \t]*", " ", text)
    return html.unescape(_MARKUP.sub(_as_shown, text)).strip()


# `<target>` or `<target|label>`: links, user, channel and special mentions, dates.
_MARKUP = re.compile(r"<([^<>|\s]+)(?:\|([^<>]*))?>")


def _as_shown(match: re.Match[str]) -> str:
    target, label = match.group(1), match.group(2)
    kind, rest = target[:1], target[1:]
    if kind == "@":  # a user: the label when Slack gave one, else the id
        return f"@{(label or rest).lstrip('@')}"
    if kind == "#":
        return f"#{label or rest}"
    if kind == "!":  # <!here>, <!subteam^S1|@team>, <!date^…|fallback>
        return label if label else f"@{rest}"
    if target.startswith("mailto:"):
        return label or target.removeprefix("mailto:")
    if label and target.split("://", 1)[-1].rstrip("/") != label.rstrip("/"):
        return f"{label} ({target})"  # a link with its own words keeps both
    return target


def is_reset(text: str) -> bool:
    """The word ``reset`` addressed to the bot (SPEC §4), any case, with optional ``!``/``.``."""
    return text.strip().rstrip(".!").strip().lower() == "reset"
