"""The Discord adapter: discord.py client lifecycle and events → bridge turns.

Triggers (SPEC §4): a mention in a guild channel or thread, any DM. The bot ignores itself,
other bots and edits (it has no ``on_message_edit``), and needs no privileged intent.
Clicks are resolved by custom id through the bridge's store (``vfb:<id>``, ``vfs:<stop_id>``),
so buttons keep working after a restart; every click is deferred before any other work.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
from discord import app_commands

from bots.discord.components import chooser_line, chosen_view, label_of, parse_custom_id
from bots.discord.connection import READY_TIMEOUT_S, Endpoints, login, wait_ready
from bots.discord.onboarding import bot_intents, invite_url
from bots.discord.ratelimits import ChannelBudgets
from bots.discord.renderer import DiscordRenderer
from bots.discord.session_starts import IdentifyQueue, prepare_session_starts
from bots.discord.shards import PLATFORM, ShardPlan
from bots.discord.writer import NO_MENTIONS, Destination, DiscordWriter, ReplyTo
from core.admission import is_allowed_place
from core.bridge import Bridge, ConversationKey, Speaker, StopResult
from core.config import Settings
from core.errors import ConfigError, PlatformError
from core.lease import LEASE_S, holder_id
from core.live_messages import interrupted_text
from core.metrics import ResponseResult
from core.recovery import StoreJournal, finalize_dangling
from core.shutdown import SHUTDOWN_GRACE_S, end_turns

__all__ = ["DiscordBot", "lease_names", "run_discord"]

log = logging.getLogger(__name__)

#: discord.py waits this long after the last GUILD_CREATE before `on_ready`; messages flow
#: before it anyway, so the library's default (2 s) only delays startup.
GUILD_READY_TIMEOUT_S = 2.0
#: Added to READY_TIMEOUT_S for each shard after the first: discord.py connects them in turn.
SHARD_READY_S = 6.0
#: Button sets already chosen in this process (a second quick click is ignored).
CHOSEN_MEMORY = 4096
EXPIRED_TEXT = "This button has expired."
ALREADY_CHOSEN_TEXT = "This choice was already made."
NOT_YOUR_STOP_TEXT = "Only the person who asked (or a moderator) can stop this answer."
NOT_YOUR_BUTTONS_TEXT = "These buttons belong to another member's conversation."
RESET_TEXT = "Conversation reset."
RESET_DESCRIPTION = "Start over: the assistant forgets this conversation"
THREAD_TYPES = frozenset(
    {
        discord.ChannelType.public_thread,
        discord.ChannelType.private_thread,
        discord.ChannelType.news_thread,
    }
)


def _own_role(message: discord.Message) -> discord.Role | None:
    """The role Discord made for the bot in the message's guild: typing "@Bot" in the client
    often completes to it, and users expect an answer either way."""
    return message.guild.self_role if message.guild is not None else None


def _addresses(message: discord.Message, me: int) -> bool:
    """A mention of the bot, or of its own role."""
    if any(user.id == me for user in message.mentions):
        return True
    role = _own_role(message)
    return role is not None and role in message.role_mentions


@dataclass(frozen=True)
class _Place:
    """Where a message or click happened."""

    channel_id: int
    guild_id: int | None
    is_thread: bool

    @property
    def workspace(self) -> str:
        return str(self.guild_id) if self.guild_id is not None else "dm"


class _Hooks(discord.Client):
    """discord.py's event hooks, forwarded to the bot (which owns all logic)."""

    def __init__(self, bot: DiscordBot, **options: Any) -> None:
        # The bridge never joins voice: discord.py's two warnings that voice libraries are
        # missing would only alarm the operator on every start.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(**options)
        self._bot = bot

    async def setup_hook(self) -> None:
        await self._bot.register_commands()

    async def on_message(self, message: discord.Message) -> None:
        self._bot.on_message(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await self._bot.on_interaction(interaction)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self._bot.on_deleted([payload.message_id])

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        self._bot.on_deleted(payload.message_ids)


class _Client(_Hooks):
    """One gateway connection: the bot unsharded (Discord's shard 0 of 1)."""

    async def on_connect(self) -> None:
        self._bot.on_link(0, up=True)

    async def on_resumed(self) -> None:
        self._bot.on_link(0, up=True)

    async def on_disconnect(self) -> None:
        self._bot.on_link(0, up=False)


class _ShardedClient(_Hooks, discord.AutoShardedClient):
    """One connection per shard this process runs (bots/discord/shards.py)."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # Instead of discord.py's 5 s sleep before every IDENTIFY but a process's first: the
        # bot's IDENTIFY rate is per token, whatever the process (session_starts.py).
        await self._bot.identify_turn(shard_id or 0)

    async def on_shard_connect(self, shard_id: int) -> None:
        self._bot.on_link(shard_id, up=True)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self._bot.on_link(shard_id, up=True)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self._bot.on_link(shard_id, up=False)


def _speaker(place: _Place, user: discord.abc.User) -> Speaker:
    """Who wrote or clicked, and where: the turn's Voiceflow variables (core/bridge.py)."""
    return Speaker(
        platform=PLATFORM,
        user_id=str(user.id),
        user_name=user.display_name,
        channel_id=str(place.channel_id),
        workspace_id=str(place.guild_id or ""),
        is_dm=place.guild_id is None,
    )


def _client(bot: DiscordBot, plan: ShardPlan, **options: Any) -> discord.Client:
    if not plan.sharded:
        return _Client(bot, **options)
    ids = list(plan.ids) if plan.ids is not None else None
    return _ShardedClient(bot, shard_count=plan.count, shard_ids=ids, **options)


class DiscordBot:
    def __init__(
        self,
        settings: Settings,
        bridge: Bridge,
        *,
        intents: discord.Intents | None = None,
        guild_ready_timeout_s: float = GUILD_READY_TIMEOUT_S,
        shutdown_grace_s: float = SHUTDOWN_GRACE_S,
    ) -> None:
        if settings.discord_token is None:
            raise ConfigError("DISCORD_TOKEN", "is required to start the Discord bot")
        self._settings = settings
        self._bridge = bridge
        self._intents = intents or bot_intents()
        self.shards = ShardPlan.of(settings)
        self.budgets = ChannelBudgets(global_limit=self.shards.global_limit())
        trace = self.budgets.trace_config()
        trace.on_request_end.append(self._count_response)
        trace.on_request_exception.append(self._count_failure)
        self._client = _client(
            self,
            self.shards,
            intents=self._intents,
            allowed_mentions=NO_MENTIONS,
            http_trace=trace,
            guild_ready_timeout=guild_ready_timeout_s,
        )
        self._tree = app_commands.CommandTree(self._client)
        self._add_reset_command()
        self._reported: set[tuple[int, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._shutdown_grace_s = shutdown_grace_s
        self._closing = False
        self._connection: asyncio.Task[None] | None = None
        self._endpoints = Endpoints()
        self._identify: IdentifyQueue | None = None
        self._chosen: dict[int, None] = {}
        self.invite_url: str | None = None
        self._started = False
        self._down: set[int] = set()  # gateway connections (shards) that dropped, not back yet

    @property
    def client(self) -> discord.Client:
        return self._client

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Log in, register /reset, connect; return once READY (raises a core error)."""
        self._endpoints.point_at(self._settings)
        try:
            await login(self._client, self._settings)
            await self._prepare_session_starts()
            self._connection = asyncio.create_task(
                self._client.connect(reconnect=True), name="discord-gateway"
            )
            timeout_s = READY_TIMEOUT_S + SHARD_READY_S * (len(self.shards.served()) - 1)
            await wait_ready(
                self._client, self._connection, self._settings, self._intents, timeout_s
            )
        except BaseException:
            await self.close()
            raise
        for journal in self.shards.journals():
            await finalize_dangling(self._bridge.store, journal, self._finalize_dangling)
        await self._finalize_other_layouts_leftovers()
        self.invite_url = invite_url(self._client.application_id or 0)
        self._started = True
        self._report_connected()
        sharding = self.shards.describe()
        log.info(
            "Discord: connected as %s (application %s%s). Invite it with: %s",
            self._client.user,
            self._client.application_id,
            f", {sharding}" if sharding else "",
            self.invite_url,
        )

    async def _finalize_other_layouts_leftovers(self) -> None:
        """A bot whose shard layout changed: what the old layout's processes left in flight is
        finalized by the process of shard 0 (DMs) — each old journal only if no process of the
        old layout still runs it, i.e. if its lease is free to take for the moment."""
        if 0 not in self.shards.served():
            return
        store, me = self._bridge.store, holder_id()
        for journal in await store.journals(PLATFORM):
            lease = self.shards.journal_lease(journal, self._settings)
            if lease is None:
                continue
            if await store.claim(lease, me, LEASE_S) is not None:
                log.info("Discord: %s is kept by a live process of another layout", journal)
                continue  # its answers are its own
            try:
                await finalize_dangling(store, journal, self._finalize_dangling)
            finally:
                await store.release(lease, me)

    async def _prepare_session_starts(self) -> None:
        assert self._settings.discord_token is not None
        self.shards, self._identify = await prepare_session_starts(
            self._client, self.shards, self._bridge.store, self._settings.discord_token
        )
        if self.shards.count is not None:
            self._client.shard_count = self.shards.count

    async def identify_turn(self, shard_id: int) -> None:
        """Wait until shard ``shard_id`` may IDENTIFY (a sharded client's hook)."""
        if self._identify is not None:
            await self._identify.turn(shard_id)

    # -- what an operator watches (core/metrics.py) ----------------------------------------
    def on_link(self, shard_id: int, *, up: bool) -> None:
        """A gateway connection came up (READY or RESUMED) or dropped: one INFO line per
        change while running (discord.py's own reconnect lines are below the log level)."""
        was_down = shard_id in self._down
        if up:
            self._down.discard(shard_id)
        else:
            self._down.add(shard_id)
        changed = was_down if up else not was_down
        if changed and self._started and not self._closing:
            if up:
                log.info("Discord gateway (shard %d) is back", shard_id)
            else:
                log.info("Discord gateway (shard %d) dropped; reconnecting", shard_id)
        self._report_connected()

    def _report_connected(self) -> None:
        connected = self._started and not self._closing and not self._down
        self._bridge.metrics.set_connected(PLATFORM, connected)

    async def _count_response(
        self, _session: object, _ctx: object, params: aiohttp.TraceRequestEndParams
    ) -> None:
        status = params.response.status
        result: ResponseResult = "ok" if status < 400 else "error"
        self._bridge.metrics.response(PLATFORM, "rate_limited" if status == 429 else result)

    async def _count_failure(
        self, _session: object, _ctx: object, _params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        self._bridge.metrics.response(PLATFORM, "error")

    async def wait_closed(self) -> None:
        """Run until the gateway connection ends (it reconnects by itself on network faults)."""
        if self._connection is not None:
            await self._connection

    async def drain(self) -> None:
        """Wait until every turn started so far has finished (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop taking messages, let running turns finish (briefly), disconnect, restore."""
        self._closing = True  # events still arriving during shutdown start no new work
        self._report_connected()
        turns = self._tasks | self._bridge.timer_turns(PLATFORM)
        await end_turns(turns, grace_s=self._shutdown_grace_s)
        await self._client.close()
        if self._connection is not None:
            await asyncio.gather(self._connection, return_exceptions=True)
            self._connection = None
        self._endpoints.restore()

    async def register_commands(self) -> None:
        """Runs inside `login()`: publish /reset globally (PUT /applications/{id}/commands)."""
        try:
            await self._tree.sync()
        except discord.HTTPException as exc:
            log.error("Discord: could not register the /reset command: %s", exc)

    # -- messages ----------------------------------------------------------------------
    def on_message(self, message: discord.Message) -> None:
        place = self._answerable(message)
        if place is None:
            return
        me = self._client.user
        assert me is not None
        role = _own_role(message)
        ours = rf"<@!?{me.id}>" + (rf"|<@&{role.id}>" if role is not None else "")
        text = re.sub(ours, "", message.content).strip()
        key = self._key(place, message.author.id)
        reply = ReplyTo(message.id, message.channel.id) if place.guild_id is not None else None
        renderer = self._renderer(place, reply_to=reply)
        speaker = _speaker(place, message.author)
        turn = self._bridge.handle_message(
            key,
            text,
            renderer,
            author=str(message.author.id),
            origin=_origin(message.id),
            speaker=speaker,
        )
        self._spawn(turn, f"discord turn {key.id}")

    def on_deleted(self, message_ids: Iterable[int]) -> None:
        """Messages were deleted: a question among them is withdrawn, its answer stops."""
        for message_id in message_ids:
            self._bridge.withdraw(_origin(message_id))

    def _answerable(self, message: discord.Message) -> _Place | None:
        """The place to answer in, or None: not for us (self, bots, not addressed, not allowed)."""
        me = self._client.user
        if me is None or message.author.bot or message.author.id == me.id:
            return None
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return None
        place = _place_of(message.channel, message.guild.id if message.guild else None)
        if place.guild_id is None:
            return place  # any DM
        if not _addresses(message, me.id):
            return None
        return place if self._allowed(place, message.channel) else None

    def _allowed(self, place: _Place, channel: object) -> bool:
        """Allowlists; a thread is allowed when it or its parent channel is listed."""
        parent = getattr(channel, "parent_id", None)
        return any(
            is_allowed_place(
                self._settings,
                platform=PLATFORM,
                workspace=place.workspace,
                channel=str(candidate),
                is_dm=False,
            )
            for candidate in (place.channel_id, parent)
            if candidate is not None
        )

    def _key(self, place: _Place, user_id: int) -> ConversationKey:
        return ConversationKey.scoped(
            self._settings.conversation_scope,
            platform=PLATFORM,
            workspace=place.workspace,
            place=str(place.channel_id),
            user=str(user_id),
        )

    def _renderer(self, place: _Place, *, reply_to: ReplyTo | None = None) -> DiscordRenderer:
        channel = self._client.get_partial_messageable(place.channel_id, guild_id=place.guild_id)
        destination = Destination(channel, place.is_thread, self.budgets, self._reported)
        location = {"channel": str(place.channel_id)}
        journal = StoreJournal(self._bridge.store, self.shards.journal(place.guild_id), location)
        return DiscordRenderer(
            destination, unit=self._settings.stream_unit, reply_to=reply_to, journal=journal
        )

    async def _finalize_dangling(self, data: dict[str, Any]) -> None:
        """A message a killed process left streaming: end it as interrupted, drop its Stop."""
        channel = self._client.get_partial_messageable(int(data["channel"]))
        try:
            message = await channel.fetch_message(int(data["message_id"]))
        except discord.NotFound:
            return  # deleted meanwhile: nothing is left spinning
        if not message.components:
            return  # its final edit landed just before the process died: it is complete
        writer = DiscordWriter(Destination(channel, False, self.budgets, self._reported))
        async with self.budgets.edit(str(channel.id)).slot(final=True):
            await writer.edit(str(message.id), interrupted_text(message.content), stop_id=None)

    # -- interactions ------------------------------------------------------------------
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if self._closing or interaction.type is not discord.InteractionType.component:
            return  # slash commands are dispatched by the command tree
        data: Any = interaction.data or {}
        custom_id = str(data.get("custom_id", ""))
        parsed = parse_custom_id(custom_id)
        if parsed is None:
            return
        try:  # acknowledge within Discord's 3 s before anything else (type 6, no loading state)
            await interaction.response.defer()
        except discord.HTTPException as exc:
            log.warning("Discord: could not acknowledge a click: %s", exc)
            return
        kind, ident = parsed
        if kind == "stop":
            await self._on_stop(interaction, ident)
        else:
            await self._on_choice(interaction, custom_id, ident)

    async def _on_stop(self, interaction: discord.Interaction, stop_id: str) -> None:
        moderator = interaction.guild_id is not None and interaction.permissions.manage_messages
        who = str(interaction.user.id)
        result = self._bridge.stop(stop_id, by=who, overrides=moderator)
        if result is StopResult.STOPPED:
            log.info("Discord: %s stopped turn %s", interaction.user.id, stop_id)
        elif result is StopResult.NOT_YOURS:
            await self._ephemeral(interaction, NOT_YOUR_STOP_TEXT)
        else:  # nothing runs under this control (finished, or from before a restart)
            await self._edit_clicked(interaction, view=None)

    async def _on_choice(
        self, interaction: discord.Interaction, custom_id: str, ident: str
    ) -> None:
        message = interaction.message
        pressed = await self._bridge.lookup_button(ident)
        if pressed is None or message is None:
            await self._ephemeral(interaction, EXPIRED_TEXT)
            return
        if message.id in self._chosen:
            await self._ephemeral(interaction, ALREADY_CHOSEN_TEXT)
            return
        if pressed.key.user and pressed.key.user != str(interaction.user.id):
            await self._ephemeral(interaction, NOT_YOUR_BUTTONS_TEXT)  # CONVERSATION_SCOPE
            return  # with a user in it: those buttons drive someone else's conversation
        self._remember_chosen(message.id)
        label = label_of(message, custom_id) or pressed.button.name
        line = chooser_line(interaction.user.display_name, label, pressed.button.url)
        content = f"{message.content}\n{line}" if message.content else line
        await self._edit_clicked(interaction, content=content, view=chosen_view(message, custom_id))
        place = _place_of(interaction.channel, interaction.guild_id, interaction.channel_id)
        renderer = self._renderer(place)
        speaker = _speaker(place, interaction.user)
        turn = self._bridge.handle_button(
            pressed, renderer, author=str(interaction.user.id), speaker=speaker
        )
        self._spawn(turn, f"discord click {ident}")

    async def _edit_clicked(self, interaction: discord.Interaction, **changes: Any) -> None:
        """Edit the clicked message through the interaction webhook (not the channel bucket)."""
        try:
            await interaction.edit_original_response(allowed_mentions=NO_MENTIONS, **changes)
        except discord.HTTPException as exc:
            log.warning("Discord: could not update the clicked message: %s", exc)

    async def _ephemeral(self, interaction: discord.Interaction, text: str) -> None:
        try:
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:
            log.warning("Discord: could not answer a click: %s", exc)

    def _remember_chosen(self, message_id: int) -> None:
        self._chosen[message_id] = None
        if len(self._chosen) > CHOSEN_MEMORY:
            del self._chosen[next(iter(self._chosen))]

    # -- /reset ------------------------------------------------------------------------
    def _add_reset_command(self) -> None:
        @self._tree.command(name="reset", description=RESET_DESCRIPTION)
        async def reset(interaction: discord.Interaction) -> None:
            await self._on_reset(interaction)

    async def _on_reset(self, interaction: discord.Interaction) -> None:
        if self._closing:
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        place = _place_of(interaction.channel, interaction.guild_id, interaction.channel_id)
        await self._bridge.reset(self._key(place, interaction.user.id))
        await interaction.edit_original_response(content=RESET_TEXT, allowed_mentions=NO_MENTIONS)

    # -- tasks -------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        if self._closing:
            coro.close()
            return
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("Discord: %s failed", task.get_name(), exc_info=exc)


def _origin(message_id: int) -> str:
    """The name under which the bridge knows the turn of the user's message ``message_id``."""
    return f"{PLATFORM}|{message_id}"


def _place_of(channel: object, guild_id: int | None, channel_id: int | None = None) -> _Place:
    ident = getattr(channel, "id", None) or channel_id
    if ident is None:
        raise PlatformError("Discord event without a channel")
    if guild_id is None:
        guild_id = getattr(channel, "guild_id", None)
    is_thread = getattr(channel, "type", None) in THREAD_TYPES
    return _Place(int(ident), guild_id, is_thread)


def lease_names(settings: Settings) -> list[str]:
    """The leases a process serving ``settings`` holds: the bot's, or one per shard."""
    return ShardPlan.of(settings).lease_names(settings)


async def run_discord(settings: Settings, bridge: Bridge) -> None:
    """Serve Discord until cancelled (or until the gateway fails for good)."""
    bot = DiscordBot(settings, bridge)
    await bot.start()
    try:
        await bot.wait_closed()
    finally:
        await bot.close()
