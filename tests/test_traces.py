"""parse_trace: every trace kind of docs/voiceflow-api.md §5, and odd shapes that must not throw."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from core.traces import (
    DEFAULT_NO_REPLY_TIMEOUT_S,
    IGNORED_KINDS,
    AgentError,
    Button,
    Card,
    Carousel,
    Choice,
    Completion,
    End,
    Ignored,
    NoReply,
    Text,
    Visual,
    parse_trace,
)

PATH_REQUEST = {"type": "path-cmd906pp4", "payload": {"label": "Order coffee", "actions": []}}
URL_REQUEST = {
    "type": "action",
    "payload": {
        "label": "Docs",
        "actions": [{"type": "open_url", "payload": {"url": "https://example.com"}}],
    },
}


def button(name: Any, request: Any) -> dict[str, Any]:
    return {"name": name, "request": request}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"state": "start"}, Completion("start")),
        ({"state": "content", "content": "Perh"}, Completion("content", "Perh")),
        ({"state": "content", "content": ""}, Completion("content", "")),
        ({"state": "content"}, Completion("content", "")),
        ({"state": "content", "content": 42}, Completion("content", "")),
        ({"state": "end", "tokens": 17}, Completion("end")),
        ({"state": "start", "content": "ignored"}, Completion("start")),
    ],
)
def test_completion_states(payload: dict[str, Any], expected: Completion) -> None:
    assert parse_trace({"type": "completion", "payload": payload}) == expected


@pytest.mark.parametrize("payload", [{"state": "middle"}, {}, None, "content"])
def test_bad_completion_is_ignored(payload: Any) -> None:
    assert parse_trace({"type": "completion", "payload": payload}) == Ignored("completion")


def test_text_and_speak() -> None:
    slate = {"id": "x", "content": [{"children": [{"text": "Hi"}]}]}
    text = parse_trace({"type": "text", "time": 1, "payload": {"message": "Hi", "slate": slate}})
    speak = parse_trace({"type": "speak", "payload": {"message": "Yo", "type": "message"}})
    ai = parse_trace({"type": "text", "payload": {"message": "Gen", "ai": True}})
    assert (text, speak, ai) == (Text("Hi"), Text("Yo"), Text("Gen", is_ai=True))


def test_text_without_message_is_ignored() -> None:
    assert isinstance(parse_trace({"type": "speak", "payload": {"type": "audio"}}), Ignored)


def test_choice_keeps_requests_verbatim_and_drops_nameless_buttons() -> None:
    raw = {
        "type": "choice",
        "payload": {
            "buttons": [
                button("Order coffee", PATH_REQUEST),
                button("", PATH_REQUEST),
                button("No request", None),
                "junk",
                button("Docs", URL_REQUEST),
            ]
        },
    }
    assert parse_trace(raw) == Choice(
        (
            Button("Order coffee", PATH_REQUEST),
            Button("Docs", URL_REQUEST, url="https://example.com"),
        )
    )


@pytest.mark.parametrize("payload", [None, {}, {"choices": [{"name": "x", "intent": "y"}]}])
def test_choice_without_buttons_is_empty(payload: Any) -> None:
    assert parse_trace({"type": "choice", "payload": payload}) == Choice(())


@pytest.mark.parametrize(
    "target",
    [
        "https://not-a-dict.example",  # a string payload used to throw away the whole choice
        {"url": "javascript:alert(1)"},
        {"url": None},
        None,
    ],
)
def test_odd_open_url_keeps_the_choice(target: Any) -> None:
    request = {"type": "action", "payload": {"actions": [{"type": "open_url", "payload": target}]}}
    raw = {"type": "choice", "payload": {"buttons": [button("Go", request)]}}
    assert parse_trace(raw) == Choice((Button("Go", request, url=None),))


def test_card_v2() -> None:
    raw = {
        "type": "cardV2",
        "payload": {
            "title": "Latte",
            "imageUrl": "https://img.example/latte.png",
            "description": {"text": "Milky", "slate": []},
            "buttons": [button("Order", PATH_REQUEST)],
        },
    }
    assert parse_trace(raw) == Card(
        "Latte", "Milky", "https://img.example/latte.png", (Button("Order", PATH_REQUEST),)
    )


@pytest.mark.parametrize("image", ["", None, 5, ["x"]])
def test_card_without_usable_image(image: Any) -> None:
    raw = {"type": "cardV2", "payload": {"title": "T", "description": "plain", "imageUrl": image}}
    assert parse_trace(raw) == Card("T", "plain", None)


def test_carousel_skips_non_objects() -> None:
    card = {"id": "1", "title": "A", "description": {"text": "a"}, "imageUrl": "https://i/a"}
    raw = {"type": "carousel", "payload": {"layout": "List", "cards": [card, "junk", 3]}}
    assert parse_trace(raw) == Carousel((Card("A", "a", "https://i/a"),), "List")


def test_carousel_default_layout() -> None:
    assert parse_trace({"type": "carousel", "payload": {"cards": []}}) == Carousel(())


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"visualType": "image", "image": "https://i/x.png", "dimensions": {"width": 640}},
            Visual("https://i/x.png", 640, None),
        ),
        ({"image": "https://i/x.png", "dimensions": None}, Visual("https://i/x.png")),
        ({"image": "https://i/x.png", "dimensions": "big"}, Visual("https://i/x.png")),
        ({"image": "https://i/x.png", "dimensions": {"width": "640"}}, Visual("https://i/x.png")),
    ],
)
def test_visual(payload: dict[str, Any], expected: Visual) -> None:
    assert parse_trace({"type": "visual", "payload": payload}) == expected


def test_visual_without_image_is_ignored() -> None:
    assert isinstance(parse_trace({"type": "visual", "payload": {"visualType": "apl"}}), Ignored)


@pytest.mark.parametrize("raw", [{"type": "end"}, {"type": "end", "payload": None}])
def test_end(raw: dict[str, Any]) -> None:
    assert parse_trace(raw) == End()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"timeout": 2}, 2.0),
        ({"timeout": 2.5}, 2.5),
        ({}, DEFAULT_NO_REPLY_TIMEOUT_S),
        (None, DEFAULT_NO_REPLY_TIMEOUT_S),
        ({"timeout": None}, DEFAULT_NO_REPLY_TIMEOUT_S),  # used to drop the no-reply trace
    ],
)
def test_no_reply_timeout(payload: Any, expected: float) -> None:
    assert parse_trace({"type": "no-reply", "payload": payload}) == NoReply(expected)


def test_no_reply_with_garbage_timeout_is_ignored() -> None:
    assert isinstance(parse_trace({"type": "no-reply", "payload": {"timeout": "soon"}}), Ignored)


@pytest.mark.parametrize("kind", sorted(IGNORED_KINDS))
def test_noise_is_ignored_quietly(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="core.traces")
    assert parse_trace({"type": kind, "payload": {"message": "x"}}) == Ignored(kind)
    assert caplog.records == []


@pytest.mark.parametrize(
    "message", ["An internal error occurred.", "ERROR: turn timeout - check for infinite loops"]
)
def test_a_runtime_failure_reported_as_debug_is_an_agent_error(message: str) -> None:
    """docs/voiceflow-api.md §6: the runtime reports a crash as a debug trace before end."""
    raw = {"type": "debug", "payload": {"type": "runtime", "message": message}}
    assert parse_trace(raw) == AgentError(message)


@pytest.mark.parametrize("payload", [{"message": "simulated step finished"}, None, {"message": 3}])
def test_other_debug_traces_are_noise(payload: Any) -> None:
    assert parse_trace({"type": "debug", "payload": payload}) == Ignored("debug")


def test_unknown_trace_is_ignored_and_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="core.traces")
    parse_trace({"type": "calendar", "payload": {}, "paths": []})
    assert "calendar" not in caplog.text  # SPEC §6: logged at debug, not at info
    caplog.set_level(logging.DEBUG, logger="core.traces")
    trace = parse_trace({"type": "calendar", "payload": {"today": 1}, "paths": []})
    assert trace == Ignored("calendar")
    assert isinstance(trace, Ignored) and trace.payload == {"today": 1}
    assert "calendar" in caplog.text


@pytest.mark.parametrize("raw", [None, [], "text", 3, {}, {"type": 5}, {"payload": {}}])
def test_malformed(raw: Any) -> None:
    assert parse_trace(raw) == Ignored("malformed")
