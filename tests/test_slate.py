"""core/slate.py: a text trace's rich text keeps its links and emphasis as markdown."""

from __future__ import annotations

from typing import Any

import pytest

from core.slate import slate_markdown
from core.traces import Text, parse_trace


def slate(*paragraphs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "x1", "content": [{"children": list(p)} for p in paragraphs]}


def test_the_docs_example_keeps_its_bold() -> None:
    """docs/voiceflow-api.md §5, verbatim."""
    raw = {
        "type": "text",
        "time": 1725899197143,
        "payload": {
            "message": "Hello there!",
            "delay": 1000,
            "ai": True,
            "slate": slate(
                [{"text": "Hello "}, {"text": "there", "fontWeight": "700"}, {"text": "!"}]
            ),
        },
    }
    assert parse_trace(raw) == Text("Hello **there**!", is_ai=True)


def test_a_link_keeps_its_url() -> None:
    link = {
        "type": "link",
        "url": "https://docs.example.com/setup",
        "children": [{"text": "the docs"}],
    }
    rich = slate([{"text": "Read "}, link, {"text": " for details."}])
    assert slate_markdown(rich) == "Read [the docs](https://docs.example.com/setup) for details."


@pytest.mark.parametrize(
    ("leaf", "expected"),
    [
        ({"text": "bold ", "fontWeight": "700"}, "**bold** "),
        ({"text": " slanted", "italic": True}, " *slanted*"),
        ({"text": "gone", "strikeThrough": True}, "~~gone~~"),
        (
            {"text": "all", "fontWeight": 700, "italic": True, "strikeThrough": True},
            "***~~all~~***",
        ),
        ({"text": "under", "underline": True}, None),  # no markdown every platform reads
    ],
)
def test_marks_hug_the_words(leaf: dict[str, Any], expected: str | None) -> None:
    assert slate_markdown(slate([leaf])) == expected


def test_paragraphs_are_lines_and_a_bare_url_link_is_the_url() -> None:
    url = "https://example.com"
    rich = slate(
        [{"text": "One", "italic": True}],
        [{"type": "link", "url": url, "children": [{"text": url}]}],
    )
    assert slate_markdown(rich) == f"*One*\n{url}"


@pytest.mark.parametrize(
    "raw", [None, [], {"content": "x"}, {"content": [{"children": [{"text": "plain"}]}]}]
)
def test_plain_or_odd_slate_leaves_the_message(raw: Any) -> None:
    trace = parse_trace({"type": "text", "payload": {"message": "plain", "slate": raw}})
    assert trace == Text("plain")
