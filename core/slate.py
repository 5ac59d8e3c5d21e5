"""Slate rich text (a ``text`` trace's ``payload.slate``) as markdown.

A text trace's ``message`` is its plain text: the builder's links and emphasis are in
``slate.content`` only (docs/voiceflow-api.md §5): paragraphs of leaves that carry
``fontWeight``, ``italic``, ``strikeThrough`` (``underline`` has no markdown that every
platform reads, so it stays plain), and ``{"type": "link", "url", "children"}``. Rendered as
markdown, a link keeps its URL and bold stays bold on Discord, in Slack's ``markdown_text``
and in the terminal.
"""

from __future__ import annotations

from typing import Any

__all__ = ["slate_markdown"]

#: ``fontWeight`` values at or above this are bold (Voiceflow writes "700").
BOLD_WEIGHT = 600


def slate_markdown(slate: Any) -> str | None:
    """``slate`` as markdown, or None when it has nothing ``message`` lacks (or no shape)."""
    content = slate.get("content") if isinstance(slate, dict) else None
    if not isinstance(content, list) or not _is_rich(content):
        return None
    paragraphs = [_inline(block) for block in content if isinstance(block, dict)]
    text = "\n".join(paragraphs)
    return text if text.strip() else None


def _is_rich(nodes: list[Any]) -> bool:
    for node in nodes:
        if not isinstance(node, dict):
            continue
        if node.get("type") == "link" or _marks(node) != ("", ""):
            return True
        children = node.get("children")
        if isinstance(children, list) and _is_rich(children):
            return True
    return False


def _inline(node: dict[str, Any]) -> str:
    if "text" in node and not isinstance(node.get("children"), list):
        return _leaf(node)
    children = node.get("children")
    inner = "".join(_inline(c) for c in children if isinstance(c, dict)) if children else ""
    url = node.get("url")
    if node.get("type") == "link" and isinstance(url, str) and url.startswith(("http", "mailto")):
        label = inner.strip()
        return url if not label or label == url else f"[{label}]({url})"
    return inner


def _leaf(node: dict[str, Any]) -> str:
    text = str(node.get("text") or "")
    opener, closer = _marks(node)
    core = text.strip()
    if not opener or not core:
        return text
    # Markers hug the words: "** bold **" is not bold in markdown.
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
    return f"{lead}{opener}{core}{closer}{trail}"


def _marks(node: dict[str, Any]) -> tuple[str, str]:
    opener = ""
    if _is_bold(node.get("fontWeight")):
        opener += "**"
    if node.get("italic") is True:
        opener += "*"
    if node.get("strikeThrough") is True:
        opener += "~~"
    return opener, opener[::-1]


def _is_bold(weight: Any) -> bool:
    try:
        return int(str(weight)) >= BOLD_WEIGHT
    except ValueError:
        return str(weight).lower() == "bold"
