"""The Voiceflow side of the bench: the real simulator replaying timelines, timing every chunk.

:class:`ReplayAgent` answers ``launch`` with nothing and the text ``bench <key>`` with the
timeline's completion (start → content × N → end, sent as written). :class:`TimedTurnStream`
replaces the simulator's fixed token delay: chunk k is written at completion start + its
offset, and the write time of the start event and of every chunk is recorded on the monotonic
clock the fakes stamp their requests with — the arrival timeline of the lower bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.streams import Timeline
from core.simulator import server as simulator_server
from core.simulator.stream import Event, TurnStream
from core.simulator.wire import WireFormat

__all__ = ["PREFIX", "Recorded", "ReplayAgent", "timed_turns"]

PREFIX = "bench "


@dataclass
class Recorded:
    """When the simulator wrote one answer's start event and each of its chunks."""

    start: float = 0.0
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (write time, chars)


class ReplayAgent:
    """A simulator agent (``core.simulator.agent.Agent``) that replays bench timelines."""

    def __init__(self, timelines: dict[str, Timeline]) -> None:
        self.timelines = timelines
        self.recorded: dict[str, Recorded] = {}

    def respond(self, action: dict[str, Any]) -> list[dict[str, Any]]:
        if action.get("type") != "text":
            return []
        key = str(action.get("payload", "")).strip().removeprefix(PREFIX)
        timeline = self.timelines[key]
        content = [_completion("content", chunk) for chunk in timeline.chunks]
        return [_completion("start"), *content, _completion("end")]


def _completion(state: str, content: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"state": state}
    if content is not None:
        payload["content"] = content
    return {"type": "completion", "payload": payload}


def _state(event: Event) -> str | None:
    if not isinstance(event, dict) or event.get("type") != "completion":
        return None
    return str((event.get("payload") or {}).get("state"))


class TimedTurnStream(TurnStream):
    """A simulator turn whose chunks follow a timeline and whose writes are timed."""

    agent: ReplayAgent | None = None

    async def run(self, events: list[Event]) -> Any:
        body = await self.request.json()
        payload = str((body.get("action") or {}).get("payload") or "")
        self._key = payload.strip().removeprefix(PREFIX)
        self._chunk = 0
        self._record = Recorded()
        return await super().run(events)

    async def _pause(self, event: Event, sent: int, writer: Any, fmt: WireFormat) -> None:
        agent = type(self).agent
        if agent is None or _state(event) != "content" or self._key not in agent.timelines:
            await super()._pause(event, sent, writer, fmt)
            return
        due = self._record.start + agent.timelines[self._key].offsets[self._chunk]
        await asyncio.sleep(max(0.0, due - time.monotonic()))

    def _encode(self, event_id: int, event: Event, fmt: WireFormat) -> bytes:
        data = super()._encode(event_id, event, fmt)
        agent = type(self).agent
        state = _state(event)
        if agent is not None and state == "start":
            self._record.start = time.monotonic()
            agent.recorded[self._key] = self._record
        elif agent is not None and state == "content":
            chars = len(str(event["payload"].get("content") or ""))  # type: ignore[index]
            self._record.chunks.append((time.monotonic(), chars))
            self._chunk += 1
        return data


@contextlib.contextmanager
def timed_turns(agent: ReplayAgent) -> Iterator[None]:
    """Make every simulator in this process time its turns with ``agent``'s timelines."""
    saved = simulator_server.TurnStream
    TimedTurnStream.agent = agent
    simulator_server.TurnStream = TimedTurnStream  # type: ignore[misc]
    try:
        yield
    finally:
        simulator_server.TurnStream = saved  # type: ignore[misc]
        TimedTurnStream.agent = None
