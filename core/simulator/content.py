"""Deterministic answer texts of the simulator's default agent.

Every text is markdown and contains non-ASCII characters (``café 👋``) so that byte-split writes
cut through multi-byte UTF-8 sequences.
"""

from __future__ import annotations

__all__ = [
    "LONG_ANSWER_CHARS",
    "code_answer",
    "echo_answer",
    "huge_answer",
    "label_answer",
    "long_answer",
]

LONG_ANSWER_CHARS = 6_000
HUGE_ANSWER_CHARS = 100_000

_TOPICS = (
    "streaming",
    "rate limits",
    "buttons",
    "markdown",
    "threads",
    "reconnects",
    "state",
    "carousels",
)

_PARAGRAPH = (
    "Streaming an answer about **{topic}** means the first words show up almost at once, "
    "then the message grows in place while the model keeps writing. A good bridge edits "
    "at a steady pace, never floods the channel, and always ends with exactly the text the "
    "agent produced — no more, no less. Think of it like a café 👋 order being read back "
    "as it is written: short pieces, in order, each one appended to the last."
)


def echo_answer(text: str) -> str:
    """The fallback answer: a few sentences, bold, a list, and the user's words."""
    words = text.strip() or "(nothing)"
    return (
        f"You said: **{words}**. I'm the built-in simulator, so I echo what I hear — café 👋.\n\n"
        "Here is what I can show you:\n"
        "- `buttons`, `card`, `carousel` and `image`\n"
        "- `long`, `huge` and `code` answers\n"
        "- `mixed`, `static`, `empty`, `noreply` and `end`\n\n"
        "Type one of those words to try it. Everything else gets this friendly echo."
    )


def label_answer(kind: str, label: str) -> str:
    """Answer to a button click or intent: mentions what was chosen."""
    return (
        f"You chose **{label}** ({kind}). Good pick — here is the answer for _{label}_, "
        f"streamed just like any other reply. Merci, café 👋!"
    )


def code_answer() -> str:
    return (
        "Here is a small example in Python:\n\n"
        "```python\n"
        "def greet(name: str) -> str:\n"
        '    """Say hello — café style 👋."""\n'
        '    return f"Hello, {name}!"\n'
        "\n\n"
        'print(greet("Voiceflow"))\n'
        "```\n\n"
        "Run it and you should see `Hello, Voiceflow!`."
    )


def _python_block(min_chars: int) -> str:
    """A syntactically valid Python snippet at least ``min_chars`` long."""
    parts = ["import asyncio\n"]
    index = 0
    while sum(map(len, parts)) < min_chars:
        topic = _TOPICS[index % len(_TOPICS)].replace(" ", "_")
        parts.append(
            f"\n\nasync def handle_{topic}_{index}(queue: asyncio.Queue[str]) -> int:\n"
            f'    """Drain the {topic} queue and count the items — step {index}."""\n'
            "    count = 0\n"
            "    while not queue.empty():\n"
            "        item = await queue.get()\n"
            f'        print(f"{topic} #{index}: {{item}}")\n'
            "        count += 1\n"
            "    return count\n"
        )
        index += 1
    return "".join(parts)


def long_answer() -> str:
    """At least 6,000 characters (the overflow case of the acceptance tests): paragraphs, a
    list, and a Python block longer than 2,000 characters, so it must be split as well."""
    head = "## A long answer\n\n" + "\n\n".join(
        _PARAGRAPH.format(topic=topic) for topic in _TOPICS[:4]
    )
    code = "\n\n```python\n" + _python_block(2_200) + "```\n\n"
    text = head + code + "Key points:\n\n"
    ending = "\nThat is the end of the long answer. Merci, café 👋!"
    index = 0
    while len(text) + len(ending) < LONG_ANSWER_CHARS:
        topic = _TOPICS[index % len(_TOPICS)]
        text += f"- **{topic.title()}** — point {index + 1}: keep it calm, keep it in order.\n"
        index += 1
    return text + ending


def huge_answer() -> str:
    """~100,000 characters of numbered markdown sections."""
    sections = []
    size = 0
    index = 0
    while size < HUGE_ANSWER_CHARS:
        topic = _TOPICS[index % len(_TOPICS)]
        section = f"### Section {index + 1}: {topic}\n\n" + _PARAGRAPH.format(topic=topic)
        sections.append(section)
        size += len(section) + 2
        index += 1
    return "\n\n".join(sections)
