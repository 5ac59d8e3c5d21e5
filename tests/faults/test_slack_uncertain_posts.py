"""A Slack post that went out but got no answer in time is not posted again (nothing doubled).

Real slack_sdk against FakeSlack, which carries the call out and answers late (``stall``), so
the client times out not knowing whether the message was posted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.api import SlackApi
from bots.slack.budgets import WorkspaceBudgets
from bots.slack.native_stream import NativeSwitch, SlackNativeStream
from bots.slack.place import SlackPlace
from bots.slack.writer import SlackWriter
from core.budget import RateBudget
from core.paced_message import CURSOR, PacedMessage
from core.platform import Outcome
from tests.fakes.slack import FakeSlack

CLIENT_TIMEOUT_S = 0.5


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def paced(slack: FakeSlack) -> PacedMessage:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, timeout=CLIENT_TIMEOUT_S)
    place = SlackPlace(
        team_id="T0001",
        channel="D0001",
        thread_ts=None,
        user_id="UHUMAN",
        user_team_id="T0001",
        status_ts="1700000000.000100",
    )
    return PacedMessage(
        SlackWriter(SlackApi(client), place),
        edit_budget=RateBudget(50, 60.0, burst_s=15.0),
        post_budget=RateBudget(3, 3.0),
        stop_id="s1",
    )


async def test_a_final_post_answered_too_late_is_not_posted_again(slack: FakeSlack) -> None:
    message = paced(slack)
    text = "".join(
        f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 8 + "\n\n" for i in range(30)
    )
    message.append(text[:100])
    slack.stall("chat.postMessage", CLIENT_TIMEOUT_S * 4, times=2)  # both final parts
    message.append(text[100:])
    await message.finish()
    shown = [m.visible_text.removesuffix(CURSOR) for m in slack.thread_messages("D0001", None)]
    assert "".join(shown) == text  # every part once: the late one was posted, not repeated


async def test_a_stream_start_answered_too_late_streams_on_in_the_stream_it_made(
    slack: FakeSlack,
) -> None:
    """chat.startStream carried out but answered after the client gave up: the stream is
    found in the thread and the answer goes on there, once (it used to go out again in a
    second message, its first words doubled, the first stream left streaming)."""
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, timeout=CLIENT_TIMEOUT_S)
    place = SlackPlace(
        team_id="T0001",
        channel="C0001",
        thread_ts="1700000000.000100",
        user_id="UHUMAN",
        user_team_id="T0001",
        status_ts="1700000000.000100",
    )
    stream = SlackNativeStream(
        api=SlackApi(client),
        place=place,
        budgets=WorkspaceBudgets("T0001"),
        switch=NativeSwitch(),
        fallback=lambda: pytest.fail("no second message expected"),
        on_stopped_by_user=lambda: None,
    )
    slack.stall("chat.startStream", CLIENT_TIMEOUT_S * 4)
    text = "Hello! Here is a streamed answer, " * 3 + "done."
    stream.append(text[:20])
    # Slack has made the stream; its answer is still to come (the client will time out).
    await slack.wait_until(lambda: bool(slack.thread_messages("C0001", "1700000000.000100")))
    stream.append(text[20:])
    await stream.finish(Outcome.COMPLETE)
    (message,) = slack.thread_messages("C0001", "1700000000.000100")
    assert message.visible_text == text and not message.streaming
