"""The 6,000-character answer with a code block, end to end: split into messages of at most
2,000 characters, every part (and every interim view of it) valid markdown on its own, and the
parts' source text, joined, exactly the answer.

The checks here read markdown independently of core.markdown (which does the splitting): a
fence is a line starting with ``` or ~~~; inline markers are counted outside code.
"""

from __future__ import annotations

import re

import pytest

from core.simulator.content import long_answer
from tests.e2e import discord_fixtures
from tests.e2e.discord_fixtures import DiscordWorld, WorldFactory, strip_cursor
from tests.fakes.discord import FakeMessage

discord_world = discord_fixtures.discord_world
discord_world_factory = discord_fixtures.discord_world_factory

DISCORD_MAX_CHARS = 2000
_FENCE_LINE = re.compile(r"^(```|~~~)(.*)$", re.MULTILINE)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
INLINE_MARKERS = ("**", "__", "~~", "||")


def open_fence(markdown: str) -> str | None:
    """The info string of a code fence left open at the end of ``markdown``, else None."""
    info: str | None = None
    for _marker, rest in _FENCE_LINE.findall(markdown):
        if info is None:
            info = rest.strip()
        elif not rest.strip():
            info = None  # a bare fence line closes the open block
    return info


def prose(markdown: str) -> str:
    """``markdown`` without fenced code blocks and inline code spans."""
    kept, inside = [], False
    for line in markdown.split("\n"):
        if _FENCE_LINE.match(line) and (not inside or not line.strip("`~ ")):
            inside = not inside
        elif not inside:
            kept.append(line)
    return _INLINE_CODE.sub("", "\n".join(kept))


def unbalanced(markdown: str) -> list[str]:
    """What is left open in ``markdown``: a code fence, inline code, or inline markers."""
    problems = [f"open fence ```{open_fence(markdown)}"] if open_fence(markdown) is not None else []
    text = prose(markdown)
    if "`" in text:
        problems.append("open inline code")
    return problems + [m for m in INLINE_MARKERS if text.count(m) % 2]


def source_slices(contents: list[str], source: str, pos: int = 0) -> list[str] | None:
    """Each part's slice of ``source`` from ``pos`` on, or None if the parts are not the source
    cut into consecutive slices. A part may only add a fence: closed at its end when the cut is
    inside a code block, and then reopened with the block's language at the next part's start.
    """
    if not contents:
        return [] if pos == len(source) else None
    body = contents[0]
    reopened = open_fence(source[:pos])
    if reopened is not None:
        if not body.startswith(f"```{reopened}\n"):
            return None
        body = body.removeprefix(f"```{reopened}\n")
    # Whether the split added "```" or "\n```" depends on the cut: the next part decides.
    for piece in (body, body.removesuffix("```"), body.removesuffix("\n```")):
        is_closed_here = piece != body
        end = pos + len(piece)
        if not source.startswith(piece, pos) or is_closed_here != (
            open_fence(source[:end]) is not None
        ):
            continue
        rest = source_slices(contents[1:], source, end)
        if rest is not None:
            return [piece, *rest]
    return None


def answer_parts(world: DiscordWorld, question_id: str) -> list[FakeMessage]:
    """The bot's messages in channel 3000 created after the user's question, in order."""
    return [m for m in world.bot_messages("3000") if int(m.id) > int(question_id)]


async def test_a_6000_character_answer_splits_into_valid_markdown_parts(
    discord_world: DiscordWorld,
) -> None:
    w = discord_world
    source = long_answer()
    assert len(source) >= 6000 and open_fence(source) is None
    await w.mention("hi")  # the greeting first: the parts are the question's messages only
    await w.wait_settled("3000", turns=2)
    question = await w.mention("something long please")
    await w.wait_settled("3000", turns=3)
    parts = answer_parts(w, question)
    contents = [m.content for m in parts]
    assert len(parts) >= 4, [c[:40] for c in contents]
    slices = source_slices(contents, source)
    assert slices is not None, [(c[:30], c[-30:]) for c in contents]
    assert "".join(slices) == source  # nothing lost, nothing doubled, in order
    assert sum(c.startswith("```python\n") for c in contents) >= 1  # the code block was split
    for index, part in enumerate(parts):
        assert 0 < len(part.content) <= DISCORD_MAX_CHARS, (index, len(part.content))
        assert unbalanced(part.content) == [], (index, part.content[-200:])
        assert part.components == []
        for shown in _interim_views(w, part):
            assert unbalanced(shown) == [], (index, shown[-200:])
    assert w.fake.count_429 == 0


@pytest.mark.parametrize(
    ("status", "times", "headers"),
    [(429, 1, {"Retry-After": "0.3"}), (503, 3, {})],
    ids=["429-without-via", "three-503s"],
)
async def test_a_continuation_post_that_fails_for_a_moment_loses_nothing(
    discord_world_factory: WorldFactory, status: int, times: int, headers: dict[str, str]
) -> None:
    """The first post of the second part is refused (a 429 discord.py does not retry, or a
    short outage): the answer goes on in order, whole, and is not marked interrupted."""
    async with discord_world_factory(token_delay_s=0.005) as w:
        await w.mention("hi")
        await w.wait_settled("3000", turns=2)
        # after=1: the placeholder goes through, the continuation post meets the fault
        w.fake.inject(
            "POST", r"/channels/3000/messages", status=status, headers=headers, times=times, after=1
        )
        question = await w.mention("something long please")

        def whole() -> bool:
            slices = source_slices([m.content for m in answer_parts(w, question)], long_answer())
            return slices is not None and "".join(slices) == long_answer()

        await w.fake.wait_until(whole, 30)
        await w.wait_settled("3000", turns=3)
        contents = [m.content for m in answer_parts(w, question)]
        assert all("interrupted" not in c and len(c) <= DISCORD_MAX_CHARS for c in contents)
        assert w.fake.faults_left() == 0


def _interim_views(world: DiscordWorld, message: FakeMessage) -> list[str]:
    return [strip_cursor(r.json["content"]) for r in world.requests_for(message.id)]


def test_the_checks_catch_what_they_look_for() -> None:
    code = "Text **bold**\n\n```python\nx = 1\n"
    assert unbalanced(code) == ["open fence ```python"]
    assert unbalanced(code + "```") == []
    assert unbalanced("a **b") == ["**"] and unbalanced("a `b") == ["open inline code"]
    assert unbalanced("```\n**not markdown in code\n```") == []
    source = "intro\n\n```python\nx = 1\ny = 2\n```\n\nend"
    parts = ["intro\n\n```python\nx = 1\n```", "```python\ny = 2\n```\n\nend"]
    assert source_slices(parts, source) == ["intro\n\n```python\nx = 1\n", "y = 2\n```\n\nend"]
    assert source_slices(["intro\n\n```python\nx = 1\n```", "y = 2\n```\n\nend"], source) is None
    assert (
        source_slices(["intro\n\n```python\nx = 1\n", "```python\ny = 2\n```\n\nend"], source)
        is None
    )
    assert (
        source_slices(["intro\n\n", "intro\n\n```python\nx = 1\ny = 2\n```\n\nend"], source) is None
    )
