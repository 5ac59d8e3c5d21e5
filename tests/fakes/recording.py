"""A recording fake platform at our own seam (core.platform): for relay and pacer tests.

`RecordingWriter` implements MessageWriter: it keeps every message's current text, records
each request with its time, enforces a hard platform limit (a sliding window per destination
that *raises* when exceeded, like a 429) and can fail scripted requests.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from core.budget import RateBudget
from core.errors import MessageGoneError, PlatformError, PlatformRateLimitedError
from core.paced_message import PacedMessage
from core.platform import ButtonRef
from core.traces import Card, Visual


@dataclass
class Request:
    kind: str  # post | edit | delete
    message_id: str
    text: str
    t: float
    stop_id: str | None = None


@dataclass
class Platform:
    """One destination's messages and requests, with a hard limit like a real 429."""

    limit: int = 5
    window_s: float = 5.0
    max_chars: int = 2000
    latency_s: float = 0.0
    messages: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    rejected_429: int = 0
    fail_next: deque[PlatformError] = field(default_factory=deque)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _check_rate(self, kind: str) -> None:
        now = time.monotonic()
        recent = [r for r in self.requests if r.kind == kind and r.t > now - self.window_s]
        if len(recent) >= self.limit:
            self.rejected_429 += 1
            raise PlatformRateLimitedError("429", retry_after=self.window_s)

    def visible(self) -> list[str]:
        return [self.messages[m] for m in self.order if m not in self.deleted]


class RecordingWriter:
    def __init__(self, platform: Platform) -> None:
        self.p = platform
        self.max_chars = platform.max_chars

    async def _request(self, kind: str) -> None:
        if self.p.latency_s:
            await asyncio.sleep(self.p.latency_s)
        if self.p.fail_next:
            raise self.p.fail_next.popleft()
        self.p._check_rate("post" if kind == "post" else "edit")

    async def post(self, text: str, *, stop_id: str | None) -> str:
        await self._request("post")
        assert 0 < len(text) <= self.max_chars, len(text)
        message_id = str(len(self.p.order) + 1)
        self.p.messages[message_id] = text
        self.p.order.append(message_id)
        self.p.requests.append(Request("post", message_id, text, time.monotonic(), stop_id))
        self.p.changed.set()
        return message_id

    async def edit(self, message_id: str, text: str, *, stop_id: str | None) -> None:
        await self._request("edit")
        if message_id in self.p.deleted:
            raise MessageGoneError("10008 Unknown Message")
        assert 0 < len(text) <= self.max_chars, len(text)
        self.p.messages[message_id] = text
        self.p.requests.append(Request("edit", message_id, text, time.monotonic(), stop_id))
        self.p.changed.set()

    async def delete(self, message_id: str) -> None:
        self.p.deleted.add(message_id)
        self.p.requests.append(Request("delete", message_id, "", time.monotonic()))


class RecordingRenderer:
    """A Renderer whose streamed messages are PacedMessages over a RecordingWriter."""

    typing_refresh_s = 0.05

    def __init__(self, platform: Platform, *, budget: RateBudget | None = None) -> None:
        self.platform = platform
        self.budget = budget or RateBudget(platform.limit, platform.window_s)
        self.post_budget = RateBudget(platform.limit, platform.window_s)
        self.events: list[tuple[str, object]] = []
        self.streams: list[PacedMessage] = []
        self.typing = 0
        self.typing_shown = asyncio.Event()

    async def show_typing(self) -> None:
        self.typing += 1
        self.typing_shown.set()

    def start_stream(self, stop_id: str) -> PacedMessage:
        stream = PacedMessage(
            RecordingWriter(self.platform),
            edit_budget=self.budget,
            post_budget=self.post_budget,
            stop_id=stop_id,
        )
        self.streams.append(stream)
        self.events.append(("stream", stop_id))
        return stream

    async def send_text(self, text: str) -> None:
        self.events.append(("text", text))

    async def send_buttons(self, buttons: list[ButtonRef]) -> None:
        self.events.append(("buttons", buttons))

    async def send_cards(self, cards: list[tuple[Card, list[ButtonRef]]]) -> None:
        self.events.append(("cards", cards))

    async def send_image(self, visual: Visual) -> None:
        self.events.append(("image", visual))

    async def send_notice(self, text: str) -> None:
        self.events.append(("notice", text))
