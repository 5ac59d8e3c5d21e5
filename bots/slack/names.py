"""Members' display names for Voiceflow's ``bridge_user_name`` (core/bridge.py ``Speaker``).

Slack's events name a member only by id, so a name takes ``users.info`` (scope ``users:read``,
Tier 4). The lesson of ChatGPT-in-Slack (docs/slack.md §7) is to cache it, not to ask per
message:

* a name is kept for :data:`NAME_TTL_S`, a failed lookup for :data:`FAILED_TTL_S` (a 429 for
  its ``Retry-After``), at most :data:`MAX_NAMES` members, the least recently asked dropped;
* the lookup starts when the event arrives, so it overlaps the wait for the conversation's
  turn; the turn waits for it at most :data:`NAME_WAIT_S` and then goes on without a name,
  while the lookup finishes in the background for the member's next message;
* one lookup per member at a time, however many of their messages arrive meanwhile;
* a token without ``users:read`` (installed from an older manifest) is told once in the log,
  and no lookup is tried again in this process;
* at shutdown (:meth:`SlackNames.aclose`) lookups still waiting on Slack are cancelled.

A name is the member's display name, else their full name, else their username.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from bots.slack.api import SlackApi, slack_error_code
from core.errors import PlatformError, PlatformPermissionError, PlatformRateLimitedError

__all__ = ["NAME_WAIT_S", "SlackNames"]

log = logging.getLogger(__name__)

#: How long a turn waits for a name it does not know yet before it goes on without one.
NAME_WAIT_S = 0.5
NAME_TTL_S = 3600.0
FAILED_TTL_S = 300.0
MAX_NAMES = 10_000

_Member = tuple[str, str]  # team id, user id


class SlackNames:
    def __init__(self, api: SlackApi) -> None:
        self._api = api
        self._known: OrderedDict[_Member, tuple[float, str]] = OrderedDict()  # expiry, name
        self._asking: dict[_Member, asyncio.Task[str]] = {}
        self._no_scope = False

    def lookup(self, team_id: str, user_id: str) -> asyncio.Future[str]:
        """The member's name, or "" if it is unknown within :data:`NAME_WAIT_S`."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str] = loop.create_future()
        member = (team_id, user_id)
        known = self._known.get(member)
        if known is not None and known[0] > time.monotonic():
            self._known.move_to_end(member)
            answer.set_result(known[1])
            return answer
        if self._no_scope or not user_id:
            answer.set_result("")
            return answer
        asking = self._asking.get(member)
        if asking is None:
            asking = self._asking[member] = asyncio.create_task(
                self._ask(member), name=f"slack users.info {user_id}"
            )
        asking.add_done_callback(lambda done: _settle(answer, _result(done)))
        late = loop.call_later(NAME_WAIT_S, _settle, answer, "")
        answer.add_done_callback(lambda _: late.cancel())
        return answer

    async def aclose(self) -> None:
        """Cancel the lookups still waiting on Slack: nobody will ask for their names."""
        asking = list(self._asking.values())
        for task in asking:
            task.cancel()
        await asyncio.gather(*asking, return_exceptions=True)

    async def _ask(self, member: _Member) -> str:
        """Never raises: a failure is an empty name, remembered for a while."""
        name, keep_s = "", FAILED_TTL_S
        try:
            reply = await self._api.call("users.info", user=member[1])
            name, keep_s = _name_of(reply.get("user")), NAME_TTL_S
        except PlatformPermissionError as exc:
            if slack_error_code(exc) != "missing_scope":
                log.debug("users.info refused: %s", exc)
            elif not self._no_scope:
                self._no_scope = True
                log.info(
                    "Slack: the bot token lacks users:read, so Voiceflow gets no"
                    " bridge_user_name; add it from slack-manifest.yml and reinstall the app"
                )
        except PlatformRateLimitedError as exc:
            keep_s = exc.retry_after
            log.debug("users.info rate limited; no names for %.1fs", keep_s)
        except PlatformError as exc:
            log.debug("users.info failed: %s", exc)
        finally:
            del self._asking[member]
        self._known[member] = (time.monotonic() + keep_s, name)
        self._known.move_to_end(member)
        while len(self._known) > MAX_NAMES:
            self._known.popitem(last=False)
        return name


def _settle(answer: asyncio.Future[str], name: str) -> None:
    if not answer.done():
        answer.set_result(name)


def _result(asking: asyncio.Task[str]) -> str:
    return "" if asking.cancelled() else asking.result()


def _name_of(user: Any) -> str:
    if not isinstance(user, dict):
        return ""
    profile = user.get("profile")
    if not isinstance(profile, dict):
        profile = {}
    for name in (
        profile.get("display_name"),
        profile.get("real_name"),
        user.get("real_name"),
        user.get("name"),
    ):
        if isinstance(name, str) and name.strip():
            return name.strip()
    return ""
