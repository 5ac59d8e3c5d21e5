"""Typed Voiceflow traces (docs/voiceflow-api.md §5).

:func:`parse_trace` turns one bare trace object into one of these frozen dataclasses. Anything
it does not understand becomes :class:`Ignored`, never an exception: the turn goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from core.slate import slate_markdown

__all__ = [
    "AgentError",
    "Button",
    "Card",
    "Carousel",
    "Choice",
    "Completion",
    "End",
    "Ignored",
    "NoReply",
    "Text",
    "Trace",
    "Visual",
    "parse_trace",
]

log = logging.getLogger(__name__)

#: Trace kinds that carry nothing to render (SPEC §6): logged at debug and skipped.
IGNORED_KINDS = frozenset(
    {
        "flow",
        "block",
        "path",
        "goto",
        "knowledgeBase",
        "log",
        "entity-filling",
        "channel-action",
        "stream",
        "audio",
    }
)
DEFAULT_NO_REPLY_TIMEOUT_S = 10.0
#: How the runtime reports that it failed mid-turn, as a ``debug`` trace before ``end``
#: (docs/voiceflow-api.md §6): any other ``debug`` trace is noise.
RUNTIME_FAILURES = ("An internal error occurred.", "ERROR:")


@dataclass(frozen=True)
class Completion:
    """One event of a streamed LLM answer: ``start``, ``content`` (with text) or ``end``."""

    state: Literal["start", "content", "end"]
    content: str = ""


@dataclass(frozen=True)
class Text:
    """A whole message (``text`` or ``speak``); ``message`` is plain text or markdown."""

    message: str
    is_ai: bool = False


@dataclass(frozen=True)
class Button:
    """A button: ``request`` is sent back to Voiceflow verbatim when clicked."""

    name: str
    request: dict[str, Any]
    url: str | None = None  # from an open_url action of the request, whatever its type

    @property
    def is_link_only(self) -> bool:
        """Opening ``url`` is all it does (an ``action`` request): a plain link will do. A
        path, intent or text button that also opens a URL must still send its request."""
        return self.url is not None and self.request.get("type") == "action"


@dataclass(frozen=True)
class Choice:
    buttons: tuple[Button, ...]


@dataclass(frozen=True)
class Card:
    title: str
    description: str
    image_url: str | None
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True)
class Carousel:
    cards: tuple[Card, ...]
    layout: str = "Carousel"


@dataclass(frozen=True)
class Visual:
    image_url: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class End:
    """The conversation reached an End step: the next input must be ``launch``."""


@dataclass(frozen=True)
class NoReply:
    timeout_s: float = DEFAULT_NO_REPLY_TIMEOUT_S


@dataclass(frozen=True)
class AgentError:
    """The agent's runtime failed mid-turn (a ``debug`` trace saying so): the turn has no
    more to show, and the user should know it was cut short."""

    message: str


@dataclass(frozen=True)
class Ignored:
    kind: str
    payload: Any = field(default=None, compare=False)


Trace = Completion | Text | Choice | Card | Carousel | Visual | End | NoReply | AgentError | Ignored


def parse_trace(raw: Any) -> Trace:
    """Map a bare trace object onto a typed trace; unknown or malformed shapes are Ignored."""
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        return Ignored("malformed", raw)
    kind: str = raw["type"]
    payload = raw.get("payload")
    parser = _PARSERS.get(kind)
    if parser is None:
        if kind not in IGNORED_KINDS:
            log.debug("skipping unknown trace type %r", kind)
        return Ignored(kind, payload)
    try:
        return parser(payload)
    except (KeyError, TypeError, ValueError, AttributeError):
        log.warning("skipping malformed %r trace", kind)
        return Ignored(kind, payload)


def _completion(payload: Any) -> Trace:
    state = payload.get("state")
    if state not in ("start", "content", "end"):
        raise ValueError(state)
    content = payload.get("content") if state == "content" else ""
    return Completion(state, content if isinstance(content, str) else "")


def _text(payload: Any) -> Trace:
    message = payload.get("message")
    if not isinstance(message, str):
        raise ValueError("text without message")
    # The links and emphasis are in the slate only: `message` is its plain text.
    rich = slate_markdown(payload.get("slate"))
    return Text(rich or message, is_ai=bool(payload.get("ai")))


def _buttons(raw: Any) -> tuple[Button, ...]:
    buttons = []
    for item in raw or ():
        name = item.get("name") if isinstance(item, dict) else None
        request = item.get("request") if isinstance(item, dict) else None
        if isinstance(name, str) and name and isinstance(request, dict):
            buttons.append(Button(name, request, _open_url(request)))
    return tuple(buttons)


def _open_url(request: dict[str, Any]) -> str | None:
    payload = request.get("payload")
    actions = payload.get("actions") if isinstance(payload, dict) else None
    for action in actions or ():
        if isinstance(action, dict) and action.get("type") == "open_url":
            target = action.get("payload")
            url = target.get("url") if isinstance(target, dict) else None
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                return url
    return None


def _choice(payload: Any) -> Trace:
    return Choice(_buttons((payload or {}).get("buttons")))


def _description(raw: Any) -> str:
    if isinstance(raw, dict):
        return str(raw.get("text") or "")
    return str(raw or "")


def _card_of(raw: Any) -> Card:
    return Card(
        title=str(raw.get("title") or ""),
        description=_description(raw.get("description")),
        image_url=_optional_str(raw.get("imageUrl")),
        buttons=_buttons(raw.get("buttons")),
    )


def _card(payload: Any) -> Trace:
    return _card_of(payload)


def _carousel(payload: Any) -> Trace:
    cards = tuple(_card_of(c) for c in payload.get("cards") or () if isinstance(c, dict))
    return Carousel(cards, str(payload.get("layout") or "Carousel"))


def _visual(payload: Any) -> Trace:
    image = payload.get("image")
    if not isinstance(image, str) or not image:
        raise ValueError("visual without image")
    dims = payload.get("dimensions")
    dims = dims if isinstance(dims, dict) else {}
    return Visual(image, _optional_int(dims.get("width")), _optional_int(dims.get("height")))


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _debug(payload: Any) -> Trace:
    message = payload.get("message") if isinstance(payload, dict) else None
    if isinstance(message, str) and message.strip().startswith(RUNTIME_FAILURES):
        return AgentError(message.strip())
    return Ignored("debug", payload)


def _end(_payload: Any) -> Trace:
    return End()


def _no_reply(payload: Any) -> Trace:
    timeout = (payload or {}).get("timeout")
    return NoReply(DEFAULT_NO_REPLY_TIMEOUT_S if timeout is None else float(timeout))


_PARSERS = {
    "completion": _completion,
    "text": _text,
    "speak": _text,
    "choice": _choice,
    "cardV2": _card,
    "carousel": _carousel,
    "visual": _visual,
    "end": _end,
    "debug": _debug,
    "no-reply": _no_reply,
}
