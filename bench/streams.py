"""Arrival timelines: realistic Voiceflow completion streams, seeded and reproducible.

An answer is markdown (paragraphs, a list, bold, and — from 600 characters on — a fenced code
block), cut into ~4-character tokens and sent as SSE ``content`` chunks of 1–3 tokens at a
per-answer rate of 40–80 tokens/s, with jitter, a time to first token, bursts (several chunks
delivered back to back, as proxies batch them) and pauses (tool calls, retrieval, a slow
model step).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

__all__ = ["Timeline", "make_answer", "make_timeline"]

MIN_TOKENS_PER_S, MAX_TOKENS_PER_S = 40.0, 80.0
FIRST_TOKEN_S = (0.25, 0.6)
BURST_CHANCE = 0.03  # per chunk: the next 4–12 chunks arrive back to back
BURST_GAP_S = 0.002
PAUSE_EVERY_CHARS = 1_500  # on average one pause per this many characters
PAUSE_S = (0.4, 1.5)
_TOKEN = re.compile(r"\s*\S{1,4}|\s+")

_WORDS = [
    "agent",
    "flow",
    "step",
    "intent",
    "entity",
    "variable",
    "prompt",
    "knowledge",
    "base",
    "answer",
    "customer",
    "order",
    "account",
    "refund",
    "invoice",
    "shipping",
    "status",
    "window",
    "budget",
    "channel",
    "message",
    "stream",
    "token",
    "response",
    "latency",
    "request",
    "retry",
    "design",
    "simple",
    "clear",
    "exact",
    "value",
    "result",
    "table",
    "record",
]
_CODE = [
    "def handle(event: dict) -> str:",
    '    """Route one event to its handler."""',
    "    kind = event.get('type', 'text')",
    "    if kind == 'choice':",
    "        return render_buttons(event['buttons'])",
    "    total = sum(item['price'] * item['qty'] for item in event['items'])",
    "    return f'Total: {total:.2f} EUR'",
]


@dataclass(frozen=True)
class Timeline:
    """One answer as Voiceflow streams it: chunk texts and their offsets from completion start."""

    key: str
    chunks: tuple[str, ...]
    offsets: tuple[float, ...]  # seconds after the completion `start` event, non-decreasing

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def duration_s(self) -> float:
        return self.offsets[-1] if self.offsets else 0.0


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
    if rng.random() < 0.3:
        i = rng.randrange(len(words))
        words[i] = f"**{words[i]}**"
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", "?", "!"])


def make_answer(rng: random.Random, chars: int, *, title: str) -> str:
    """Markdown of about ``chars`` characters (cut at a word end), unique through ``title``."""
    parts = [f"**{title}**\n\n"]
    size = len(parts[0])
    has_code = chars < 600
    while size < chars:
        roll = rng.random()
        if not has_code and size > chars * 0.4:
            lines = rng.sample(_CODE, k=min(len(_CODE), rng.randint(4, 7)))
            block = "```python\n" + "\n".join(lines) + "\n```\n\n"
            has_code = True
        elif roll < 0.15:
            block = "".join(f"- {_sentence(rng)}\n" for _ in range(rng.randint(2, 4))) + "\n"
        else:
            block = " ".join(_sentence(rng) for _ in range(rng.randint(2, 5))) + "\n\n"
        parts.append(block)
        size += len(block)
    text = "".join(parts)
    if len(text) > chars:
        cut = text.rfind(" ", 0, chars)
        text = text[: cut if cut > chars // 2 else chars]
        if text.count("```") % 2:
            text += "\n```"
    return text.rstrip() + "\n"


def make_timeline(seed: int, chars: int, *, key: str) -> Timeline:
    """A seeded answer of ~``chars`` characters and the times its chunks arrive."""
    rng = random.Random(seed)
    text = make_answer(rng, chars, title=f"Answer {key}")
    tokens = _TOKEN.findall(text)
    assert "".join(tokens) == text
    rate = rng.uniform(MIN_TOKENS_PER_S, MAX_TOKENS_PER_S)
    chunks: list[str] = []
    offsets: list[float] = []
    now = rng.uniform(*FIRST_TOKEN_S)
    burst = 0
    i = 0
    while i < len(tokens):
        take = rng.randint(1, 3)
        chunk = "".join(tokens[i : i + take])
        i += take
        chunks.append(chunk)
        offsets.append(now)
        if burst > 0:
            burst -= 1
            now += BURST_GAP_S
            continue
        gap = take / rate * rng.lognormvariate(0.0, 0.35)
        if rng.random() < BURST_CHANCE:  # a stall, then the held-back chunks at once
            burst = rng.randint(4, 12)
            gap += burst * 2 / rate
        if rng.random() < len(chunk) / PAUSE_EVERY_CHARS:
            gap += rng.uniform(*PAUSE_S)
        now += gap
    return Timeline(key, tuple(chunks), tuple(offsets))
