"""The invariant every fault test asserts, and what the simulator sent for a turn.

Invariant: every character Voiceflow sent is visible exactly once and in order — or, when the
stream broke, the answer shows everything that arrived and ends with a visible
"⚠️ interrupted" note; and no message is left hanging (no ▌ cursor, no Stop control).

Every asserted answer adds its length to :data:`CHECKED`, which ``tests/conftest.py`` reports
at the end of the session ("characters checked end to end").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bots.slack.blocks import STOP_PREFIX
from core.interim import interim_text
from core.platform import Outcome
from core.simulator import Simulator
from core.simulator.agent import ScriptedAgent, completion, expand_completions
from core.simulator.stream import decorate
from tests.e2e.discord_fixtures import BOT_ID, CURSOR, DiscordWorld
from tests.fakes.discord import FakeMessage
from tests.fakes.slack import FakeMessage as SlackMessage

INTERRUPTED = Outcome.INTERRUPTED.note
#: A continuation seam: the fence closed at the end of one part, reopened in the next.
_FENCE_SEAM = re.compile(r"\n```\n?```[^\n]*\n")


@dataclass
class Tally:
    answers: int = 0
    chars: int = 0
    faults: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.answers += 1
        self.chars += len(text)


CHECKED = Tally()


def interim_source(shown: str, full: str) -> int | None:
    """How much of ``full`` an interim view ``shown`` stands for, or None if it stands for none.

    Interim text is a markdown-safe prefix: a half-typed word waits, and an open ``**`` is
    closed — so "arrives **in**" is what a stream cut at "arrives **in or" shows.
    """
    shown = shown.rstrip()
    if full.startswith(shown):
        return len(shown)
    base = shown.rstrip("*_~|`")
    if not full.startswith(base):
        return None
    for end in range(len(base), len(full) + 1):
        if interim_text(full[:end]).rstrip() == shown:
            return end
    return None


def fault(name: str) -> None:
    """Count one injected fault (reported at the end of the session)."""
    CHECKED.faults.append(name)


def sentence_answer(chars: int, seed: str) -> str:
    """A plain markdown answer of about ``chars`` characters (no code fences)."""
    text, i = "", 0
    while len(text) < chars:
        i += 1
        text += f"Sentence {i} of the {seed} answer arrives **in order**, café 👋. "
        if i % 6 == 0:
            text = text.rstrip() + "\n\n"
    return text.rstrip()


#: Scripted answers by question; anything else goes to the simulator's default agent.
ANSWERS = {
    "short question": sentence_answer(400, "short"),
    "medium question": sentence_answer(1_500, "medium"),
    "second conversation": sentence_answer(300, "second"),
    "third conversation": sentence_answer(300, "third"),
}


TINY_CHUNKS = 1_000


def tiny_chunks() -> list[dict[str, Any]]:
    """One completion streamed as :data:`TINY_CHUNKS` chunks of five characters or so."""
    text = sentence_answer(TINY_CHUNKS * 5, "tiny-chunk")
    pieces = [text[i : i + 5] for i in range(0, len(text), 5)]
    return [
        {"type": "completion", "payload": {"state": "start"}},
        *({"type": "completion", "payload": {"state": "content", "content": p}} for p in pieces),
        {"type": "completion", "payload": {"state": "end"}},
    ]


def fault_agent() -> ScriptedAgent:
    """No greeting on launch (so a fault hits the user's turn), scripted answers, defaults."""
    texts = {q: [completion(a)] for q, a in ANSWERS.items()}
    texts["tiny chunks"] = tiny_chunks()
    return ScriptedAgent(launch=[], texts=texts, requests={}, default=None)


def events_for(simulator: Simulator, text: str) -> list[Any]:
    """The events the simulator sends for a text turn, before ``end`` (faults applied)."""
    action = {"type": "text", "payload": text}
    return decorate(expand_completions(simulator.agent.respond(action)), simulator.faults)


def full_answer(simulator: Simulator, text: str) -> str:
    return content_of(events_for(simulator, text))


def content_of(events: list[Any]) -> str:
    return "".join(
        str(e["payload"]["content"])
        for e in events
        if isinstance(e, dict)
        and e.get("type") == "completion"
        and e["payload"].get("state") == "content"
    )


def joined(contents: list[str]) -> str:
    return _FENCE_SEAM.sub("\n", "".join(contents))


# -- Discord ---------------------------------------------------------------------------------


def is_hanging(message: FakeMessage) -> bool:
    return message.content.endswith(CURSOR) or "vfs:" in str(message.components)


def discord_answer(world: DiscordWorld, channel_id: str, since: int = 0) -> list[FakeMessage]:
    """The bot's live messages in a channel, from the ``since``-th on."""
    return [m for m in world.fake.channel_messages(channel_id) if m.author_id == BOT_ID][since:]


def discord_settled(world: DiscordWorld, channel_id: str, expected: str, since: int = 0) -> bool:
    messages = discord_answer(world, channel_id, since)
    shown = joined([m.content for m in messages])
    return bool(messages) and not any(map(is_hanging, messages)) and shown == expected


async def wait_discord(
    world: DiscordWorld,
    channel_id: str,
    expected: str,
    *,
    since: int = 0,
    within_s: float = 30.0,
) -> list[FakeMessage]:
    """Until the channel shows exactly ``expected`` (joined) with nothing left hanging."""
    try:
        await world.fake.wait_until(
            lambda: discord_settled(world, channel_id, expected, since), within_s
        )
    except TimeoutError:
        shown = [(m.content[-120:], m.components) for m in discord_answer(world, channel_id, since)]
        raise AssertionError(f"expected {len(expected)} chars; the channel shows {shown}") from None
    CHECKED.add(expected)
    return discord_answer(world, channel_id, since)


async def wait_discord_interrupted(
    world: DiscordWorld, channel_id: str, full: str, at_least: str, *, since: int = 0
) -> str:
    """Until the answer ends with the note after a prefix of ``full`` that covers
    ``at_least``; returns the body shown."""

    def settled() -> bool:
        messages = discord_answer(world, channel_id, since)
        shown = joined([m.content for m in messages])
        return bool(messages) and not any(map(is_hanging, messages)) and shown.endswith(INTERRUPTED)

    await world.fake.wait_until(settled, 30)
    shown = joined([m.content for m in discord_answer(world, channel_id, since)])
    body = shown.removesuffix(INTERRUPTED).removesuffix("\n\n")
    assert full.startswith(body), (body[-200:], full[: len(body)][-200:])
    assert len(body) >= len(at_least), (len(body), len(at_least))
    assert shown.count(INTERRUPTED) == 1
    CHECKED.add(body)
    return body


# -- Slack -----------------------------------------------------------------------------------


def slack_hanging(message: SlackMessage) -> bool:
    return (
        message.streaming
        or message.visible_text.endswith(CURSOR)
        or STOP_PREFIX in str(message.blocks or "")
    )
