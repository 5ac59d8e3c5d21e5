"""Markdown-aware splitting of a streamed answer into messages (SPEC §5), and the block
structure (code fences) that core.interim reads as well.

:func:`split_text` cuts an answer into parts that fit one platform message each. Every body is
an exact slice of the source; the only additions are a fence reopened at the start of a part
(``prefix``) and a fence closed at its end (``suffix``). Invariants:

* ``"".join(p.body for p in parts) == text`` and ``len(p.rendered) <= max_chars``;
* **stable under streaming**: every part but the last is final. The decision for a part reads
  only ``text[:pos + window + 1]``, which has always arrived when the remainder does not fit, and
  a line counts as a fence opener/closer only once its line break is inside that window;
* the last part is cut only when it no longer fits, tested by a measure that never shrinks as
  text is appended (``FENCE_RESERVE_CHARS`` is kept free as soon as a fence may be involved);
  for the same reason a part that is split off uses at most ``max_chars - FENCE_RESERVE_CHARS``
  characters before its closing fence.

Streaming use: call ``split_text(text, limit - INTERIM_DECORATION_MAX_CHARS)`` with the same
limit on every edit and at the end (stability holds per limit); send ``rendered`` for every part
but the last, and :func:`core.interim.interim_text` of ``last.prefix + last.body`` for the last
one while streaming.

Block structure (fences, the last paragraph) comes from markdown-it-py, parsed once per call.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from functools import cache

from markdown_it import MarkdownIt

__all__ = [
    "FENCE_RESERVE_CHARS",
    "INTERIM_DECORATION_MAX_CHARS",
    "MIN_MAX_CHARS",
    "SPACE_RUN",
    "Fence",
    "Part",
    "block_parser",
    "fence_closer",
    "fence_reopener",
    "find_open_fence",
    "line_starts",
    "md_line_count",
    "open_fence_at_end",
    "parts_from",
    "split_text",
    "with_note",
]

#: Upper bound of what :func:`core.interim.interim_text` appends (closing fence or inline markers).
INTERIM_DECORATION_MAX_CHARS = 12
#: Room kept for a closing fence once a part may involve one ("\n" + indent + marker).
FENCE_RESERVE_CHARS = 12
#: Smallest ``max_chars`` :func:`split_text` accepts (a reopened fence must leave room).
MIN_MAX_CHARS = 64
#: A lower-ranked boundary wins when the best-ranked one would fill less than this share.
MIN_FILL_RATIO = 0.5

_FENCE, _PARAGRAPH, _LINE, _SENTENCE, _WORD = 4, 3, 2, 1, 0
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
SPACE_RUN = re.compile(r"[ \t\n\r\f\v]+")
_NON_BLANK = re.compile(r"[^ \t\r\n]")
_SENTENCE_END = ".!?"
_QUOTE_CLOSERS = ")]\"'”’*_`"
# A line whose first marks are a fence marker (after container marks); never split inside it.
_FENCE_LIKE = re.compile(r"[ \t>]*(?:(?:[-+*]|\d{1,9}[.)])[ \t]+[ \t>]*)*(?:`{3,}|~{3,})")
_GLUE_AFTER = re.compile("[\u200d\u20e3\ufe00-\ufe0f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]")
_REGIONAL = re.compile("[\U0001f1e6-\U0001f1ff]")


@dataclass(frozen=True)
class Part:
    """One message's worth of an answer: ``body`` is a slice of the source text."""

    body: str
    prefix: str = ""
    suffix: str = ""

    @property
    def rendered(self) -> str:
        return self.prefix + self.body + self.suffix


@dataclass(frozen=True)
class Fence:
    open_at: int  # start of the opener line
    body_at: int  # start of the line after the opener
    close_at: int | None  # start of the closer line; None while unclosed
    end_at: int  # start of the line after the fence
    indent: str  # container marks before the marker, list markers blanked ("> ", "   ")
    markup: str  # "```", "~~~~", ...
    info: str  # info string as written, stripped

    @property
    def closer(self) -> str:
        return self.indent + self.markup


@cache
def block_parser() -> MarkdownIt:
    # Block structure only: inline parsing would cost most of the time and is not needed.
    return MarkdownIt("commonmark").disable("inline")


def line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in _LINE_BREAK.finditer(text))]


def md_line_count(text: str, starts: list[int]) -> int:
    """Lines as markdown-it counts them (a final line break opens no new line)."""
    return bisect.bisect_left(starts, len(text)) if text else 0


def _fences(text: str, starts: list[int]) -> list[Fence]:
    fences: list[Fence] = []
    for tok in block_parser().parse(text):
        if tok.type != "fence" or tok.map is None:
            continue
        first, last = tok.map
        line_end = starts[first + 1] if first + 1 < len(starts) else len(text)
        line = text[starts[first] : line_end].rstrip("\r\n")
        at = line.find(tok.markup)
        content_lines = tok.content.count("\n") + (not tok.content.endswith("\n"))
        if not tok.content:
            content_lines = 0
        is_closed = last - first - 1 - content_lines == 1
        fences.append(
            Fence(
                open_at=starts[first],
                body_at=line_end,
                close_at=starts[last - 1] if is_closed else None,
                end_at=starts[last] if last < len(starts) else len(text),
                indent=re.sub(r"[^ \t>]", " ", line[:at]),
                markup=tok.markup,
                info=line[at + len(tok.markup) :].strip(),
            )
        )
    return fences


def open_fence_at_end(text: str, fences: list[Fence] | None = None) -> Fence | None:
    if fences is None:
        fences = _fences(text, line_starts(text))
    if not fences:
        return None
    last = fences[-1]
    if last.close_at is None and not text[last.end_at :].strip():
        return last
    return None


def find_open_fence(text: str) -> str | None:
    """Info string ("" when bare) of a code fence still open at the end of ``text``, else None."""
    fence = open_fence_at_end(text)
    return None if fence is None else fence.info


def fence_closer(text: str) -> str:
    """The line that closes a code fence ``text`` leaves open, or "" (a note after an answer
    must not end up inside its code block). A ``~~~`` fence closes with ``~~~``: backticks
    would not close it."""
    fence = open_fence_at_end(text)
    return "" if fence is None else "\n" + fence.closer


def fence_reopener(text: str) -> str:
    """The opener line, with its info string, that continues a code fence ``text`` leaves
    open in a new message (same marker: ``~~~`` reopens as ``~~~``), or ""."""
    fence = open_fence_at_end(text)
    return "" if fence is None else f"{fence.closer}{fence.info}\n"


# --------------------------------------------------------------------------- split_text


class _Splitter:
    """One pass over ``text``; fences are parsed once and looked up by offset."""

    def __init__(self, text: str, max_chars: int) -> None:
        self.text = text
        self.max_chars = max_chars
        self.starts = line_starts(text)
        self.fences = _fences(text, self.starts)
        self.body_starts = [f.body_at for f in self.fences]
        self.openers = {f.open_at: f for f in self.fences}
        self.closed_ends = {f.end_at: f for f in self.fences if f.close_at is not None}

    def split(self) -> list[Part]:
        parts: list[Part] = []
        pos, fence = 0, None
        while pos < len(self.text):
            prefix = self._reopen(fence)
            if self._fits(pos, prefix):
                parts.append(Part(self.text[pos:], prefix, self._last_suffix(pos, fence, prefix)))
                break
            end, fence = self._choose(pos, prefix)
            parts.append(Part(self.text[pos:end], prefix, self._suffix(end, fence)))
            pos = end
        return parts

    def _reopen(self, fence: Fence | None) -> str:
        if fence is None:
            return ""
        full = f"{fence.closer}{fence.info}\n"
        return full if len(full) <= self.max_chars // 4 else fence.closer + "\n"

    def _fits(self, pos: int, prefix: str) -> bool:
        # Monotone under appending: the reserve, once due, stays due.
        text = self.text
        fenceish = bool(prefix) or text.find("```", pos) >= 0 or text.find("~~~", pos) >= 0
        reserve = FENCE_RESERVE_CHARS if fenceish else 0
        return len(prefix) + len(text) - pos + reserve <= self.max_chars

    def _last_suffix(self, pos: int, fence: Fence | None, prefix: str) -> str:
        tail = open_fence_at_end(self.text, self.fences)
        if tail is None or (tail.open_at < pos and fence is None):
            return ""
        suffix = self._suffix(len(self.text), tail)
        fits = len(prefix) + len(self.text) - pos + len(suffix) <= self.max_chars
        return suffix if fits else ""

    def _suffix(self, end: int, fence: Fence | None) -> str:
        if fence is None:
            return ""
        return fence.closer if self.text[end - 1] in "\r\n" else "\n" + fence.closer

    def _inside(self, s: int, lim: int) -> Fence | None:
        """The fence whose code ``s`` lies in, as seen from ``text[:lim]`` alone."""
        i = bisect.bisect_right(self.body_starts, s) - 1
        if i < 0:
            return None
        f = self.fences[i]
        if f.close_at is not None and f.end_at <= s and f.end_at < lim:
            return None  # fast path: after a fence whose closer is settled
        line = bisect.bisect_right(self.starts, s) - 1
        if not self._is_terminated(line, lim):
            s = self.starts[line]  # a partial line (maybe a closer) continues what came before
        code_end = self._code_end(f, lim)
        if code_end is None:
            return f
        return f if (s <= code_end if f.close_at is not None else s < code_end) else None

    def _is_terminated(self, line: int, lim: int) -> bool:
        return line + 1 < len(self.starts) and self.starts[line + 1] < lim

    def _code_end(self, f: Fence, lim: int) -> int | None:
        """Where ``f``'s code ends if ``text[:lim]`` settles it: its closer line, or (unclosed,
        in a container) its end once the next non-blank line is complete; else None."""
        if f.close_at is not None:  # end_at is where the line after the closer starts
            return f.close_at if f.end_at < lim else None
        deciding = _NON_BLANK.search(self.text, f.end_at, lim)
        if deciding is None:
            return None
        line = bisect.bisect_right(self.starts, deciding.start()) - 1
        return f.end_at if self._is_terminated(line, lim) else None

    def _choose(self, pos: int, prefix: str) -> tuple[int, Fence | None]:
        window = self.max_chars - len(prefix) - FENCE_RESERVE_CHARS
        lim = pos + window + 1  # text[:lim] has arrived whenever the remainder does not fit
        best: dict[int, int] = {}
        open_before: Fence | None = None
        for m in SPACE_RUN.finditer(self.text, pos, lim):
            if m.start() == pos or m.end() >= lim:
                continue
            found = self._candidate(m.start(), m.end(), lim)
            if found is None:
                continue
            cls, s, fence = found
            if fence is not None and not self._fits_inside(pos, prefix, s, fence, lim):
                continue
            best[cls] = s
            if cls == _FENCE:
                opened = self.openers.get(s)
                is_open = opened is not None and self._code_end(opened, lim) is None
                open_before = opened if is_open else None
        if open_before is not None and best.get(_FENCE) == open_before.open_at:
            return open_before.open_at, None  # the window ends inside it: keep it whole
        chosen = self._pick(best, pos, window)
        if chosen is None:
            return self._hard_cut(pos, prefix, lim)
        return chosen, self._inside(chosen, lim)

    def _fits_inside(self, pos: int, prefix: str, s: int, fence: Fence, lim: int) -> bool:
        if s == fence.body_at or (s == fence.close_at and self._code_end(fence, lim) == s):
            return False  # an empty reopened block, or a closer split from its fence
        return len(prefix) + s - pos + len(self._suffix(s, fence)) <= self.max_chars

    def _candidate(self, a: int, b: int, lim: int) -> tuple[int, int, Fence | None] | None:
        """Boundary class, split offset and enclosing fence for the whitespace run a..b."""
        text = self.text
        run = text[a:b]
        breaks = run.count("\n") + run.count("\r") - run.count("\r\n")
        if breaks == 0:
            line_start = self.starts[bisect.bisect_right(self.starts, a) - 1]
            if _FENCE_LIKE.match(text, line_start, a):
                return None
            fence = self._inside(b, lim)
            ends = fence is None and (
                text[a - 1] in _SENTENCE_END
                or (a >= 2 and text[a - 1] in _QUOTE_CLOSERS and text[a - 2] in _SENTENCE_END)
            )
            return (_SENTENCE if ends else _WORD), b, fence
        line_at = a + max(run.rfind("\n"), run.rfind("\r")) + 1
        opened = self.openers.get(line_at)
        if opened is not None and opened.body_at < lim:
            return _FENCE, line_at, self._inside(line_at, lim)
        first_break = _LINE_BREAK.search(text, a, b)
        if first_break is not None and first_break.end() in self.closed_ends:
            return _FENCE, b, self._inside(b, lim)
        cls = _PARAGRAPH if breaks >= 2 else _LINE
        # Code keeps its indentation; prose moves the whitespace to the earlier part.
        fence = self._inside(line_at, lim)
        s = line_at if fence is not None or text[b] in "`~" else b
        return cls, s, (fence if s == line_at else self._inside(s, lim))

    @staticmethod
    def _pick(best: dict[int, int], pos: int, window: int) -> int | None:
        for cls in (_FENCE, _PARAGRAPH, _LINE, _SENTENCE, _WORD):
            if cls in best and best[cls] - pos >= MIN_FILL_RATIO * window:
                return best[cls]
        return best[max(best)] if best else None

    def _hard_cut(self, pos: int, prefix: str, lim: int) -> tuple[int, Fence | None]:
        s = lim - 1
        fence = self._inside(s, lim)
        if fence is not None:
            s = min(s, pos + self.max_chars - len(prefix) - len(fence.closer) - 1)
        for _ in range(32):
            if s <= pos + 1 or not _is_glued(self.text, s):
                break
            s -= 1
        return s, self._inside(s, lim)


def _is_glued(text: str, s: int) -> bool:
    """Whether cutting before ``text[s]`` would break a character sequence."""
    before, after = text[s - 1], text[s]
    if before == "\r" and after == "\n":
        return True
    if "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff":
        return True
    if before == "\u200d" or _GLUE_AFTER.match(after) or unicodedata.combining(after):
        return True
    if _REGIONAL.match(before) and _REGIONAL.match(after):
        run = 0
        while s - run - 1 >= 0 and _REGIONAL.match(text[s - run - 1]):
            run += 1
        return run % 2 == 1  # flags are pairs of regional indicators
    return False


def split_text(text: str, max_chars: int) -> list[Part]:
    """Split ``text`` into parts whose ``rendered`` length is at most ``max_chars``.

    Boundaries, best first: before a code fence opens or after it closes, paragraph, line,
    sentence, word, then a hard cut that keeps "\\r\\n", surrogate pairs and emoji sequences
    whole. A better-ranked boundary yields to a lower one when it would fill less than
    ``MIN_FILL_RATIO`` of the message (except before a fence that would otherwise be split).
    Whitespace at a boundary ends the earlier part, except line indentation inside code.
    All parts but the last are final: appending text never changes them.
    Raises ValueError when ``max_chars < MIN_MAX_CHARS``.
    """
    if max_chars < MIN_MAX_CHARS:
        raise ValueError(f"max_chars must be at least {MIN_MAX_CHARS}, got {max_chars}")
    return _Splitter(text, max_chars).split()


def parts_from(text: str, offset: int, max_chars: int) -> list[Part]:
    """The parts of ``split_text(text, max_chars)`` from source ``offset`` on, the first one
    cut there (reopening the code block ``offset`` falls in)."""
    parts, start = [], 0
    for part in split_text(text, max_chars):
        end = start + len(part.body)
        if end > offset:
            if start < offset:
                prefix = fence_reopener(text[:offset])
                part = Part(part.body[offset - start :], prefix, part.suffix)
            parts.append(part)
        start = end
    return parts


def with_note(parts: list[Part], note: str) -> list[Part]:
    """End the last part with a note (after closing a code block left open)."""
    if not parts:
        return [Part(note, "", "")]
    last = parts[-1]
    closer = fence_closer(last.rendered)
    return [*parts[:-1], Part(last.body, last.prefix, f"{last.suffix}{closer}\n\n{note}")]
