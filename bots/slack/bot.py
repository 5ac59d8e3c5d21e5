"""SlackBot: slack-bolt's AsyncApp wired to the bridge, in Socket Mode or HTTP mode.

* Socket Mode when ``SLACK_APP_TOKEN`` is set, otherwise the Events API over HTTP at
  ``/slack/events`` (bolt verifies signatures with ``SLACK_SIGNING_SECRET``).
* Bolt acks events before listeners run; listeners only classify and hand the turn to a task
  this bot owns (cancelled on :meth:`SlackBot.close`), so acks stay far below Slack's 3 s.
* :class:`~bots.slack.events.EventGate` drops echoes, edits, other bots and retried
  deliveries before authorization; ``(channel, ts)`` is claimed once so a mention that
  arrives as both ``app_mention`` and ``message`` runs one turn.
* Buttons carry only a stored id; a click resolves it through the bridge's store, so buttons
  keep working after a restart. A link button's click opens its URL in Slack *and* sends its
  request like any other button (SPEC §6; docs/voiceflow-api.md: open_url clicks come back
  as the button's request).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.api import SlackApi, SlackCallError, slack_error_code
from bots.slack.blocks import (
    BUTTON_PREFIX,
    LINK_PREFIX,
    STOP_PREFIX,
    chosen_blocks,
    chosen_text,
)
from bots.slack.budgets import SlackBudgets
from bots.slack.check import startup_error
from bots.slack.events import (
    MESSAGE_TTL_S,
    EventGate,
    Incoming,
    TtlSet,
    classify,
    deleted_message,
    is_reset,
    is_retry,
    welcome_place,
)
from bots.slack.journal import SlackJournal, finalize_slack_dangling
from bots.slack.names import SlackNames
from bots.slack.native_stream import NativeSwitch
from bots.slack.place import SlackPlace
from bots.slack.renderer import SlackRenderer
from core.bridge import Bridge, ConversationKey, Speaker, StopResult
from core.config import Settings
from core.errors import ConfigError, PlatformError, PlatformRateLimitedError
from core.shutdown import SHUTDOWN_GRACE_S, end_turns

__all__ = ["SlackBot", "run_slack"]

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
PLATFORM = "slack"
#: A thread the bot answered in is remembered this long without a store lookup.
THREAD_TTL_S = 7 * 24 * 3600.0
RESET_CONFIRMATION = "🔄 Conversation reset — your next message starts a fresh conversation."
#: /reset in a channel, where every conversation is a thread (Slack does not say which one).
RESET_IN_A_CHANNEL = (
    "Here every mention of me starts a conversation of its own, in its thread. To restart"
    " one, write `reset` in its thread; to start afresh, mention me in the channel again."
)
RESET_FAILED = "Sorry, the conversation could not be reset. Please try again."
EXPIRED_BUTTON = "That button has expired — please ask again."
NOT_YOUR_STOP = "Only the person who asked can stop this answer."
NOT_YOUR_BUTTONS = "These buttons belong to another member's conversation."
#: How long /reset may take before Slack's 3 s ack deadline forces the answer.
RESET_ACK_WAIT_S = 2.0


class SlackBot:
    def __init__(
        self,
        settings: Settings,
        bridge: Bridge,
        *,
        host: str = "0.0.0.0",
        shutdown_grace_s: float = SHUTDOWN_GRACE_S,
    ) -> None:
        if settings.slack_bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN", "is required to start the Slack bot")
        self._settings = settings
        self._bridge = bridge
        self._host = host
        self._client = AsyncWebClient(
            token=settings.slack_bot_token.reveal(), base_url=settings.slack_api_url
        )
        count = functools.partial(bridge.metrics.response, PLATFORM)
        self._api = SlackApi(self._client, on_response=count)
        self._names = SlackNames(self._api)
        self._budgets = SlackBudgets()
        self._native = NativeSwitch()
        self._gate = EventGate(
            bot_user_id="",
            bot_id="",
            allowed_workspaces=settings.allowed_workspaces,
            allowed_channels=settings.allowed_channels,
        )
        self._claimed = TtlSet(MESSAGE_TTL_S)
        self._threads = TtlSet(THREAD_TTL_S)
        self._clicked = TtlSet(MESSAGE_TTL_S)
        self._tasks: set[asyncio.Task[None]] = set()
        self._shutdown_grace_s = shutdown_grace_s
        self._socket: AsyncSocketModeHandler | None = None
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None

    @property
    def socket_mode(self) -> bool:
        return self._settings.slack_app_token is not None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Authenticate, then connect Socket Mode or listen for HTTP; returns when ready."""
        try:
            identity = await self._api.call("auth.test")
        except (SlackCallError, PlatformRateLimitedError) as exc:
            raise startup_error(self._settings, slack_error_code(exc), reached=True) from exc
        except PlatformError as exc:
            raise startup_error(self._settings, slack_error_code(exc), reached=False) from exc
        self._gate.bot_user_id = str(identity.get("user_id") or "")
        self._gate.bot_id = str(identity.get("bot_id") or "")
        await finalize_slack_dangling(self._bridge.store, self._api)
        app = self._build_app()
        if self._settings.slack_app_token is not None:
            self._socket = AsyncSocketModeHandler(
                app, app_token=self._settings.slack_app_token.reveal(), web_client=self._client
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            log.info("Slack connected in Socket Mode as %s", identity.get("user"))
            link = self._socket.client  # slack-sdk reconnects it by itself: ask it at each scrape
            self._bridge.metrics.set_connected(PLATFORM, True, check=link.is_connected)
            return
        self._runner = web.AppRunner(app.web_app(path=EVENTS_PATH))
        await self._runner.setup()
        port = self._settings.slack_port
        site = web.TCPSite(self._runner, self._host, port)
        try:
            await site.start()
        except OSError as exc:  # the port is taken, or not ours to bind
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(
                "SLACK_PORT", f"cannot listen on {self._host}:{port} ({exc})"
            ) from exc
        self.http_port = int(self._runner.addresses[0][1])
        log.info("Slack events at http://%s:%d%s", self._host, self.http_port, EVENTS_PATH)
        self._bridge.metrics.set_connected(PLATFORM, True)

    async def close(self) -> None:
        """Disconnect, give running turns a grace period, end the rest as interrupted."""
        self._bridge.metrics.set_connected(PLATFORM, False)
        try:
            if self._socket is not None:
                await self._socket.close_async()  # type: ignore[no-untyped-call]
            if self._runner is not None:
                await self._runner.cleanup()
        finally:
            turns = self._tasks | self._bridge.timer_turns(PLATFORM)
            await end_turns(turns, grace_s=self._shutdown_grace_s)
            await self._names.aclose()

    async def drain(self) -> None:
        """Wait until every turn started so far has finished (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- wiring ----------------------------------------------------------------------------
    def _build_app(self) -> AsyncApp:
        signing = self._settings.slack_signing_secret
        app = AsyncApp(
            client=self._client,
            signing_secret=signing.reveal() if signing is not None else None,
            request_verification_enabled=not self.socket_mode,
            before_authorize=self._early_filter,
            name="voiceflow-bridge",
        )
        app.event("app_mention")(self._on_event)
        app.event("message")(self._on_event)
        app.event("app_home_opened")(self._on_home_opened)
        app.action(re.compile(f"^{re.escape(BUTTON_PREFIX)}"))(self._on_button)
        app.action(re.compile(f"^{re.escape(STOP_PREFIX)}"))(self._on_stop)
        app.action(re.compile(f"^{re.escape(LINK_PREFIX)}"))(self._on_button)
        app.command("/reset")(self._on_reset_command)
        return app

    async def _early_filter(
        self,
        request: AsyncBoltRequest,
        body: dict[str, Any],
        next: Callable[[], Awaitable[None]],
    ) -> BoltResponse | None:
        if (deleted := deleted_message(body)) is not None:  # a question withdrawn?
            self._bridge.withdraw(_origin(*deleted))
        reason = self._gate.reject_reason(body, retried=is_retry(request.headers))
        if reason is not None:
            log.debug("dropped Slack event %s: %s", body.get("event_id"), reason)
            return BoltResponse(status=200, body="")
        await next()
        return None

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- messages --------------------------------------------------------------------------
    async def _on_event(self, body: dict[str, Any]) -> None:
        incoming = classify(
            body, bot_user_id=self._gate.bot_user_id, in_known_thread=self._known_thread
        )
        if incoming is None:
            incoming = await self._thread_from_store(body)
        if incoming is None or not self._claimed.add((incoming.place.channel, incoming.ts)):
            return
        if incoming.place.thread_ts is not None:
            self._threads.add((incoming.place.channel, incoming.place.thread_ts))
            await self._bridge.store.remember_place(_place_id(incoming.place))
        self._spawn(self._turn(incoming), name=f"slack turn {incoming.place.channel}")

    async def _on_home_opened(self, body: dict[str, Any]) -> None:
        """A member opened the bot's Messages tab (their DM with it): the agent's welcome, the
        first time only (Bridge.greet), as a web chat greets whoever opens it."""
        place = welcome_place(body)
        if place is None:
            return
        self._spawn(self._greet(place), name=f"slack welcome {place.channel}")

    async def _greet(self, place: SlackPlace) -> None:
        key = self._key(place)
        renderer = self._renderer(place)
        try:
            await self._bridge.greet(key, renderer, speaker=self._speaker(place))
        except Exception:
            log.exception("Slack welcome failed for %s", key.id)
        finally:
            await renderer.aclose()

    def _known_thread(self, channel: str, thread_ts: str) -> bool:
        return (channel, thread_ts) in self._threads

    async def _thread_from_store(self, body: dict[str, Any]) -> Incoming | None:
        """A thread reply after a restart: the thread is ours if its conversation exists."""
        event = body.get("event") or {}
        channel, thread_ts = event.get("channel"), event.get("thread_ts")
        if not channel or not thread_ts or thread_ts == event.get("ts"):
            return None
        incoming = classify(body, bot_user_id=self._gate.bot_user_id, in_known_thread=_yes)
        if incoming is None or not await self._bridge.store.knows_place(_place_id(incoming.place)):
            return None
        return incoming

    def _key(self, place: SlackPlace) -> ConversationKey:
        return ConversationKey.scoped(
            self._settings.conversation_scope,
            platform=PLATFORM,
            workspace=place.team_id,
            place=place.conversation_place,
            user=place.user_id,
        )

    def _renderer(self, place: SlackPlace) -> SlackRenderer:
        return SlackRenderer(
            api=self._api,
            place=place,
            budgets=self._budgets.workspace(place.team_id),
            native=self._native,
            stop=self._bridge.stop,
            unit=self._settings.stream_unit,
            journal=SlackJournal(self._bridge.store, place.channel),
        )

    async def _turn(self, incoming: Incoming) -> None:
        key = self._key(incoming.place)
        renderer = self._renderer(incoming.place)
        try:
            if is_reset(incoming.text):
                await self._bridge.reset(key)
                await renderer.send_notice(RESET_CONFIRMATION)
            else:  # empty text too: the rate limit counts it, a new conversation greets
                place = incoming.place
                await self._bridge.handle_message(
                    key,
                    incoming.text,
                    renderer,
                    author=place.user_id,
                    origin=_origin(place.team_id, place.channel, incoming.ts),
                    speaker=self._speaker(place),
                )
        except Exception:
            log.exception("Slack turn failed for %s", key.id)
        finally:
            await renderer.aclose()

    # -- interactivity ---------------------------------------------------------------------
    async def _on_button(
        self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        self._spawn(self._click(body, action), name="slack button")

    async def _on_stop(
        self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        stop_id = str(action.get("action_id", "")).removeprefix(STOP_PREFIX)
        place = _click_place(body)
        result = self._bridge.stop(stop_id, by=place.user_id)
        if result is StopResult.NOT_YOURS:
            self._spawn(self._tell_clicker(place, NOT_YOUR_STOP), name="slack stop refused")
        elif result is StopResult.NOT_RUNNING:
            log.debug("stop %s: no turn running", stop_id)

    async def _click(self, body: dict[str, Any], action: dict[str, Any]) -> None:
        place = _click_place(body)
        message = body.get("message") or {}
        if not self._clicked.add((place.channel, message.get("ts"))):
            return  # a second click on a set that is being disabled
        button_id = _button_id(action)
        renderer = self._renderer(place)
        try:
            pressed = await self._bridge.lookup_button(button_id)
            if pressed is None:
                await renderer.send_notice(EXPIRED_BUTTON)
                return
            if pressed.key.user and pressed.key.user != place.user_id:
                await self._tell_clicker(place, NOT_YOUR_BUTTONS)  # CONVERSATION_SCOPE with a
                self._clicked.discard((place.channel, message.get("ts")))  # user in it
                return
            await self._show_choice(place, message, pressed.button.name)
            if place.thread_ts is not None:
                self._threads.add((place.channel, place.thread_ts))
            await self._bridge.handle_button(
                pressed, renderer, author=place.user_id, speaker=self._speaker(place)
            )
        except Exception:
            log.exception("Slack button click failed")
        finally:
            await renderer.aclose()

    def _speaker(self, place: SlackPlace) -> Speaker:
        """Who wrote or clicked, and where: the turn's Voiceflow variables (core/bridge.py).
        Slack's events carry no name: its lookup starts now (bots/slack/names.py)."""
        name = None
        if self._settings.voiceflow_context_variables:
            name = self._names.lookup(place.team_id, place.user_id)
        return Speaker(
            platform=PLATFORM,
            user_id=place.user_id,
            channel_id=place.channel,
            workspace_id=place.team_id,
            is_dm=place.is_dm,
            pending_name=name,
        )

    async def _tell_clicker(self, place: SlackPlace, text: str) -> None:
        """A note only the clicker sees (chat.postEphemeral)."""
        try:
            await self._api.call(
                "chat.postEphemeral",
                channel=place.channel,
                user=place.user_id,
                thread_ts=place.thread_ts,
                text=text,
            )
        except PlatformError as exc:
            log.warning("could not answer a click: %s", exc)

    async def _show_choice(self, place: SlackPlace, message: dict[str, Any], label: str) -> None:
        """Replace the clicked button set with "<user> chose <label>"."""
        blocks = chosen_blocks(
            list(message.get("blocks") or []), user_id=place.user_id, label=label
        )
        budget = self._budgets.workspace(place.team_id).update
        try:
            async with budget.slot(final=True):
                await self._api.call(
                    "chat.update",
                    channel=place.channel,
                    ts=message.get("ts"),
                    blocks=blocks,
                    text=chosen_text(user_id=place.user_id, label=label),
                )
        except PlatformError as exc:
            log.warning("could not mark the chosen button: %s", exc)

    async def _on_reset_command(
        self, ack: Callable[..., Awaitable[Any]], command: dict[str, Any]
    ) -> None:
        place = SlackPlace(
            team_id=str(command.get("team_id") or ""),
            channel=str(command.get("channel_id") or ""),
            thread_ts=None,
            user_id=str(command.get("user_id") or ""),
            user_team_id=str(command.get("team_id") or ""),
            status_ts="",
        )
        if not place.is_dm and self._settings.conversation_scope != "user":
            # Answers in channels are threads, keyed by thread: nothing here is reset.
            await ack(text=RESET_IN_A_CHANNEL, response_type="ephemeral")
            return
        reset = asyncio.ensure_future(self._bridge.reset(self._key(place)))
        try:
            await asyncio.wait_for(asyncio.shield(reset), RESET_ACK_WAIT_S)
        except TimeoutError:
            log.warning("/reset still running after %.1fs; confirming anyway", RESET_ACK_WAIT_S)
            self._spawn(_settle(reset), name="slack reset")
        except Exception:
            log.exception("/reset failed")
            await ack(text=RESET_FAILED, response_type="ephemeral")
            return
        await ack(text=RESET_CONFIRMATION, response_type="ephemeral")


def _click_place(body: dict[str, Any]) -> SlackPlace:
    """Where a clicked message lives: its thread, or inline (a DM)."""
    message = body.get("message") or {}
    user = body.get("user") or {}
    team = str((body.get("team") or {}).get("id") or user.get("team_id") or "")
    thread_ts = message.get("thread_ts") or None
    return SlackPlace(
        team_id=team,
        channel=str((body.get("channel") or {}).get("id") or ""),
        thread_ts=thread_ts,
        user_id=str(user.get("id") or ""),
        user_team_id=str(user.get("team_id") or team),
        status_ts=str(thread_ts or message.get("ts") or ""),
    )


def _button_id(action: dict[str, Any]) -> str:
    """The stored id a clicked button carries: its value, else its ``action_id``'s suffix
    (link buttons have no value)."""
    value = str(action.get("value") or "")
    if value:
        return value
    action_id = str(action.get("action_id", ""))
    for prefix in (BUTTON_PREFIX, LINK_PREFIX):
        if action_id.startswith(prefix):
            return action_id.removeprefix(prefix)
    return action_id


def _yes(_channel: str, _thread_ts: str) -> bool:
    return True


async def _settle(task: Awaitable[None]) -> None:
    try:
        await task
    except Exception:
        log.exception("/reset failed")


async def run_slack(settings: Settings, bridge: Bridge) -> None:
    """Run the Slack bot until cancelled."""
    bot = SlackBot(settings, bridge)
    await bot.start()
    try:
        await asyncio.Event().wait()
    finally:
        await bot.close()


def _origin(team_id: str, channel: str, ts: str) -> str:
    """The name under which the bridge knows the turn of the user's message ``ts``."""
    return f"slack|{team_id}|{channel}|{ts}"


def _place_id(place: SlackPlace) -> str:
    """A thread's id in the store's place registry (independent of CONVERSATION_SCOPE)."""
    return f"slack|{place.team_id}|{place.channel}:{place.thread_ts}"
