"""Broadcast mentions in generated text must never ping a channel (SPEC §5).

Slack notifies a whole channel for ``<!channel>``, ``<!here>``, ``<!everyone>`` and user-group
mentions ``<!subteam^ID>``; with ``link_names`` (or in markdown) the bare words ``@channel``,
``@here`` and ``@everyone`` do too. Everything Voiceflow or its LLM produced goes through
:func:`neutralize_broadcasts` before it reaches Slack: the text stays readable ("@here"), but a
zero-width joiner after the ``@`` means Slack no longer recognizes a mention.
"""

from __future__ import annotations

import re

__all__ = ["ZWJ", "neutralize_broadcasts"]

ZWJ = "\u200d"

# `<!here>`, `<!channel|channel>`, `<!everyone>`, `<!subteam^S123|@team>`
_SPECIAL = re.compile(r"<!(channel|here|everyone|subteam\^[A-Za-z0-9]+)(?:\|([^>]*))?>")
# `@here` as a word (not inside an e-mail address such as ops@here.example)
_WORD = re.compile(r"(?<![\w@])@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)


def neutralize_broadcasts(text: str) -> str:
    """Return ``text`` with every broadcast mention made inert but still readable."""
    if "@" not in text and "<!" not in text:
        return text
    text = _SPECIAL.sub(_special_label, text)
    return _WORD.sub("@" + ZWJ, text)


def _special_label(match: re.Match[str]) -> str:
    kind, label = match.group(1), match.group(2)
    name = (label or "group").lstrip("@") if kind.startswith("subteam^") else kind
    return f"@{ZWJ}{name}"
