"""Argument rules of the fake Slack Web API (docs/slack.md §2 and §4): content, streams, ids."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.slack_blocks import check_blocks
from tests.fakes.slack_model import MARKDOWN_MAX_CHARS, SlackError

__all__ = [
    "check_content",
    "decode_json_arg",
    "require",
    "require_channel",
    "stream_piece",
    "ts_key",
]

JSON_ARGS = frozenset({"blocks", "chunks", "attachments", "metadata", "loading_messages"})


def ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def decode_json_arg(key: str, value: Any) -> Any:
    # slack_sdk form-encodes some methods, sending lists such as `blocks` as JSON strings.
    if key in JSON_ARGS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def require(args: dict[str, Any], key: str, error: str) -> str:
    value = args.get(key)
    if not value:
        raise SlackError(error)
    return str(value)


def require_channel(args: dict[str, Any]) -> str:
    return require(args, "channel", "channel_not_found")


def check_content(args: dict[str, Any], *, text_max: int | None) -> None:
    text, blocks, markdown = args.get("text"), args.get("blocks"), args.get("markdown_text")
    if markdown is not None and (text or blocks):
        raise SlackError("markdown_text_conflict")
    if markdown is not None and len(str(markdown)) > MARKDOWN_MAX_CHARS:
        raise SlackError("msg_too_long")
    check_blocks(blocks)
    if not (text or blocks or markdown):
        raise SlackError("no_text")
    if text_max is not None and text and len(str(text)) > text_max:
        raise SlackError("msg_too_long")


def stream_piece(args: dict[str, Any], *, required: bool) -> tuple[str, list[dict[str, Any]]]:
    """The visible text and chunks of one stream call: `markdown_text` or `chunks`, not both."""
    markdown, chunks = args.get("markdown_text"), args.get("chunks")
    if markdown is not None and chunks is not None:
        raise SlackError("invalid_arguments")
    if markdown is not None:
        if len(str(markdown)) > MARKDOWN_MAX_CHARS:
            raise SlackError("msg_too_long")
        return str(markdown), [{"type": "markdown_text", "text": str(markdown)}]
    if chunks is None:
        if required:
            raise SlackError("invalid_arguments")
        return "", []
    if not isinstance(chunks, list) or not all(isinstance(c, dict) for c in chunks):
        raise SlackError("invalid_chunks")
    if required and not chunks:
        raise SlackError("invalid_arguments")
    text = "".join(str(c.get("text", "")) for c in chunks if c.get("type") == "markdown_text")
    return text, list(chunks)
