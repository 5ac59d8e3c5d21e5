"""Block Kit for every non-streamed trace (SPEC §6) and for the stop control.

Button ids follow docs-dev/CONTRACTS.md: a stored button is ``action_id="vfb:<id>"`` with
``value=<id>``, the stop control ``vfs:<stop_id>``; a link button opens its URL and carries
``action_id="vfl:<id>"``, so its click is also sent on as the stored request. Generated text
is escaped for mrkdwn and stripped of broadcast mentions; long texts are cut to Block Kit's
limits.
"""

from __future__ import annotations

from typing import Any

from bots.slack.mentions import neutralize_broadcasts
from core.platform import ButtonRef
from core.traces import Card, Visual

__all__ = [
    "BUTTON_PREFIX",
    "LINK_PREFIX",
    "STOP_PREFIX",
    "button_blocks",
    "card_blocks",
    "chosen_blocks",
    "chosen_text",
    "escape_mrkdwn",
    "image_blocks",
    "markdown_blocks",
    "plain_fallback",
    "stop_block",
]

Block = dict[str, Any]

BUTTON_PREFIX = "vfb:"
STOP_PREFIX = "vfs:"
LINK_PREFIX = "vfl:"
BUTTON_LABEL_MAX = 75
BUTTONS_PER_ACTIONS = 25
SECTION_TEXT_MAX = 3000
ALT_TEXT_MAX = 2000
CONTEXT_TEXT_MAX = 3000
#: chat.update refuses a longer `text`; the fallback is the whole part (parts are shorter).
FALLBACK_MAX = 4000
STOP_LABEL = "⏹️ Stop"


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(neutralize_broadcasts(text) or " ", limit)}


def _button(ref: ButtonRef) -> Block:
    element: Block = {"type": "button", "text": _plain(ref.button.name, BUTTON_LABEL_MAX)}
    if ref.button.url:
        element["url"] = ref.button.url
        element["action_id"] = f"{LINK_PREFIX}{ref.id}"
    else:
        element["action_id"] = f"{BUTTON_PREFIX}{ref.id}"
        element["value"] = ref.id
    return element


def button_blocks(refs: list[ButtonRef]) -> list[Block]:
    """One actions block per 25 buttons (Block Kit's limit), in order."""
    return [
        {"type": "actions", "elements": [_button(r) for r in refs[i : i + BUTTONS_PER_ACTIONS]]}
        for i in range(0, len(refs), BUTTONS_PER_ACTIONS)
    ]


def card_blocks(card: Card, refs: list[ButtonRef]) -> list[Block]:
    """A card: section (bold title + description), image, then its buttons."""
    lines = [f"*{escape_mrkdwn(card.title)}*" if card.title.strip() else ""]
    if card.description.strip():
        lines.append(escape_mrkdwn(card.description))
    text = neutralize_broadcasts("\n".join(line for line in lines if line))
    blocks: list[Block] = []
    if text:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SECTION_TEXT_MAX)}}
        )
    if card.image_url:
        blocks.append(_image(card.image_url, card.title or "card image"))
    return blocks + button_blocks(refs)


def image_blocks(visual: Visual) -> list[Block]:
    return [_image(visual.image_url, "image")]


def _image(url: str, alt: str) -> Block:
    return {"type": "image", "image_url": url, "alt_text": _cut(alt, ALT_TEXT_MAX)}


def stop_block(stop_id: str) -> Block:
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": STOP_LABEL},
                "action_id": f"{STOP_PREFIX}{stop_id}",
                "value": stop_id,
            }
        ],
    }


def markdown_blocks(text: str, *, stop_id: str | None) -> list[Block]:
    """A message body as a ``markdown`` block (standard markdown, like ``markdown_text``).

    Used where ``markdown_text`` is impossible: it cannot be combined with the stop button's
    actions block, and a ``chat.update`` without ``blocks`` would keep the old blocks.
    """
    blocks: list[Block] = [{"type": "markdown", "text": text}]
    if stop_id is not None:
        blocks.append(stop_block(stop_id))
    return blocks


def chosen_blocks(blocks: list[Block], *, user_id: str, label: str) -> list[Block]:
    """The clicked message's blocks with its button set replaced by who chose what."""
    line = f"<@{user_id}> chose *{escape_mrkdwn(neutralize_broadcasts(label))}*"
    context: Block = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": _cut(line, CONTEXT_TEXT_MAX)}],
    }
    kept = [b for b in blocks if b.get("type") != "actions"]
    return [*kept, context]


def chosen_text(*, user_id: str, label: str) -> str:
    """The notification text of a chosen set: the bridge's own mention stays a mention."""
    return _cut(f"<@{user_id}> chose {neutralize_broadcasts(label)}", FALLBACK_MAX)


def plain_fallback(text: str) -> str:
    """The notification text that accompanies blocks (shown where blocks cannot be)."""
    return _cut(neutralize_broadcasts(text), FALLBACK_MAX) or " "
