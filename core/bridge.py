"""The bridge: conversations → Voiceflow turns → a renderer.

Adapters call :class:`Bridge` with a :class:`ConversationKey` and a renderer for the place the
conversation lives in. The bridge maps the key to a Voiceflow ``userID`` (with a generation,
SPEC §4), launches new or ended conversations first, runs turns one at a time per
conversation and concurrently across conversations, keeps per-conversation no-reply timers,
resolves stored buttons and stop controls, and offers a Retry button under a turn the agent's
side broke.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from core.admission import Admission
from core.config import Settings
from core.errors import PlatformError
from core.metrics import Metrics
from core.platform import ButtonRef, Renderer
from core.relay import TurnRelay, TurnResult
from core.store import Store, open_store
from core.traces import Button
from core.voiceflow import VoiceflowClient

__all__ = ["Bridge", "ConversationKey", "PressedButton", "Speaker", "StopResult", "open_bridge"]

log = logging.getLogger(__name__)

MAX_USER_ID_CHARS = 128
LAUNCH: dict[str, Any] = {"type": "launch"}
NO_REPLY: dict[str, Any] = {"type": "no-reply"}
#: The button offered under an answer the agent's side broke (TurnResult.retryable): it sends
#: the user's request again, as a click on any button would.
RETRY_LABEL = "↻ Retry"
#: Deleted messages remembered, in case a deletion overtakes the start of its message's turn.
WITHDRAWN_MEMORY = 4096


class StopResult(enum.Enum):
    """What a stop control did."""

    STOPPED = "stopped"
    NOT_RUNNING = "not running"  # finished, or from before a restart
    NOT_YOURS = "not yours"  # someone else's answer: only its asker (or a moderator) stops it


@dataclass(frozen=True)
class ConversationKey:
    platform: str
    workspace: str
    place: str
    user: str

    @classmethod
    def scoped(
        cls, scope: str, *, platform: str, workspace: str, place: str, user: str
    ) -> ConversationKey:
        """Apply ``CONVERSATION_SCOPE``: which parts of a message's origin make a conversation."""
        if scope == "user":
            return cls(platform, workspace, "", user)
        if scope == "channel_user":
            return cls(platform, workspace, place, user)
        return cls(platform, workspace, place, "")

    @property
    def id(self) -> str:
        """The store key; ``|`` occurs in no Discord or Slack id (Slack threads use ``:``)."""
        return "|".join((self.platform, self.workspace, self.place, self.user))

    def user_id(self, generation: int) -> str:
        """The Voiceflow userID: readable when it fits, hashed when long; never a ``/``."""
        readable = f"{self.id}|g{generation}".replace("/", "_")
        if len(readable) <= MAX_USER_ID_CHARS:
            return readable
        digest = hashlib.sha256(self.id.encode()).hexdigest()[:40]
        return f"{self.platform}|{digest}|g{generation}"


@dataclass(frozen=True)
class PressedButton:
    key: ConversationKey
    button: Button


@dataclass(frozen=True)
class Speaker:
    """Who acted (wrote the message, clicked the button) and where: sent to Voiceflow with the
    turn as variables (``VOICEFLOW_CONTEXT_VARIABLES``), so an agent can greet by name or tell
    Discord from Slack. Empty fields are left out. ``pending_name``: the name is still being
    looked up (Slack's ``users.info``); the turn waits for it once it is its turn to run, and
    the adapter bounds that wait."""

    platform: str
    user_id: str
    user_name: str = ""
    channel_id: str = ""
    workspace_id: str = ""
    is_dm: bool = False
    pending_name: Awaitable[str] | None = field(default=None, compare=False, repr=False)

    async def resolved(self) -> Speaker:
        """This speaker with its name, once a pending lookup is done."""
        if self.pending_name is None:
            return self
        return replace(self, user_name=await self.pending_name, pending_name=None)

    def variables(self) -> dict[str, Any]:
        """``bridge_``-prefixed, so that no variable of the agent's own (nor Voiceflow's
        built-in ``platform`` and ``user_id``) is overwritten."""
        fields = {
            "bridge_platform": self.platform,
            "bridge_user_id": self.user_id,
            "bridge_user_name": self.user_name,
            "bridge_channel_id": self.channel_id,
            "bridge_workspace_id": self.workspace_id,
        }
        return {name: value for name, value in fields.items() if value} | {
            "bridge_is_dm": self.is_dm
        }


class Bridge:
    def __init__(
        self,
        settings: Settings,
        client: VoiceflowClient,
        store: Store,
        *,
        upstream_forgets: bool = False,
    ) -> None:
        """``upstream_forgets``: Voiceflow's states do not outlive this process (the built-in
        simulator), so a conversation not begun in this process launches anew."""
        self._settings = settings
        self._client = client
        self._upstream_forgets = upstream_forgets
        self._begun_here: set[str] = set()
        self._store = store
        #: One lock per conversation with a turn running or waiting, and how many hold or
        #: wait for it: dropped when none does, so idle conversations cost no memory.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._relays: dict[str, tuple[TurnRelay, str]] = {}  # stop id -> relay, author
        #: Messages whose turns wait or run (their ``origin``) and their relays; the latest
        #: messages withdrawn (a deletion may overtake the turn's start).
        self._origins: dict[str, set[TurnRelay]] = {}
        self._withdrawn: dict[str, None] = {}
        self._no_reply: dict[str, asyncio.Task[None]] = {}
        self._timer_turns: dict[asyncio.Task[None], str] = {}  # no-reply turns: their platform
        self._admission = Admission(settings.user_rate_limit_per_minute)
        self.turns_started = 0
        self.metrics = Metrics()

    @property
    def store(self) -> Store:
        return self._store

    # -- turns ---------------------------------------------------------------------------
    async def handle_message(
        self,
        key: ConversationKey,
        text: str,
        renderer: Renderer,
        *,
        author: str = "",
        origin: str = "",
        speaker: Speaker | None = None,
    ) -> None:
        """Run the user's text as a turn (after ``launch`` if the conversation is new/ended).

        ``author`` (default: the key's user) is who the per-user rate limit counts. Refused
        input (too fast, too long, empty) gets a notice and never reaches Voiceflow — except
        that a bare mention opening a new (or ended) conversation launches it: a greeting.
        ``origin`` names the user's message, for :meth:`withdraw`. ``speaker``: who wrote it,
        told to Voiceflow with the launch and the text (:class:`Speaker`).
        """
        if not origin:
            await self._handle_message(key, text, renderer, author, speaker=speaker)
            return
        if origin in self._withdrawn:
            return  # deleted before its turn began
        self._origins[origin] = set()
        try:
            await self._handle_message(key, text, renderer, author, origin, speaker=speaker)
        finally:
            del self._origins[origin]

    def withdraw(self, origin: str) -> bool:
        """The user deleted the message ``origin``: its turn stops (a message it opened ends
        as stopped; none is posted otherwise) or, not begun yet, never runs. Any deleted
        message may be reported (the latest :data:`WITHDRAWN_MEMORY` are remembered); True if
        a turn of it was waiting or running."""
        self._withdrawn[origin] = None
        if len(self._withdrawn) > WITHDRAWN_MEMORY:
            del self._withdrawn[next(iter(self._withdrawn))]
        relays = self._origins.get(origin)
        if relays is None:
            return False
        for relay in relays:
            relay.stop(quiet=True)
        log.info("a question was deleted: its turn stops")
        return True

    async def _handle_message(
        self,
        key: ConversationKey,
        text: str,
        renderer: Renderer,
        author: str,
        origin: str = "",
        *,
        speaker: Speaker | None = None,
    ) -> None:
        self._cancel_no_reply(key.id)  # any user input, even input refused below (SPEC §4)
        who = f"{key.platform}|{key.workspace}|{author or key.user or key.place}"
        verdict = self._admission.check(who, text)
        if verdict.empty and await self._is_new(key):
            await self._turn(key, None, renderer, launch_first=True, origin=origin, speaker=speaker)
            return
        if verdict.text is None:
            if verdict.reply is not None:
                await renderer.send_notice(verdict.reply)
            return
        payload = {"type": "text", "payload": verdict.text}
        await self._turn(
            key,
            payload,
            renderer,
            launch_first=True,
            author=author or key.user,
            retry=True,
            origin=origin,
            speaker=speaker,
        )

    async def launch(
        self, key: ConversationKey, renderer: Renderer, *, speaker: Speaker | None = None
    ) -> None:
        """Start the conversation if it is new or ended (a greeting without user text)."""
        await self._turn(key, None, renderer, launch_first=True, speaker=speaker)

    async def greet(
        self, key: ConversationKey, renderer: Renderer, *, speaker: Speaker | None = None
    ) -> None:
        """Launch a conversation that has never begun: the agent's welcome when a member first
        opens the bot (Slack's Messages tab). One that exists, even ended or reset, is left
        alone, so opening the bot again never repeats the welcome."""
        await self._turn(key, None, renderer, launch_first=True, speaker=speaker, greeting=True)

    async def lookup_button(self, button_id: str) -> PressedButton | None:
        stored = await self._store.button(button_id)
        if stored is None:
            return None
        key = _parse_key(stored.conversation)
        return PressedButton(key, stored.button)

    async def handle_button(
        self,
        pressed: PressedButton,
        renderer: Renderer,
        *,
        author: str = "",
        speaker: Speaker | None = None,
    ) -> None:
        """Send a clicked button's request to Voiceflow verbatim (after ``launch`` when the
        conversation has ended since the button was shown, as any next message would).
        ``author``: who clicked (the one who may stop the answer); ``speaker``: the same, for
        Voiceflow's variables."""
        request = pressed.button.request
        await self._turn(
            pressed.key,
            request,
            renderer,
            launch_first=True,
            author=author,
            retry=True,
            speaker=speaker,
        )

    async def reset(self, key: ConversationKey) -> None:
        """New Voiceflow userID for the conversation; the old state is deleted (best effort)."""
        self._cancel_no_reply(key.id)
        async with self._lock(key):
            old = await self._store.rotate(key.id)
        if old is not None:
            await self._client.delete_state(key.user_id(old.generation))
        log.info("conversation %s reset", key.id)

    def stop(self, stop_id: str, *, by: str | None = None, overrides: bool = False) -> StopResult:
        """Stop the turn whose streamed message carries ``stop_id``.

        Only the user whose message (or click) started the turn may, unless ``overrides``
        (a moderator); ``by=None`` is the operator (shutdown, tests). A greeting has no
        author: anyone may stop it.
        """
        running = self._relays.get(stop_id)
        if running is None:
            return StopResult.NOT_RUNNING
        relay, author = running
        if by is not None and author and by != author and not overrides:
            return StopResult.NOT_YOURS
        relay.stop()
        return StopResult.STOPPED

    async def aclose(self) -> None:
        for task in self._no_reply.values():
            task.cancel()
        await asyncio.gather(*self._no_reply.values(), return_exceptions=True)
        self._no_reply.clear()

    # -- internals -------------------------------------------------------------------------
    async def _is_new(self, key: ConversationKey) -> bool:
        if self._upstream_forgets and key.id not in self._begun_here:
            return True
        conversation = await self._store.conversation(key.id)
        return conversation is None or conversation.ended

    @asynccontextmanager
    async def _lock(self, key: ConversationKey) -> AsyncIterator[None]:
        """Hold the conversation: its turns run one at a time, in arrival order."""
        lock, users = self._locks.get(key.id, (asyncio.Lock(), 0))
        self._locks[key.id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key.id]
            if users == 1:
                del self._locks[key.id]
            else:
                self._locks[key.id] = (lock, users - 1)

    async def _turn(
        self,
        key: ConversationKey,
        action: dict[str, Any] | None,
        renderer: Renderer,
        *,
        launch_first: bool,
        author: str = "",
        retry: bool = False,
        origin: str = "",
        speaker: Speaker | None = None,
        greeting: bool = False,
    ) -> None:
        """Run ``action`` (after ``launch`` when the conversation is new and ``launch_first``).
        ``retry``: the action is the user's own (a message, a click), so a turn the agent's side
        broke ends with a Retry button that sends it again. ``origin``: the user's message,
        whose withdrawal skips what has not started. ``greeting``: only if the conversation
        has never begun (:meth:`greet`)."""
        if not greeting:
            self._cancel_no_reply(key.id)
        async with self._lock(key):
            if greeting and await self._store.conversation(key.id) is not None:
                return
            # A turn that ran while this one waited may have armed a timer: input cancels it.
            self._cancel_no_reply(key.id)
            fresh = await self._is_new(key)
            conversation = await self._store.begin(key.id)
            if self._upstream_forgets:
                self._begun_here.add(key.id)
            user_id = key.user_id(conversation.generation)
            told = speaker if self._settings.voiceflow_context_variables else None
            variables = (await told.resolved()).variables() if told is not None else None
            result = None
            if fresh and launch_first and origin not in self._withdrawn:
                result = await self._run(  # one note if both crash, not two
                    key,
                    user_id,
                    LAUNCH,
                    renderer,
                    author=author,
                    tell_agent_error=action is None,
                    origin=origin,
                    variables=variables,
                )
                if result.error is not None:  # not launched: the next message launches again
                    await self._store.set_ended(key.id, True)
            launched = not (result and (result.error or result.ended))
            if action is not None and launched and origin not in self._withdrawn:
                result = await self._run(
                    key,
                    user_id,
                    action,
                    renderer,
                    author=author,
                    origin=origin,
                    variables=variables,
                )
            if result is not None:
                await self._after(key, result, renderer)
            if retry and action is not None and result is not None and result.retryable:
                await self._offer_retry(key, action, renderer)

    async def _run(
        self,
        key: ConversationKey,
        user_id: str,
        action: dict[str, Any],
        renderer: Renderer,
        *,
        author: str,
        tell_agent_error: bool = True,
        origin: str = "",
        variables: dict[str, Any] | None = None,
    ) -> TurnResult:
        stop_id = secrets.token_hex(6)
        relay = TurnRelay(
            renderer,
            lambda buttons: self._save_buttons(key, buttons),
            stop_id=stop_id,
            stream_static_text=self._settings.stream_static_text,
            tell_agent_error=tell_agent_error,
        )
        self._relays[stop_id] = (relay, author)
        relays = self._origins.get(origin, set())
        relays.add(relay)
        self.turns_started += 1
        self.metrics.turn_started(key.platform)
        started = time.monotonic()
        try:
            result = await relay.run(self._client.interact(user_id, action, variables=variables))
        finally:
            del self._relays[stop_id]
            relays.discard(relay)
            outcome = relay.result.outcome.value if relay.result.error is None else "error"
            self.metrics.turn_ended(
                key.platform,
                outcome,
                time.monotonic() - started,
                relay.result.first_output_s,
            )
        log.info(
            "turn %s action=%s outcome=%s in %.2fs",
            key.id,
            action.get("type"),
            outcome,  # as the turns metric counts it: "error" when Voiceflow failed the turn
            time.monotonic() - started,
        )
        return result

    async def _after(self, key: ConversationKey, result: TurnResult, renderer: Renderer) -> None:
        if result.ended:  # a fresh Voiceflow state (a new userID) for the next message
            await self._store.rotate(key.id)
        elif result.no_reply_timeout_s is not None:
            self._cancel_no_reply(key.id)
            self._no_reply[key.id] = asyncio.create_task(
                self._no_reply_after(key, result.no_reply_timeout_s, renderer),
                name=f"no-reply {key.id}",
            )

    async def _offer_retry(
        self, key: ConversationKey, action: dict[str, Any], renderer: Renderer
    ) -> None:
        refs = await self._save_buttons(key, [Button(RETRY_LABEL, action)])
        try:
            await renderer.send_buttons(refs)
        except PlatformError as exc:  # the answer's own note said what happened already
            log.warning("could not offer a Retry button: %s", exc)

    async def _no_reply_after(self, key: ConversationKey, timeout_s: float, r: Renderer) -> None:
        await asyncio.sleep(timeout_s)
        self._no_reply.pop(key.id, None)  # from here on user input no longer cancels it
        task = asyncio.current_task()
        assert task is not None
        self._timer_turns[task] = key.platform
        try:
            await self._turn(key, NO_REPLY, r, launch_first=False)
        finally:
            del self._timer_turns[task]

    def timer_turns(self, platform: str) -> set[asyncio.Task[None]]:
        """The turns a no-reply timer started on ``platform`` that still run: an adapter's
        graceful shutdown ends them with its own turns."""
        return {task for task, on in self._timer_turns.items() if on == platform}

    def _cancel_no_reply(self, key_id: str) -> None:
        task = self._no_reply.pop(key_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _save_buttons(
        self, key: ConversationKey, buttons: Sequence[Button]
    ) -> list[ButtonRef]:
        refs = [ButtonRef(secrets.token_hex(8), b) for b in buttons]
        if refs:
            await self._store.save_buttons(key.id, [(r.id, r.button) for r in refs])
        return refs


def _parse_key(key_id: str) -> ConversationKey:
    platform, workspace, place, user = key_id.split("|", 3)
    return ConversationKey(platform, workspace, place, user)


@asynccontextmanager
async def open_bridge(settings: Settings) -> AsyncIterator[Bridge]:
    """Open the store and the Voiceflow client (the in-process simulator when no key is set)."""
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(await _voiceflow_client(settings, stack))
        store = await stack.enter_async_context(open_store(settings.state_url))
        bridge = Bridge(settings, client, store, upstream_forgets=settings.uses_simulator)
        try:
            yield bridge
        finally:
            await bridge.aclose()


async def _voiceflow_client(settings: Settings, stack: AsyncExitStack) -> VoiceflowClient:
    if settings.voiceflow_api_key is not None and settings.voiceflow_project_id is not None:
        return VoiceflowClient(
            base_url=settings.voiceflow_api_url,
            api_key=settings.voiceflow_api_key,
            project_id=settings.voiceflow_project_id,
            environment=settings.voiceflow_environment,
            idle_timeout_s=settings.voiceflow_idle_timeout_s,
        )
    from core.config import Secret
    from core.simulator import SIMULATOR_API_KEY, SIMULATOR_PROJECT_ID, Simulator

    simulator = await stack.enter_async_context(Simulator())
    log.info(
        "no VOICEFLOW_API_KEY set: using the built-in Voiceflow simulator at %s", simulator.url
    )
    return VoiceflowClient(
        base_url=simulator.url,
        api_key=Secret(SIMULATOR_API_KEY),
        project_id=SIMULATOR_PROJECT_ID,
        environment=settings.voiceflow_environment,
        idle_timeout_s=settings.voiceflow_idle_timeout_s,
    )
