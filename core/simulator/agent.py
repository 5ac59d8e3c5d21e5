"""The simulator's agents: a deterministic default agent and replayed ``--script`` files.

An agent maps one request (``action``) to a list of trace objects. A completion may be written
in short form, ``{"type": "completion", "payload": {"content": "the whole answer"}}`` (no
``state``): :func:`expand_completions` cuts it into ``start``, ``content``×N, ``end`` the way
an LLM streams — chunks of 1–4 words, some split inside a word, now and then an empty chunk.

Script file format (JSON; example in ``examples/simulator-script.json``)::

    {
      "launch":   [trace, ...],                 # answer to {"type": "launch"}
      "texts":    {"user words": [trace, ...]}, # text requests, matched trimmed, case-insensitive
      "requests": {"path-abc": [trace, ...],    # any other request type, by its type;
                   "intent:Order": [...]},      # intents by "intent:<name>" (or just "intent")
      "fallback": [trace, ...]                  # optional; without it the default agent answers
    }

Every key is optional; each trace is an object with a string ``type``. Traces are sent as
written (``time`` is added), except short-form completions, which are chunked.
"""

from __future__ import annotations

import copy
import json
import random
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from core.errors import ConfigError
from core.simulator import content

__all__ = [
    "Agent",
    "DefaultAgent",
    "ScriptedAgent",
    "chunk_text",
    "collapse_completions",
    "expand_completions",
    "load_script",
]

TraceDict = dict[str, Any]
IMAGE_URL = "https://placehold.co/640x360.png?text=Voiceflow+simulator"
DOCS_URL = "https://docs.voiceflow.com/"
#: The request path of the welcome's "Show me buttons": it shows them, as typing "buttons" does.
SHOW_BUTTONS_PATH = "w3l5c0m3"
# Above this many tokens, chunks grow so that even the ~100,000-char answer streams in ~300 events.
_TOKENS_PER_CHUNK_SCALE = 750


class Agent(Protocol):
    def respond(self, action: dict[str, Any]) -> list[TraceDict]:
        """The traces answering ``action`` (completions may be in short form)."""
        ...


# --- trace builders -------------------------------------------------------------------------


def completion(text: str) -> TraceDict:
    return {"type": "completion", "payload": {"content": text}}


def text_trace(message: str, *, bold: str | None = None) -> TraceDict:
    """A ``text`` trace with a slate body; ``bold`` (a substring) is marked fontWeight 700."""
    children: list[dict[str, str]] = [{"text": message}]
    if bold and bold in message:
        before, _, after = message.partition(bold)
        children = [{"text": before}, {"text": bold, "fontWeight": "700"}, {"text": after}]
    slate = {"id": "sim", "content": [{"children": children}], "messageDelayMilliseconds": 1000}
    return {"type": "text", "payload": {"message": message, "delay": 1000, "slate": slate}}


def path_button(name: str, path_id: str) -> TraceDict:
    return {"name": name, "request": {"type": f"path-{path_id}", "payload": _labelled(name)}}


def intent_button(name: str) -> TraceDict:
    payload = {**_labelled(name), "query": name, "entities": [], "intent": {"name": name}}
    return {"name": name, "request": {"type": "intent", "payload": payload}}


def text_button(name: str) -> TraceDict:
    return {"name": name, "request": {"type": "text", "payload": name}}


def url_button(name: str, url: str) -> TraceDict:
    action = {"type": "open_url", "payload": {"url": url}}
    return {"name": name, "request": {"type": "action", "payload": {**_labelled(name, action)}}}


def _labelled(label: str, *actions: TraceDict) -> dict[str, Any]:
    return {"label": label, "actions": list(actions)}


def choice(*buttons: TraceDict) -> TraceDict:
    return {"type": "choice", "payload": {"buttons": list(buttons)}}


def card(title: str, description: str, *buttons: TraceDict) -> TraceDict:
    return {"type": "cardV2", "payload": _card_body(title, description, buttons)}


def _card_body(title: str, description: str, buttons: tuple[TraceDict, ...]) -> TraceDict:
    return {
        "title": title,
        "imageUrl": IMAGE_URL,
        "description": {"text": description},
        "buttons": list(buttons),
    }


def carousel(*cards: TraceDict) -> TraceDict:
    return {"type": "carousel", "payload": {"layout": "Carousel", "cards": list(cards)}}


def visual() -> TraceDict:
    payload = {
        "visualType": "image",
        "image": IMAGE_URL,
        "dimensions": {"width": 640, "height": 360},
        "canvasVisibility": "full",
    }
    return {"type": "visual", "payload": payload}


def end_trace() -> TraceDict:
    return {"type": "end"}


def no_reply(timeout_s: int) -> TraceDict:
    return {"type": "no-reply", "payload": {"timeout": timeout_s}}


# --- completions ----------------------------------------------------------------------------


def chunk_text(text: str) -> list[str]:
    """Cut ``text`` like an LLM stream; deterministic per text; ``"".join`` gives it back."""
    rng = random.Random(zlib.crc32(text.encode()))
    tokens = re.findall(r"\S+\s*|\s+", text)
    scale = max(1, len(tokens) // _TOKENS_PER_CHUNK_SCALE)
    chunks: list[str] = []
    start = boundary = index = 0
    while index < len(tokens):
        take = rng.randint(1, 4) * scale
        boundary += sum(len(t) for t in tokens[index : index + take])
        index += take
        cut = boundary + _split_inside(tokens[index] if index < len(tokens) else "", rng)
        chunks.append(text[start:cut])
        start = cut
        if rng.random() < 0.05:
            chunks.append("")
    return chunks


def _split_inside(next_token: str, rng: random.Random) -> int:
    """Sometimes move the cut into the next word, as LLM tokens do."""
    word = next_token.rstrip()
    if len(word) >= 4 and rng.random() < 0.3:
        return rng.randint(1, len(word) - 1)
    return 0


def _sequence(chunks: list[str]) -> list[TraceDict]:
    start = {"type": "completion", "payload": {"state": "start"}}
    end = {"type": "completion", "payload": {"state": "end"}}
    body = [{"type": "completion", "payload": {"state": "content", "content": c}} for c in chunks]
    return [start, *body, end]


def _is_short_form(payload: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(payload, dict) and "state" not in payload


def expand_completions(traces: list[TraceDict]) -> list[TraceDict]:
    """Replace short-form completions with start → content×N → end sequences."""
    expanded: list[TraceDict] = []
    for trace in traces:
        payload = trace.get("payload")
        if trace.get("type") == "completion" and _is_short_form(payload):
            expanded.extend(_sequence(chunk_text(str(payload.get("content") or ""))))
        else:
            expanded.append(trace)
    return expanded


def collapse_completions(traces: list[TraceDict]) -> list[TraceDict]:
    """``completion_events`` off: each sequence becomes one ``text`` with ``ai: true``."""
    collapsed: list[TraceDict] = []
    buffer: list[str] | None = None
    for trace in traces:
        payload = trace.get("payload") or {}
        if trace.get("type") != "completion":
            collapsed.append(trace)
        elif payload.get("state") == "start":
            buffer = []
        elif payload.get("state") == "content":
            buffer = (buffer or []) + [str(payload.get("content") or "")]
        elif payload.get("state") == "end" and buffer:
            collapsed.append({"type": "text", "payload": {"message": "".join(buffer), "ai": True}})
            buffer = None
    return collapsed


# --- the default agent ----------------------------------------------------------------------


def _buttons_turn(_text: str) -> list[TraceDict]:
    return [
        completion("Here are **buttons** of every kind — pick one:"),
        choice(
            path_button("Order coffee", "b7k2q9x1"),
            path_button("Track order", "c3m8w4z6"),
            intent_button("Forgot password"),
            text_button("Check balance"),
            url_button("Docs", DOCS_URL),
        ),
    ]


def _card_turn(_text: str) -> list[TraceDict]:
    buttons = (path_button("Tell me more", "d5n1v7y2"), url_button("Open docs", DOCS_URL))
    return [card("Voiceflow café ☕", "A card with an image and two buttons.", *buttons)]


def _carousel_turn(_text: str) -> list[TraceDict]:
    cards = []
    for number, title in enumerate(("Espresso", "Latte", "Crème brûlée"), start=1):
        body = _card_body(title, f"Card {number} of 3.", (path_button(title, f"card{number}"),))
        cards.append({"id": f"card-{number}", **body})
    return [carousel(*cards)]


def _mixed_turn(_text: str) -> list[TraceDict]:
    return [
        completion("First, a streamed part about **mixing** traces."),
        text_trace("A static note in between — café 👋."),
        completion("And a second streamed part, after the note."),
        choice(path_button("Again", "m1x2e3d4"), text_button("mixed")),
    ]


_ROUTES: tuple[tuple[str, Any], ...] = (
    ("buttons", _buttons_turn),
    ("image", lambda _t: [completion("Here is an image:"), visual()]),
    ("card", _card_turn),
    ("carousel", _carousel_turn),
    ("huge", lambda _t: [completion(content.huge_answer())]),
    ("long", lambda _t: [completion(content.long_answer())]),
    ("code", lambda _t: [completion(content.code_answer())]),
    ("end", lambda _t: [completion("Goodbye — the conversation **ends** here."), end_trace()]),
    ("noreply", lambda _t: [text_trace("Take your time… I'll wait 2 seconds."), no_reply(2)]),
    ("mixed", _mixed_turn),
    ("static", lambda _t: [text_trace("A static text reply, sent whole.", bold="static")]),
    ("empty", lambda _t: [completion("")]),
)


@dataclass
class DefaultAgent:
    """Keyword-routed demo agent (see the module docstring of ``core.simulator``)."""

    launch_buttons: tuple[TraceDict, ...] = field(
        default_factory=lambda: (
            path_button("Show me buttons", SHOW_BUTTONS_PATH),
            text_button("Tell me something long"),
            url_button("Voiceflow docs", DOCS_URL),
        )
    )

    def respond(self, action: dict[str, Any]) -> list[TraceDict]:
        kind = str(action.get("type"))
        payload = action.get("payload")
        if kind == "launch":
            return self._welcome()
        if kind == "text":
            return self._answer_text(str(payload or ""))
        if kind == "no-reply":
            return [text_trace("Are you still there?")]
        label = _label_of(payload) or kind
        if kind == f"path-{SHOW_BUTTONS_PATH}":
            return _buttons_turn(label)
        if kind.startswith("path-"):
            return [completion(content.label_answer("button", label))]
        if kind == "intent":
            return [completion(content.label_answer("intent", label))]
        return [text_trace(f"(received a request of type {kind!r}: {label})")]

    def _welcome(self) -> list[TraceDict]:
        message = "Hi! I'm the voiceflow-bridge simulator — café 👋. Ask me anything."
        return [text_trace(message, bold="simulator"), choice(*self.launch_buttons)]

    def _answer_text(self, text: str) -> list[TraceDict]:
        lowered = text.lower()
        for keyword, turn in _ROUTES:
            if re.search(rf"\b{keyword}\b", lowered):
                traces: list[TraceDict] = turn(text)
                return traces
        return [completion(content.echo_answer(text))]


def _label_of(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    label = payload.get("label") or (payload.get("intent") or {}).get("name")
    return label if isinstance(label, str) else None


def _intent_name(payload: Any) -> str | None:
    intent = payload.get("intent") if isinstance(payload, dict) else None
    name = intent.get("name") if isinstance(intent, dict) else None
    return name if isinstance(name, str) else None


# --- scripts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptedAgent:
    """Replays a script file; requests it does not cover go to ``fallback``."""

    launch: list[TraceDict] | None
    texts: dict[str, list[TraceDict]]
    requests: dict[str, list[TraceDict]]
    default: list[TraceDict] | None
    fallback: Agent = field(default_factory=DefaultAgent)

    def respond(self, action: dict[str, Any]) -> list[TraceDict]:
        found = self._lookup(action)
        if found is None:
            found = self.default
        if found is None:
            return self.fallback.respond(action)
        return copy.deepcopy(found)

    def _lookup(self, action: dict[str, Any]) -> list[TraceDict] | None:
        kind = str(action.get("type"))
        payload = action.get("payload")
        if kind == "launch" and self.launch is not None:
            return self.launch
        if kind == "text":
            return self.texts.get(str(payload or "").strip().lower())
        if kind == "intent":
            name = _intent_name(payload)
            return self.requests.get(f"intent:{name}") or self.requests.get("intent")
        return self.requests.get(kind)


def load_script(path: Path) -> ScriptedAgent:
    """Read a script file; any problem is a :class:`ConfigError` naming ``--script``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError("--script", f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError("--script", f"{path} must hold a JSON object")
    unknown = set(raw) - {"launch", "texts", "requests", "fallback"}
    if unknown:
        raise ConfigError("--script", f"{path}: unknown keys {sorted(unknown)}")
    return ScriptedAgent(
        launch=_traces(raw, "launch"),
        texts={k.strip().lower(): v for k, v in _table(raw, "texts").items()},
        requests=_table(raw, "requests"),
        default=_traces(raw, "fallback"),
    )


def _table(raw: dict[str, Any], key: str) -> dict[str, list[TraceDict]]:
    table = raw.get(key, {})  # absent is fine; [], 0, "" or null is a mistake to point out
    if not isinstance(table, dict):
        raise ConfigError("--script", f"{key!r} must map names to lists of traces")
    return {str(name): _checked(f"{key}.{name}", value) for name, value in table.items()}


def _traces(raw: dict[str, Any], key: str) -> list[TraceDict] | None:
    return None if raw.get(key) is None else _checked(key, raw[key])


def _checked(where: str, value: Any) -> list[TraceDict]:
    is_valid = isinstance(value, list) and all(
        isinstance(t, dict) and isinstance(t.get("type"), str) for t in value
    )
    if not is_valid:
        raise ConfigError("--script", f"{where} must be a list of objects with a string 'type'")
    return list(value)
