"""Markdown-safe interim text: what an edit shows of the still-growing tail of an answer (SPEC §5).

:func:`interim_text` cuts back to a word (or sentence) boundary — a half-typed word waits for the
next edit — holds back half-typed mentions, links and fence markers, and closes an open code
fence or the inline markers the last paragraph leaves open, adding at most
``INTERIM_DECORATION_MAX_CHARS``. :func:`open_marker_start` tells where a message that must end
early should end so that both it and the rest stay valid markdown. Block structure comes from
core.markdown, which also splits the answer into messages.
"""

from __future__ import annotations

import re
from typing import Literal

from core.markdown import (
    INTERIM_DECORATION_MAX_CHARS,
    SPACE_RUN,
    block_parser,
    line_starts,
    md_line_count,
    open_fence_at_end,
)

__all__ = ["interim_text", "open_marker_start"]

_SENTENCE_CUT = re.compile(r"[.!?][)\]\"'”’*_~`|]*(?=\s|\Z)|\r\n|\r|\n")
_HALF_FENCE_LINE = re.compile(r"(?:\A|(?<=[\r\n]))[ \t>]*(?:`{1,2}|~{1,2})\Z")
_HALF_TOKEN = re.compile(
    # Discord <@1 <@!1 <@&1 <#1 <:e:1 <a:e:1; Slack <@U1 <#C1|name <!here <https://x|label
    r"<(?:[@#][!&]?\w*|a?:\w*(?::\d*)?|!\w*(?:\^\w*)?|[a-z][a-z0-9+.-]*(?::[^<>\s|]*)?)?"
    r"(?:\|[^<>\r\n]*)?\Z"
    r"|!?\[[^\[\]\r\n]{0,200}(?:\](?:\([^()\s]*)?)?\Z"  # [label  [label]  [label](http...
)


def interim_text(text: str, *, unit: Literal["word", "sentence"] = "word") -> str:
    """What to show of a still-growing tail: a markdown-safe prefix of ``text``.

    Cuts back to the last word boundary (``unit="word"``) or sentence end (``"sentence"``),
    holds back half-typed mentions, links and fence markers, then closes an open code fence or
    unclosed inline markers (``**``, ``__``, ``~~``, ``||``, ``*``, ``_``, inline code) of the
    last paragraph. Appends at most ``INTERIM_DECORATION_MAX_CHARS`` characters.
    """
    cut = _cut_to_boundary(text, unit)
    half_fence = _HALF_FENCE_LINE.search(cut)
    if half_fence is not None:
        cut = cut[: half_fence.start()]
    fence = open_fence_at_end(cut)
    if fence is not None:
        cut = cut.rstrip(" \t")  # indentation of a line not typed yet
        closer = fence.closer if cut.endswith(("\n", "\r")) else "\n" + fence.closer
        if len(closer) <= INTERIM_DECORATION_MAX_CHARS:
            return cut + closer
        return cut[: fence.open_at]
    return _balance_last_paragraph(cut)


def _cut_to_boundary(text: str, unit: Literal["word", "sentence"]) -> str:
    if unit == "sentence":
        ends = [m.end() for m in _SENTENCE_CUT.finditer(text)]
        return text[: ends[-1]] if ends else ""
    if not text or SPACE_RUN.match(text, len(text) - 1):
        return text
    runs = [m.end() for m in SPACE_RUN.finditer(text)]
    return text[: runs[-1]] if runs else ""


def _balance_last_paragraph(cut: str) -> str:
    start = _last_paragraph_start(cut)
    if start is None:
        return cut
    for _ in range(8):  # each hold-back shortens the text; a few rounds always suffice
        m = _HALF_TOKEN.search(cut, start)
        if m is None or _open_markers(cut[start : m.start()], in_code_only=True):
            break
        cut = cut[: m.start()]
    body = cut[start:].rstrip()
    markers = _open_markers(body)
    is_trimmed = False
    while markers and not body[markers[-1][1] + len(markers[-1][0]) :].strip():
        body = body[: markers.pop()[1]].rstrip()  # a dangling opener waits instead
        is_trimmed = True
    if not markers:
        return cut[:start] + body if is_trimmed else cut
    closing = "".join(marker for marker, _ in reversed(markers))
    if closing[0] == "`" and body.endswith("`"):
        closing = " " + closing  # else the runs would merge and not close the code span
    if len(closing) > INTERIM_DECORATION_MAX_CHARS:
        return cut[: start + markers[0][1]]
    return cut[:start] + body + closing


def open_marker_start(text: str) -> int | None:
    """Offset of the first inline marker that the last paragraph of ``text`` leaves open, or None.

    A message that must end at ``text`` ends before that marker instead, so that the rest of
    the answer, posted as a new message, starts with it and both stay valid markdown. An open
    code fence gives None: it is closed at the end of one message and reopened in the next.
    """
    if open_fence_at_end(text) is not None:
        return None
    start = _last_paragraph_start(text)
    markers = [] if start is None else _open_markers(text[start:])
    return None if start is None or not markers else start + markers[0][1]


def _last_paragraph_start(cut: str) -> int | None:
    """Offset of the block with inline content that reaches the end of ``cut``, if any."""
    stripped = cut.rstrip()
    if not stripped:
        return None
    starts = line_starts(stripped)
    inline = [t for t in block_parser().parse(stripped) if t.type == "inline" and t.map]
    if not inline or inline[-1].map is None:
        return None
    first, last = inline[-1].map
    return starts[first] if last >= md_line_count(stripped, starts) else None


def _open_markers(s: str, *, in_code_only: bool = False) -> list[tuple[str, int]]:
    """Unclosed inline markers of ``s`` as (marker, offset), innermost last."""
    stack: list[tuple[str, int]] = []
    code: tuple[str, int] | None = None
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and code is None:
            i += 2
            continue
        if ch not in "`*_~|":
            i += 1
            continue
        j = i
        while j < len(s) and s[j] == ch:
            j += 1
        run = s[i:j]
        if ch == "`":
            if code is None:
                code = (run, i)
            elif code[0] == run:
                code = None
        elif code is None:
            _toggle(stack, s, i, j)
        i = j
    if in_code_only:
        return [code] if code else []
    return [*stack, code] if code else stack


def _toggle(stack: list[tuple[str, int]], s: str, i: int, j: int) -> None:
    run = s[i:j]
    before = s[i - 1] if i > 0 else " "
    after = s[j] if j < len(s) else "x"  # a marker at the very end may open (and dangle)
    can_open = not after.isspace()
    can_close = not before.isspace()
    if run[0] == "_":  # intraword underscores are never emphasis
        can_open = can_open and not before.isalnum()
        can_close = can_close and not after.isalnum()
    if run[0] in "*_":
        markers = {1: [run], 2: [run], 3: [run[0], run[:2]]}.get(len(run), [])
    else:
        markers = [run] if len(run) == 2 else []  # ~~strike~~, ||spoiler||
    for marker in markers:
        open_at = next((k for k, (m, _) in enumerate(stack) if m == marker), None)
        if can_close and open_at is not None:
            del stack[open_at]
        elif can_open:
            stack.append((marker, i))
