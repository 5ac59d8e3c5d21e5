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
are concatenated, so :data:`OPEN_MENTION` finds a mention that has begun but not yet ended,
and the stream holds the text back from there until it ends.
"""

from __future__ import annotations

import re

__all__ = ["OPEN_MENTION", "ZWJ", "neutralize_broadcasts"]

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
#: A `<!…` or `<@…` still waiting for its `>` at the end of the text.
OPEN_MENTION = re.compile(r"<[!@][^<>]*$")


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
