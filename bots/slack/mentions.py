"""Mentions in generated text must never ping anyone (SPEC §5, issue 5 "nobody is pinged").

Slack notifies a whole channel for ``<!channel>``, ``<!here>``, ``<!everyone>`` and a user
group for ``<!subteam^ID>``; a person for ``<@U123>`` (``<@W123>`` on Enterprise Grid); with
``link_names`` (or in markdown) the bare words ``@channel``, ``@here`` and ``@everyone`` do
too. Slack has no ``allowed_mentions`` switch, so everything Voiceflow or its LLM produced goes
through :func:`neutralize_broadcasts` before it reaches Slack: the text stays readable
("@here", "@ann" for ``<@U123|ann>``), but a zero-width joiner after the ``@`` means Slack no
longer recognizes a mention. The bridge's own deliberate mention (who clicked a button) is
written after this and is not touched.

A mention must also never be assembled by Slack from two pieces: a native stream's appends
are concatenated, so :func:`open_mention_start` finds, at the end of a piece, the start of
anything that the next piece could complete into a mention (``<!chan``, ``<@U1|ann``,
``@he``), and the stream holds the text back from there until it ends.
"""

from __future__ import annotations

import re

__all__ = ["ZWJ", "neutralize_broadcasts", "open_mention_start"]

ZWJ = "\u200d"

# `<!here>`, `<!channel|channel>`, `<!everyone>`, `<!subteam^S123|@team>`
_SPECIAL = re.compile(r"<!(channel|here|everyone|subteam\^[A-Za-z0-9]+)(?:\|([^>]*))?>")
# `<@U123>`, `<@W123|ann>`
_USER = re.compile(r"<@([UW][A-Za-z0-9]+)(?:\|([^>]*))?>")
# `@here` as a word (not inside an e-mail address such as ops@here.example). Markdown
# emphasis around it (`_@here_`, `__@channel__`, `*@here*`, `~@here~`) still pings, so only a
# letter, digit or `@` before it and a letter or digit after it make it part of another word;
# `\w`/`\b` would count `_` as a letter.
_WORD = re.compile(r"(?<![^\W_]|@)@(?=(?:channel|here|everyone)(?![^\W_]))", re.IGNORECASE)
_BROADCASTS = ("channel", "here", "everyone")
# What may follow `<!` or `<@` up to a `|` or `>` in a mention, and its beginnings.
_SPECIAL_NAME = re.compile(r"channel|here|everyone|subteam\^[A-Za-z0-9]+")
_SPECIAL_NAMES = (*_BROADCASTS, "subteam^")
_GROUP_NAME_START = re.compile(r"subteam\^[A-Za-z0-9]*")
_USER_NAME = re.compile(r"[UW][A-Za-z0-9]+")
_USER_NAME_START = re.compile(r"(?:[UW][A-Za-z0-9]*)?")
# A bare `@` word at the very end, where `@here` etc. would count as a word (see _WORD).
_WORD_AT_END = re.compile(r"(?<![^\W_]|@)@([A-Za-z]*)$")


def neutralize_broadcasts(text: str) -> str:
    """Return ``text`` with every broadcast, group and user mention inert but readable."""
    if "@" not in text and "<!" not in text:
        return text
    text = _SPECIAL.sub(_special_label, text)
    text = _USER.sub(_user_label, text)
    return _WORD.sub("@" + ZWJ, text)


def _special_label(match: re.Match[str]) -> str:
    kind, label = match.group(1), match.group(2)
    name = (label or "group").lstrip("@") if kind.startswith("subteam^") else kind
    return f"@{ZWJ}{name}"


def _user_label(match: re.Match[str]) -> str:
    user_id, label = match.group(1), match.group(2)
    return f"@{ZWJ}{(label or user_id).lstrip('@')}"


def open_mention_start(text: str) -> int | None:
    """Where, at the end of ``text``, a mention the next piece could complete begins; or None.

    ``<!chan`` (+ ``nel>``), ``<!here|`` + any label, ``<@U12`` , a lone ``<``, and a bare
    ``@``, ``@he`` or ``@channe`` (+ ``re``, ``l``). Only mentions open after the last ``>``
    can still close.
    """
    after = text.rfind(">") + 1
    start = text.find("<", after)
    while start != -1:
        if _could_open(text[start + 1 :]):
            return start
        start = text.find("<", start + 1)
    word = _WORD_AT_END.search(text, after)
    if word is not None and any(b.startswith(word.group(1).lower()) for b in _BROADCASTS):
        return word.start()
    return None


def _could_open(rest: str) -> bool:
    """Could ``"<" + rest`` (no ``>`` in it) still become a mention?"""
    if not rest:
        return True
    kind = rest[0]
    head, bar, _ = rest[1:].partition("|")
    if kind == "!":
        if bar:
            return _SPECIAL_NAME.fullmatch(head) is not None
        begun = any(name.startswith(head) for name in _SPECIAL_NAMES)
        return begun or _GROUP_NAME_START.fullmatch(head) is not None
    if kind == "@":
        names = _USER_NAME if bar else _USER_NAME_START
        return names.fullmatch(head) is not None
    return False
