"""Self-tests of the fake Slack's Block Kit validation, through the real AsyncWebClient, and of
what it counts as a ping."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.e2e import slack_fixtures
from tests.fakes.slack import FakeMessage, FakeSlack

CHANNEL = "C0001"
IMAGE = "https://example.com/cafe.png"

slack_no_proxy = slack_fixtures.slack_no_proxy
pytestmark = pytest.mark.usefixtures("slack_no_proxy")


def plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(label: str = "Go", *, action_id: str = "vfb:1", **extra: str) -> dict[str, Any]:
    return {"type": "button", "text": plain(label), "action_id": action_id, **extra}


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


def buttons(n: int) -> dict[str, Any]:
    return actions(*(button(f"B{i}", action_id=f"vfb:{i}", value=str(i)) for i in range(n)))


def image(**fields: str) -> dict[str, Any]:
    return {"type": "image", **fields}


def at_the_limits() -> list[dict[str, Any]]:
    """50 blocks, each field at its maximum: Slack accepts every one of them."""
    card = [
        section("s" * 3000),
        image(image_url=IMAGE, alt_text="a" * 2000),
        actions(*(button("b" * 75, action_id=f"{i:0255d}", value="v" * 2000) for i in range(25))),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 3000}] * 10},
        {"type": "header", "text": plain("h" * 150)},
        {"type": "markdown", "text": "m" * 12_000},
    ]
    return card + [{"type": "divider", "block_id": f"d{i}"} for i in range(50 - len(card))]


INVALID: dict[str, tuple[list[dict[str, Any]], str]] = {
    "51 blocks": ([{"type": "divider"}] * 51, "/blocks"),
    "image without alt_text": ([image(image_url=IMAGE)], "/blocks/0/alt_text"),
    "image without image_url": ([image(alt_text="cafe")], "/blocks/0"),
    "image with empty alt_text": ([image(image_url=IMAGE, alt_text="")], "/blocks/0/alt_text"),
    "image_url not http": ([image(image_url="ftp://x/y.png", alt_text="y")], "/blocks/0/image_url"),
    "section text 3001": ([section("s" * 3001)], "/blocks/0/text/text"),
    "section with nothing": ([{"type": "section"}], "/blocks/0"),
    "button text 76": ([actions(button("b" * 76))], "/blocks/0/elements/0/text/text"),
    "button text mrkdwn": (
        [actions({**button(), "text": {"type": "mrkdwn", "text": "*b*"}})],
        "/blocks/0/elements/0/text/type",
    ),
    "button text empty": ([actions(button(""))], "/blocks/0/elements/0/text/text"),
    "action_id 256": ([actions(button(action_id="a" * 256))], "/blocks/0/elements/0/action_id"),
    "value 2001": ([actions(button(value="v" * 2001))], "/blocks/0/elements/0/value"),
    "26 elements": ([buttons(26)], "/blocks/0/elements"),
    "no elements": ([actions()], "/blocks/0/elements"),
    "duplicate action_id": ([actions(button(), button())], "/blocks/0/elements/1/action_id"),
    "duplicate block_id": (
        [{"type": "divider", "block_id": "x"}, {"type": "divider", "block_id": "x"}],
        "/blocks/1/block_id",
    ),
    "header 151": ([{"type": "header", "text": plain("h" * 151)}], "/blocks/0/text/text"),
    "11 context elements": (
        [{"type": "context", "elements": [plain("c")] * 11}],
        "/blocks/0/elements",
    ),
    "markdown over 12000 in all": (
        [{"type": "markdown", "text": "m" * 6_001}, {"type": "markdown", "text": "m" * 6_000}],
        "/blocks",
    ),
    "unknown type": ([{"type": "carousel"}], "/blocks/0/type"),
}


async def test_blocks_at_every_limit_are_accepted() -> None:
    async with FakeSlack(rate_limits=False) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        posted = await client.chat_postMessage(channel=CHANNEL, blocks=at_the_limits(), text="x")

        assert posted["ok"]
        assert slack.messages[(CHANNEL, posted["ts"])].blocks == at_the_limits()


@pytest.mark.parametrize(("blocks", "pointer"), INVALID.values(), ids=INVALID.keys())
async def test_invalid_blocks_are_refused_like_slack(
    blocks: list[dict[str, Any]], pointer: str
) -> None:
    async with FakeSlack(rate_limits=False) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        with pytest.raises(SlackApiError) as refused:
            await client.chat_postMessage(channel=CHANNEL, blocks=blocks, text="fallback")

        assert refused.value.response["error"] == "invalid_blocks"
        [message] = refused.value.response["response_metadata"]["messages"]
        assert message.startswith("[ERROR] ") and message.endswith(f"[json-pointer:{pointer}]")
        assert slack.messages == {}


async def test_update_and_stop_stream_validate_blocks_too() -> None:
    async with FakeSlack(rate_limits=False) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        ts = (await client.chat_postMessage(channel=CHANNEL, blocks=[section("ok")], text="ok"))[
            "ts"
        ]
        with pytest.raises(SlackApiError) as update:
            await client.chat_update(channel=CHANNEL, ts=ts, blocks=[buttons(26)], text="x")
        started = await client.chat_startStream(
            channel="D0001", thread_ts="1700000000.000100", markdown_text="streamed"
        )
        with pytest.raises(SlackApiError) as stop:
            await client.chat_stopStream(
                channel="D0001", ts=started["ts"], blocks=[image(image_url=IMAGE)]
            )

        assert update.value.response["error"] == "invalid_blocks"
        assert stop.value.response["error"] == "invalid_blocks"
        assert slack.messages[(CHANNEL, ts)].blocks == [section("ok")], "a refused update applied"
        assert slack.messages[("D0001", started["ts"])].streaming, "a refused stop applied"


def test_pings_are_the_mentions_slack_notifies_for() -> None:
    message = FakeMessage(
        channel=CHANNEL,
        ts="1.1",
        markdown_text="<!here> <@U1> <@W2|ann> @everyone ops@here.example @\u200dhere <#C1> "
        "_@here_ @heresy",
        blocks=[section("<!subteam^S1|@team> and <!channel|channel>, __@channel__")],
    )

    assert message.pings == [
        "<!here>", "<@U1>", "<@W2|ann>", "@everyone", "@here", "<!subteam^S1|@team>",
        "<!channel|channel>", "@channel",
    ]  # fmt: skip
