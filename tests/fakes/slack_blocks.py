"""Block Kit validation of the fake Slack: the limits real Slack enforces with `invalid_blocks`.

Limits are those of docs.slack.dev's Block Kit reference (blocks, block elements, composition
objects) and docs/slack.md §2. Real Slack answers a bad payload with
``{"ok": false, "error": "invalid_blocks", "response_metadata": {"messages": ["[ERROR] …
[json-pointer:/blocks/0/text/text]"]}}``; the fake does the same, naming the first problem, so
a failing test says which block broke which rule. Block types the bridge never sends (inputs,
rich text, video, files) are accepted with their common fields checked only.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.slack_model import MARKDOWN_MAX_CHARS, MAX_BLOCKS, SlackError

__all__ = ["check_blocks"]

BLOCK_ID_MAX = 255
ACTION_ID_MAX = 255
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
FIELD_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
IMAGE_URL_MAX = 3000
ALT_TEXT_MAX = 2000
IMAGE_TITLE_MAX = 2000
ACTIONS_ELEMENTS_MAX = 25
CONTEXT_ELEMENTS_MAX = 10
CONTEXT_TEXT_MAX = 3000
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
BUTTON_URL_MAX = 3000
BUTTON_STYLES = frozenset({"primary", "danger"})
TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})
LOOSE_BLOCKS = frozenset(
    {"rich_text", "input", "file", "video", "context_actions", "table", "call"}
)


class _Invalid(Exception):
    def __init__(self, message: str, pointer: str) -> None:
        super().__init__(f"[ERROR] {message} [json-pointer:{pointer}]")


def check_blocks(blocks: Any) -> None:
    """Raise `invalid_blocks` (with Slack's error message) unless ``blocks`` is valid."""
    if blocks is None:
        return
    try:
        _check_message(blocks)
    except _Invalid as exc:
        raise SlackError("invalid_blocks", messages=[str(exc)]) from None


def _check_message(blocks: Any) -> None:
    if not isinstance(blocks, list):
        raise _Invalid("must be an array", "/blocks")
    if len(blocks) > MAX_BLOCKS:
        raise _Invalid(f"must provide no more than {MAX_BLOCKS} items", "/blocks")
    block_ids: set[str] = set()
    markdown_chars = 0
    for i, block in enumerate(blocks):
        at = f"/blocks/{i}"
        _check_block(block, at)
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                raise _Invalid(f"duplicate block_id {block_id!r}", f"{at}/block_id")
            block_ids.add(block_id)
        if block["type"] == "markdown":
            markdown_chars += len(block["text"])
    if markdown_chars > MARKDOWN_MAX_CHARS:
        raise _Invalid(f"markdown blocks exceed {MARKDOWN_MAX_CHARS} characters", "/blocks")


def _check_block(block: Any, at: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise _Invalid("must be an object with a string type", at)
    block_id = block.get("block_id")
    if block_id is not None:
        _check_string(block_id, f"{at}/block_id", max_chars=BLOCK_ID_MAX)
    kind = block["type"]
    checker = _BLOCK_CHECKS.get(kind)
    if checker is not None:
        checker(block, at)
    elif kind not in LOOSE_BLOCKS:
        raise _Invalid(f"unknown block type {kind!r}", f"{at}/type")


def _check_section(block: dict[str, Any], at: str) -> None:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        raise _Invalid("must provide text or fields", at)
    if text is not None:
        _check_text(text, f"{at}/text", max_chars=SECTION_TEXT_MAX)
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > SECTION_FIELDS_MAX:
            raise _Invalid(f"must provide no more than {SECTION_FIELDS_MAX} items", f"{at}/fields")
        for j, field in enumerate(fields):
            _check_text(field, f"{at}/fields/{j}", max_chars=FIELD_TEXT_MAX)
    if block.get("accessory") is not None:
        _check_element(block["accessory"], f"{at}/accessory")


def _check_image(block: dict[str, Any], at: str) -> None:
    if block.get("image_url") is None and block.get("slack_file") is None:
        raise _Invalid("must provide image_url or slack_file", at)
    if block.get("image_url") is not None:
        _check_url(block["image_url"], f"{at}/image_url", max_chars=IMAGE_URL_MAX)
    _check_string(block.get("alt_text"), f"{at}/alt_text", max_chars=ALT_TEXT_MAX)
    if block.get("title") is not None:
        _check_text(block["title"], f"{at}/title", max_chars=IMAGE_TITLE_MAX, plain=True)


def _check_actions(block: dict[str, Any], at: str) -> None:
    elements = _items(block, "elements", at, most=ACTIONS_ELEMENTS_MAX)
    action_ids: set[str] = set()
    for j, element in enumerate(elements):
        _check_element(element, f"{at}/elements/{j}")
        action_id = element.get("action_id")
        if action_id is not None and action_id in action_ids:
            raise _Invalid(f"duplicate action_id {action_id!r}", f"{at}/elements/{j}/action_id")
        action_ids.add(action_id)


def _check_context(block: dict[str, Any], at: str) -> None:
    for j, element in enumerate(_items(block, "elements", at, most=CONTEXT_ELEMENTS_MAX)):
        where = f"{at}/elements/{j}"
        if isinstance(element, dict) and element.get("type") == "image":
            _check_url(element.get("image_url"), f"{where}/image_url", max_chars=IMAGE_URL_MAX)
            _check_string(element.get("alt_text"), f"{where}/alt_text", max_chars=ALT_TEXT_MAX)
        else:
            _check_text(element, where, max_chars=CONTEXT_TEXT_MAX)


def _check_header(block: dict[str, Any], at: str) -> None:
    _check_text(block.get("text"), f"{at}/text", max_chars=HEADER_TEXT_MAX, plain=True)


def _check_markdown(block: dict[str, Any], at: str) -> None:
    _check_string(block.get("text"), f"{at}/text", max_chars=MARKDOWN_MAX_CHARS)


def _check_divider(block: dict[str, Any], at: str) -> None:
    return None


_BLOCK_CHECKS = {
    "section": _check_section,
    "image": _check_image,
    "actions": _check_actions,
    "context": _check_context,
    "header": _check_header,
    "markdown": _check_markdown,
    "divider": _check_divider,
}


def _check_element(element: Any, at: str) -> None:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        raise _Invalid("must be an object with a string type", at)
    if element.get("action_id") is not None:
        _check_string(element["action_id"], f"{at}/action_id", max_chars=ACTION_ID_MAX)
    if element["type"] != "button":
        return  # menus, pickers, overflow: the bridge sends none
    _check_text(element.get("text"), f"{at}/text", max_chars=BUTTON_TEXT_MAX, plain=True)
    if element.get("value") is not None:
        _check_string(element["value"], f"{at}/value", max_chars=BUTTON_VALUE_MAX)
    if element.get("url") is not None:
        _check_string(element["url"], f"{at}/url", max_chars=BUTTON_URL_MAX)
    if element.get("style") is not None and element["style"] not in BUTTON_STYLES:
        raise _Invalid("must be one of primary, danger", f"{at}/style")


def _items(block: dict[str, Any], key: str, at: str, *, most: int) -> list[Any]:
    items = block.get(key)
    if not isinstance(items, list) or not items:
        raise _Invalid("must provide at least 1 item", f"{at}/{key}")
    if len(items) > most:
        raise _Invalid(f"must provide no more than {most} items", f"{at}/{key}")
    return items


def _check_text(obj: Any, at: str, *, max_chars: int, plain: bool = False) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in TEXT_TYPES:
        raise _Invalid("must be a text object (plain_text or mrkdwn)", at)
    if plain and obj["type"] != "plain_text":
        raise _Invalid("must be a plain_text object", f"{at}/type")
    _check_string(obj.get("text"), f"{at}/text", max_chars=max_chars)


def _check_string(value: Any, at: str, *, max_chars: int) -> None:
    if not isinstance(value, str) or not value:
        raise _Invalid("must be a non-empty string", at)
    if len(value) > max_chars:
        raise _Invalid(f"must be less than {max_chars + 1} characters", at)


def _check_url(value: Any, at: str, *, max_chars: int) -> None:
    _check_string(value, at, max_chars=max_chars)
    if not str(value).startswith(("http://", "https://")):
        raise _Invalid("must be a valid http(s) URL", at)
