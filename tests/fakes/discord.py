"""FakeDiscord: an aiohttp server on 127.0.0.1:0 that the real discord.py logs into.

    async with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_url)
        monkeypatch.setattr(
            discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url)
        )
        ...start the client with FakeDiscord.token, await fake.wait_ready(), drive it...
        await client.close()      # before leaving the block (testing-with-fakes.md §2.4)

Blueprint: /work/shared/docs/testing-with-fakes.md §1-§2. The world (guild 4000, channels 3000/3001,
thread 3500, DM 5000) is in discord_guild.py; limits and rate windows in discord_limits.py; REST
routes in discord_rest.py/discord_interactions.py; the gateway in discord_gateway.py.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from core.simulator.server import LISTEN_BACKLOG
from tests.fakes import discord_guild as world
from tests.fakes.discord_gateway import FakeGateway
from tests.fakes.discord_interactions import InteractionRoutes
from tests.fakes.discord_limits import FormError
from tests.fakes.discord_model import (
    BOT_ROLE_ID,
    HUMAN_ID,
    TEXT_CHANNEL_ID,
    FakeMessage,
    InteractionState,
    Recorded,
    message_payload,
    now_iso,
    user_payload,
)
from tests.fakes.discord_rest import Fault, Reply

__all__ = ["FakeDiscord", "FakeMessage", "InteractionState", "Recorded"]

INTERACTION_DEADLINE_S = 3.0
_COMPONENT_BUTTON = 2
_APPLICATION_COMMAND, _MESSAGE_COMPONENT = 2, 3


class FakeDiscord(InteractionRoutes):
    """Fake Discord REST + gateway. Rate limits: per-channel FIXED windows (see discord_limits)."""

    def __init__(
        self,
        *,
        rate_limits: bool = True,
        limit: int = 5,
        window_s: float = 5.0,
        bot_user_id: str = "1000",
        application_id: str = "1000",
        require_intents_allowed: int | None = None,
        global_limit: int = 50,
        interaction_deadline_s: float = INTERACTION_DEADLINE_S,
    ) -> None:
        super().__init__(
            rate_limits=rate_limits,
            limit=limit,
            window_s=window_s,
            global_limit=global_limit,
            bot_user_id=bot_user_id,
            application_id=application_id,
            interaction_deadline_s=interaction_deadline_s,
        )
        self.api_url = ""
        self._require_intents_allowed = require_intents_allowed
        self._gateway: FakeGateway | None = None
        self._runner: web.AppRunner | None = None
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    # -- lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/gw", self._ws)
        app.router.add_route("*", "/api/{tail:.*}", self.serve)
        self._runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=LISTEN_BACKLOG)
        await site.start()
        port = self._runner.addresses[0][1]
        self.api_url = f"http://127.0.0.1:{port}/api/v10"
        self.gateway_url = f"ws://127.0.0.1:{port}/gw"
        self._gateway = FakeGateway(
            token=self.token,
            require_intents_allowed=self._require_intents_allowed,
            ready_events=self._ready_events,
            members=lambda guild_id: world.members(self.bot_user_id, guild_id),
            on_change=self._changed,
            max_concurrency=lambda: self.max_concurrency,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.gateway.close_all()
        finally:
            if self._runner is not None:
                await self._runner.cleanup()
            for _, future in self._waiters:
                future.cancel()

    @property
    def gateway(self) -> FakeGateway:
        if self._gateway is None:
            raise RuntimeError("FakeDiscord is not running: use `async with FakeDiscord()`")
        return self._gateway

    @property
    def identify(self) -> dict[str, Any] | None:
        """The last IDENTIFY payload (`intents` is the bitmask the client asked for)."""
        return None if self._gateway is None else self._gateway.identify

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        return await self.gateway.handle(request)

    def _ready_events(
        self, session_id: str, shard: tuple[int, int]
    ) -> list[tuple[str, dict[str, Any]]]:
        ready = world.ready(
            self.bot_user_id, self.application_id, session_id, self.gateway_url, shard
        )
        guilds = [str(g["id"]) for g in ready["guilds"]]
        return [("READY", ready)] + [
            ("GUILD_CREATE", world.guild_create(self.bot_user_id, g)) for g in guilds
        ]

    # -- waiting ----------------------------------------------------------------------------------

    def _changed(self) -> None:
        for predicate, future in list(self._waiters):
            if future.done():
                continue
            # A failing predicate fails its wait_until, never the request being served.
            try:
                holds = predicate()
            except StopIteration as exc:  # a Future refuses StopIteration itself
                future.set_exception(RuntimeError(f"wait_until predicate raised {exc!r}"))
            except Exception as exc:
                future.set_exception(exc)
            else:
                if holds:
                    future.set_result(None)

    def _dispatch(self, event: str, data: dict[str, Any]) -> None:
        self.gateway.dispatch(event, data)

    # The timeout argument is part of the fake's published API (the brief), hence the noqa.
    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """Return once `predicate()` holds; re-checked after every request and gateway event."""
        if predicate():
            return
        entry = (predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(entry[1], timeout)
        except TimeoutError:
            raise TimeoutError(self._describe_timeout(predicate, timeout)) from None
        finally:
            self._waiters.remove(entry)

    def _describe_timeout(self, predicate: Callable[[], bool], timeout: float) -> str:
        try:
            source = inspect.getsource(predicate).strip()
        except (OSError, TypeError):
            source = repr(predicate)
        recent = ", ".join(f"{r.route} -> {r.status}" for r in self.requests[-8:]) or "none"
        return (
            f"condition not met within {timeout}s: {source}\n"
            f"  {len(self.requests)} requests, last: {recent}\n"
            f"  gateway connected={self.gateway.is_connected} "
            f"identifies={self.gateway.identify_count} resumes={self.gateway.resume_count}"
        )

    async def wait_ready(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """The bot identified and READY + GUILD_CREATE were sent."""
        await self.wait_until(lambda: self.gateway.session_id is not None, timeout)

    # -- messages as seen by a test ---------------------------------------------------------------

    def channel_messages(self, channel_id: str) -> list[FakeMessage]:
        """Messages in a channel that are not deleted, in creation order."""
        return [m for m in self.messages.values() if m.channel_id == channel_id and not m.deleted]

    async def send_message(
        self,
        content: str,
        *,
        channel_id: str = TEXT_CHANNEL_ID,
        guild_id: str | None = None,
        author_id: str = HUMAN_ID,
        author_bot: bool = False,
        mention_bot: bool = False,
        mention_bot_role: bool = False,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """Dispatch MESSAGE_CREATE from a user; guild_id defaults to the channel's guild.
        ``mention_bot_role``: "@Bot" as the client often completes it, the bot's role."""
        await self.wait_ready()
        mentions = []
        guild_id = guild_id or world.guild_of(channel_id)
        if mention_bot_role:
            content = f"<@&{world.GUILDS.get(guild_id or '', BOT_ROLE_ID)}> {content}"
        if mention_bot:
            mentions.append(world.bot_user(self.bot_user_id))
            if f"<@{self.bot_user_id}>" not in content:
                content = f"<@{self.bot_user_id}> {content}"
        msg = FakeMessage(
            id=message_id or self._ids.new(),
            channel_id=channel_id,
            guild_id=guild_id,
            author=user_payload(author_id, bot=author_bot),
            content=content,
            mentions=mentions,
        )
        self.messages[msg.id] = msg
        payload = message_payload(msg, self.messages, event=True)
        self._dispatch("MESSAGE_CREATE", payload)
        return payload

    async def edit_user_message(self, message_id: str, content: str) -> None:
        """The user edits their message: MESSAGE_UPDATE with the full new state."""
        await self.wait_ready()
        msg = self.messages[message_id]
        msg.content = content
        msg.edits.append(content)
        msg.edited_timestamp = now_iso()
        self._dispatch("MESSAGE_UPDATE", message_payload(msg, self.messages, event=True))

    def delete_message(self, message_id: str) -> None:
        """A user or moderator deletes the message: MESSAGE_DELETE; later PATCH/DELETE → 10008."""
        self.remove_message(self.messages[message_id])

    def bulk_delete(self, message_ids: list[str]) -> None:
        """A moderator deletes several messages of one channel at once: MESSAGE_DELETE_BULK."""
        messages = [self.messages[i] for i in message_ids]
        for msg in messages:
            msg.deleted = True
        event: dict[str, Any] = {"ids": message_ids, "channel_id": messages[0].channel_id}
        if messages[0].guild_id is not None:
            event["guild_id"] = messages[0].guild_id
        self._dispatch("MESSAGE_DELETE_BULK", event)

    # -- interactions -----------------------------------------------------------------------------

    async def click(
        self,
        message_id: str,
        custom_id: str,
        *,
        user_id: str = HUMAN_ID,
        permissions: str = world.ADMINISTRATOR,
    ) -> str:
        """Dispatch a component INTERACTION_CREATE (type 3) for `custom_id` on a stored message;
        `permissions`: the clicking member's, in that channel (a guild's)."""
        await self.wait_ready()
        msg = self.messages[message_id]
        data = {"custom_id": custom_id, "component_type": _component_type(msg, custom_id)}
        return self._interact(
            _MESSAGE_COMPONENT,
            msg.channel_id,
            msg.guild_id,
            user_id,
            data,
            message=msg,
            permissions=permissions,
        )

    async def slash(
        self,
        name: str,
        *,
        channel_id: str = TEXT_CHANNEL_ID,
        guild_id: str | None = None,
        user_id: str = HUMAN_ID,
    ) -> str:
        """Dispatch an application command INTERACTION_CREATE (type 2) for `/name`."""
        await self.wait_ready()
        guild_id = guild_id or world.guild_of(channel_id)
        registered = next((c for c in self.slash_commands if c["name"] == name), None)
        data: dict[str, Any] = {"id": self._ids.new(), "name": name, "type": 1, "options": []}
        if registered is not None:
            data["id"] = registered["id"]
            if registered.get("guild_id"):
                data["guild_id"] = registered["guild_id"]
        return self._interact(_APPLICATION_COMMAND, channel_id, guild_id, user_id, data)

    def _interact(
        self,
        kind: int,
        channel_id: str,
        guild_id: str | None,
        user_id: str,
        data: dict[str, Any],
        *,
        message: FakeMessage | None = None,
        permissions: str = world.ADMINISTRATOR,
    ) -> str:
        state = InteractionState(
            id=self._ids.new(),
            token=f"itoken-{len(self.interactions) + 1}",
            type=kind,
            channel_id=channel_id,
            guild_id=guild_id,
            dispatched_t=self._now(),
            message_id=message.id if message else None,
        )
        self.interactions[state.id] = state
        payload = world.interaction(
            interaction_id=state.id,
            token=state.token,
            kind=kind,
            application_id=self.application_id,
            channel_id=channel_id,
            guild_id=guild_id,
            user_id=user_id,
            data=data,
            message=self.payload(message) if message else None,
            permissions=permissions,
        )
        self._dispatch("INTERACTION_CREATE", payload)
        return state.id

    # -- scripted faults and the gateway ----------------------------------------------------------

    def inject(
        self,
        method: str,
        route_pattern: str,
        *,
        status: int,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        after: int = 0,
        commit: bool = False,
    ) -> None:
        """Answer the next `times` requests whose path (after /api/v10) fully matches
        `route_pattern` (method "*" = any) with `status`, once `after` of them went through.
        A 429 without `body` gets Discord's rate-limit body (retry_after 0.05 s); `headers` are
        sent as given (add `Via` or not). With `commit` the request is applied first (message
        created or edited, rate limits counted) and only its response is the fault: the
        "committed, then 5xx" case in which a client retry repeats a write that happened."""
        if body is None and status == 429:
            body = {"message": "You are being rate limited.", "retry_after": 0.05, "global": False}
        elif body is None:
            body = FormError(status, 0, f"{status}: injected fault").body
        reply = Reply(status, body, dict(headers or {}))
        pattern = re.compile(route_pattern)
        self._faults.append(Fault(method.upper(), pattern, reply, times, after, commit))

    def faults_left(self) -> int:
        """How many injected fault answers are still to be given."""
        return sum(f.times for f in self._faults)

    def clear_faults(self) -> None:
        """Stop every injected fault: later requests are served normally."""
        self._faults.clear()

    async def drop_gateway(self, *, code: int = 4000) -> None:
        """Close the websocket with `code`; discord.py reconnects and RESUMEs (events dispatched
        meanwhile are replayed). Await `wait_until(lambda: fake.gateway.resume_count == n)`."""
        await self.gateway.drop(code)


def _component_type(msg: FakeMessage, custom_id: str) -> int:
    for row in msg.components:
        for item in row.get("components", []):
            if item.get("custom_id") == custom_id:
                return int(item.get("type", _COMPONENT_BUTTON))
    return _COMPONENT_BUTTON
