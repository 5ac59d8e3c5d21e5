"""Slack end-to-end harness: FakeSlack + the real Simulator + the real Bridge + SlackBot.

Test modules bind the fixtures by name (``slack_world = slack_fixtures.slack_world``; no
shared conftest). Everything runs for real over 127.0.0.1: slack-bolt / slack_sdk against the
fake's Web API, Socket Mode socket and signed HTTP deliveries; the Voiceflow client against the
simulator over HTTP; SQLite in tmp_path.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pytest

from bots.slack import SlackBot
from core.bridge import Bridge, open_bridge
from core.config import Secret, Settings
from core.simulator import SIMULATOR_API_KEY, SIMULATOR_PROJECT_ID, ScriptedAgent, Simulator
from core.simulator.agent import completion
from tests.fakes.slack import Call, FakeMessage, FakeSlack
from tests.fakes.slack_payloads import HUMAN_USER_ID

CHANNEL = "C0001"
DM = "D0001"
TEAM = "T0001"
PLACEHOLDER = "▌"
CURSOR = " ▌"
Mode = Literal["socket", "http"]
_FENCE_SEAM = re.compile(r"\n```\n?```[^\n]*\n")


def make_answer(chars: int, *, seed: str = "answer") -> str:
    """A markdown answer of exactly ``chars`` characters: paragraphs, bold, lists, no fences."""
    sentences = [
        f"This is sentence {i} of the {seed} — it streams **calmly** and in order, café 👋. "
        for i in range(1, 10_000)
    ]
    text, i = "", 0
    while len(text) < chars:
        text += sentences[i]
        if i % 7 == 6:
            text = text.rstrip() + "\n\n"
        if i % 11 == 10:
            text += f"- point {i}: keep it exact\n- and nothing doubled\n\n"
        i += 1
    return text[:chars].rstrip() + "."


#: Scripted answers by user text (lower case); anything else goes to the default agent.
ANSWERS: dict[str, str] = {
    "hello there": "Hello! Here is a **short** streamed answer with a list:\n\n- one\n- two\n\n"
    "And a final line — café 👋.",
    "tell me more": "More, as asked: a second answer in the *same* thread, streamed again.",
    "ten thousand": make_answer(10_000, seed="long answer"),
    "two thousand": make_answer(2_000, seed="medium answer"),
    "thirteen thousand": make_answer(13_000, seed="very long answer"),
    "broadcast": "Attention <!channel> and <!here>: @everyone should read this, @here too. "
    "Mail ops@here.example for details.",
}


def scripted_agent() -> ScriptedAgent:
    texts = {question: [completion(answer)] for question, answer in ANSWERS.items()}
    return ScriptedAgent(launch=[], texts=texts, requests={}, default=None)


def dm_event(text: str, *, ts: str, channel: str = DM, user: str = HUMAN_USER_ID) -> dict[str, Any]:
    """A direct message to the bot as Slack delivers it."""
    return {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "team": TEAM,
    }


@dataclass
class SlackWorld:
    fake: FakeSlack
    simulator: Simulator
    settings: Settings
    mode: Mode
    _bot: SlackBot | None = None
    _bridge: Bridge | None = None
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    @property
    def bot(self) -> SlackBot:
        assert self._bot is not None, "the bot is not started"
        return self._bot

    @property
    def bridge(self) -> Bridge:
        assert self._bridge is not None, "the bridge is not open"
        return self._bridge

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.bot.http_port}/slack/events"

    # -- driving ---------------------------------------------------------------------------
    def next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    async def deliver(
        self, event: dict[str, Any], *, event_id: str | None = None, retry: int = 0
    ) -> None:
        """Deliver one event the way the world's transport does."""
        if self.mode == "socket":
            await self.fake.send_event(event, event_id=event_id, retry_attempt=retry)
        else:
            response = await self.fake.post_event_http(
                self.events_url, event, event_id=event_id, retry_num=retry
            )
            assert response.status_code == 200, response.text

    async def mention(
        self,
        text: str,
        *,
        channel: str = CHANNEL,
        thread_ts: str | None = None,
        user: str = HUMAN_USER_ID,
    ) -> str:
        """A mention: Slack sends both ``app_mention`` and ``message`` (docs/slack.md §3)."""
        ts = self.next_ts()
        event: dict[str, Any] = {
            "user": user,
            "text": f"<@{self.fake.bot_user_id}> {text}",
            "ts": ts,
            "channel": channel,
            "team": TEAM,
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        await self.deliver({"type": "app_mention", **event})
        await self.deliver({"type": "message", "channel_type": "channel", **event})
        return ts

    async def delete(self, ts: str, *, channel: str, user: str = HUMAN_USER_ID) -> None:
        """The user deletes their message ``ts``: Slack's ``message_deleted`` event."""
        await self.deliver(
            {
                "type": "message",
                "subtype": "message_deleted",
                "hidden": True,
                "channel": channel,
                "ts": self.next_ts(),
                "deleted_ts": ts,
                "previous_message": {"type": "message", "user": user, "ts": ts},
            }
        )

    async def dm(self, text: str, *, channel: str = DM, user: str = HUMAN_USER_ID) -> str:
        ts = self.next_ts()
        await self.deliver(dm_event(text, ts=ts, channel=channel, user=user))
        return ts

    async def reply_in_thread(self, text: str, thread_ts: str, *, channel: str = CHANNEL) -> str:
        ts = self.next_ts()
        await self.deliver(
            {
                "type": "message",
                "channel_type": "channel",
                "user": HUMAN_USER_ID,
                "text": text,
                "ts": ts,
                "thread_ts": thread_ts,
                "channel": channel,
                "team": TEAM,
            }
        )
        return ts

    async def interact(self, payload: dict[str, Any]) -> None:
        """A block_actions click (or any interaction), over the world's transport."""
        if self.mode == "socket":
            envelope = await self.fake.send_interaction(payload)
            await self.fake.wait_ack(envelope)
        else:
            response = await self.fake.post_interaction_http(self.events_url, payload)
            assert response.status_code == 200, response.text

    async def click(
        self, message: FakeMessage, action_id: str, *, user: str = HUMAN_USER_ID
    ) -> None:
        element = next(
            e
            for block in message.blocks or []
            if block.get("type") == "actions"
            for e in block["elements"]
            if e.get("action_id") == action_id
        )
        await self.interact(
            {
                "type": "block_actions",
                "container": {
                    "type": "message",
                    "message_ts": message.ts,
                    "channel_id": message.channel,
                },
                "channel": {"id": message.channel, "name": message.channel.lower()},
                "user": {"id": user, "username": user.lower(), "team_id": TEAM},
                "message": {
                    "type": "message",
                    "ts": message.ts,
                    "text": message.visible_text,
                    "blocks": message.blocks,
                    "team": TEAM,
                    **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
                },
                "actions": [
                    {
                        "type": "button",
                        "action_id": action_id,
                        "block_id": "b",
                        "value": element.get("value"),
                        "text": element["text"],
                        "action_ts": "1700000001.000001",
                    }
                ],
            }
        )

    # -- observing -------------------------------------------------------------------------
    def answer_messages(self, channel: str, thread_ts: str | None) -> list[FakeMessage]:
        return self.fake.thread_messages(channel, thread_ts)

    def answer_text(self, channel: str, thread_ts: str | None) -> str:
        """What a reader sees, continuation seams (fence close + reopen) removed."""
        joined = "".join(m.visible_text for m in self.answer_messages(channel, thread_ts))
        return _FENCE_SEAM.sub("\n", joined)

    async def wait_answer(
        self, channel: str, thread_ts: str | None, expected: str, within_s: float = 20.0
    ) -> None:
        """Until the place shows exactly ``expected`` and no stream is still open."""

        def done() -> bool:
            messages = self.answer_messages(channel, thread_ts)
            return (
                not any(m.streaming for m in messages)
                and "".join(m.visible_text for m in messages) == expected
            )

        try:
            await self.fake.wait_until(done, within_s)
        except TimeoutError:
            seen = "".join(m.visible_text for m in self.answer_messages(channel, thread_ts))
            raise AssertionError(
                f"answer not shown; saw {len(seen)} chars:\n{seen[-400:]!r}"
            ) from None
        await self.bot.drain()
        await self.assert_acked_in_time()

    async def assert_acked_in_time(self) -> None:
        """Every delivery so far was acked within Slack's 3 s, so none was redelivered."""
        fake = self.fake
        try:
            await fake.wait_until(lambda: not fake.unacked, fake.ack_timeout_s)
        except TimeoutError:
            raise AssertionError(f"not acked: {fake.unacked}; {fake.redeliveries}") from None
        assert fake.redeliveries == [], f"Slack had to redeliver: {fake.redeliveries}"
        assert fake.late_acks == [], f"acked after {fake.ack_timeout_s}s: {fake.late_acks}"

    def text_requests(self) -> list[str]:
        return [
            str(r.json["action"].get("payload"))
            for r in self.simulator.requests
            if r.path.endswith("/interact/stream") and r.json and r.json["action"]["type"] == "text"
        ]

    def writes(self) -> list[Call]:
        """Every message-writing Web API call, in order."""
        methods = {
            "chat.postMessage",
            "chat.update",
            "chat.delete",
            "chat.startStream",
            "chat.appendStream",
            "chat.stopStream",
        }
        return [c for c in self.fake.calls if c.method in methods]

    # -- lifecycle -------------------------------------------------------------------------
    async def restart(self) -> None:
        await self._stack.aclose()
        self._stack = AsyncExitStack()
        await self.open_bot()

    async def open_bot(self) -> None:
        self._bridge = await self._stack.enter_async_context(open_bridge(self.settings))
        bot = SlackBot(self.settings, self._bridge, host="127.0.0.1")
        await bot.start()
        self._stack.push_async_callback(bot.close)
        self._bot = bot
        if self.mode == "socket":
            await self.fake.wait_socket()
        else:  # the bot's own writes come back as events, as over the socket
            self.fake.echo_url = self.events_url

    async def aclose(self) -> None:
        await self._stack.aclose()


WorldFactory = Callable[..., AbstractAsyncContextManager[SlackWorld]]


@asynccontextmanager
async def open_slack_world(
    tmp_path: Path,
    *,
    mode: Mode = "socket",
    token_delay_s: float = 0.002,
    settings_changes: dict[str, Any] | None = None,
    start: bool = True,
    **fake_options: Any,
) -> AsyncIterator[SlackWorld]:
    async with FakeSlack(**fake_options) as fake, Simulator(token_delay_s=token_delay_s) as sim:
        sim.agent = scripted_agent()
        settings = Settings(
            voiceflow_api_key=Secret(SIMULATOR_API_KEY),
            voiceflow_project_id=SIMULATOR_PROJECT_ID,
            voiceflow_api_url=sim.url,
            slack_bot_token=Secret(fake.bot_token),
            slack_app_token=Secret(fake.app_token) if mode == "socket" else None,
            slack_signing_secret=Secret(fake.signing_secret),
            slack_api_url=fake.api_url,
            slack_port=0,
            state_url=f"sqlite:///{tmp_path / 'state.db'}",
        )
        settings = replace(settings, **(settings_changes or {}))
        world = SlackWorld(fake, sim, settings, mode)
        try:
            if start:
                await world.open_bot()
            yield world
        finally:
            await world.aclose()


@pytest.fixture
def slack_world_factory(tmp_path: Path, slack_no_proxy: None) -> WorldFactory:
    """``async with slack_world_factory(mode="http", native_streaming=False) as world:``."""

    def factory(**options: Any) -> AbstractAsyncContextManager[SlackWorld]:
        return open_slack_world(tmp_path, **options)

    return factory


@pytest.fixture(params=["socket", "http"])
def slack_mode(request: pytest.FixtureRequest) -> Mode:
    """Each transport once: ``slack_world_factory(mode=slack_mode, …)``."""
    mode: Mode = request.param
    return mode


@pytest.fixture(params=["socket", "http"])
async def slack_world(
    request: pytest.FixtureRequest, slack_world_factory: WorldFactory
) -> AsyncIterator[SlackWorld]:
    """A started bot, once in Socket Mode and once in HTTP mode."""
    async with slack_world_factory(mode=request.param) as world:
        yield world


@pytest.fixture
def slack_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk honours *_PROXY and ignores NO_PROXY (testing-with-fakes.md §1)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
