"""Slack faults, end to end: real slack-bolt / slack_sdk against FakeSlack's scripted failures.

The faulted answer streams in the DM D0001 (post + update) or in a mention's thread (native
streaming); a second conversation (another user's DM) must end exact as well.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.api import SlackApi
from bots.slack.journal import SlackJournal, finalize_slack_dangling
from bots.slack.mentions import neutralize_broadcasts
from bots.slack.native_ending import NativeEnd
from bots.slack.place import SlackPlace
from bots.slack.writer import SlackWriter
from core.store import Store, open_store
from tests.e2e import slack_fixtures
from tests.e2e.discord_fixtures import CURSOR
from tests.e2e.slack_fixtures import CHANNEL, DM, SlackWorld, WorldFactory
from tests.fakes.slack import FakeSlack
from tests.faults.invariants import (
    ANSWERS,
    CHECKED,
    INTERRUPTED,
    fault,
    fault_agent,
    joined,
    slack_hanging,
)

slack_world_factory = slack_fixtures.slack_world_factory
slack_no_proxy = slack_fixtures.slack_no_proxy

OTHER_DM, OTHER_USER = "D0002", "U0002"
QUESTION = "medium question"


@pytest.fixture
async def world(slack_world_factory: WorldFactory) -> AsyncIterator[SlackWorld]:
    async with slack_world_factory(token_delay_s=0.005) as w:
        w.simulator.agent = fault_agent()
        yield w


async def wait_slack(
    w: SlackWorld, channel: str, thread_ts: str | None, expected: str, within_s: float = 30.0
) -> None:
    """Until the place shows exactly ``expected`` with no stream, cursor or Stop left."""

    def done() -> bool:
        messages = w.answer_messages(channel, thread_ts)
        shown = joined([m.visible_text for m in messages])
        return bool(messages) and not any(map(slack_hanging, messages)) and shown == expected

    try:
        await w.fake.wait_until(done, within_s)
    except TimeoutError:
        shown = [
            (m.visible_text[-100:], m.streaming) for m in w.answer_messages(channel, thread_ts)
        ]
        raise AssertionError(f"expected {len(expected)} chars, saw {shown}") from None
    CHECKED.add(expected)


async def second_conversation_works(w: SlackWorld) -> None:
    await w.dm("second conversation", channel=OTHER_DM, user=OTHER_USER)
    await wait_slack(w, OTHER_DM, None, ANSWERS["second conversation"])


async def test_ratelimited_on_update_is_waited_out(world: SlackWorld) -> None:
    w = world
    w.fake.inject("chat.update", status=429, retry_after=1, times=3)
    fault("slack ratelimited on chat.update")
    await w.dm(QUESTION)
    await second_conversation_works(w)
    await wait_slack(w, DM, None, ANSWERS[QUESTION])
    assert w.fake.count_429 >= 3


async def test_ratelimited_on_append_is_waited_out(world: SlackWorld) -> None:
    w = world
    w.fake.inject("chat.appendStream", error="ratelimited", times=3)
    fault("slack ratelimited on chat.appendStream")
    ts = await w.mention(QUESTION)
    await second_conversation_works(w)
    await wait_slack(w, CHANNEL, ts, ANSWERS[QUESTION])
    assert [c.error for c in w.fake.calls_to("chat.appendStream") if c.error][:1] == ["ratelimited"]


async def test_msg_too_long_on_every_update_posts_the_rest_and_releases_the_placeholder(
    world: SlackWorld,
) -> None:
    """Slack counts stricter than we do: every update past 300 characters is refused."""
    w = world
    w.fake.update_max_chars = 300
    fault("slack msg_too_long")
    await w.dm(QUESTION)
    await second_conversation_works(w)
    await wait_slack(w, DM, None, ANSWERS[QUESTION])
    assert len([c for c in w.fake.calls_to("chat.update") if c.error == "msg_too_long"]) >= 3


async def test_message_not_in_streaming_state_continues_in_a_new_message(
    world: SlackWorld,
) -> None:
    w = world
    w.fake.inject("chat.appendStream", error="message_not_in_streaming_state")
    fault("slack message_not_in_streaming_state")
    ts = await w.mention(QUESTION)
    await second_conversation_works(w)
    await wait_slack(w, CHANNEL, ts, ANSWERS[QUESTION])
    assert len(w.answer_messages(CHANNEL, ts)) >= 2
    # Pinned before the rest moved on: the native message is no longer journaled.
    assert [i for i in await w.bridge.store.inflight("slack") if i.data.get("native")] == []


async def test_a_socket_mode_disconnect_mid_stream_reconnects(world: SlackWorld) -> None:
    w = world
    ts = await w.mention(QUESTION)
    await w.fake.wait_until(lambda: bool(w.fake.calls_to("chat.startStream")))
    await w.fake.disconnect_socket()
    fault("slack Socket Mode disconnect mid-stream")
    await wait_slack(w, CHANNEL, ts, ANSWERS[QUESTION])
    await w.fake.wait_until(lambda: w.fake.socket_connections == 2)
    await w.fake.wait_socket()
    await second_conversation_works(w)  # an event over the new connection is answered


async def test_a_duplicate_delivery_is_answered_once(world: SlackWorld) -> None:
    w = world
    event = {
        "type": "message",
        "channel_type": "im",
        "user": "UHUMAN",
        "text": QUESTION,
        "ts": w.next_ts(),
        "channel": DM,
        "team": "T0001",
    }
    await w.fake.send_event(event, event_id="EvDuplicate")
    await w.fake.send_event(event, event_id="EvDuplicate", retry_attempt=1, retry_reason="timeout")
    fault("slack duplicate delivery")
    await second_conversation_works(w)
    await wait_slack(w, DM, None, ANSWERS[QUESTION])
    assert w.text_requests().count(QUESTION) == 1
    assert w.fake.count_429 == 0


@pytest.mark.parametrize("forgery", ["bad-signature", "stale-timestamp"])
async def test_forged_http_deliveries_are_rejected(
    slack_world_factory: WorldFactory, forgery: str
) -> None:
    async with slack_world_factory(mode="http") as w:
        w.simulator.agent = fault_agent()
        event = {
            "type": "message",
            "channel_type": "im",
            "user": "UHUMAN",
            "text": QUESTION,
            "ts": w.next_ts(),
            "channel": DM,
            "team": "T0001",
        }
        signing = (
            {"bad_signature": True}
            if forgery == "bad-signature"
            else {"timestamp": int(time.time()) - 10 * 60}  # correctly signed, 10 minutes old
        )
        fault(f"slack HTTP {forgery}")
        response = await w.fake.post_event_http(w.events_url, event, **signing)
        assert response.status_code == 401
        await second_conversation_works(w)  # a genuine delivery still gets through
        assert w.text_requests() == ["second conversation"]
        assert w.answer_messages(DM, None) == []


@contextlib.asynccontextmanager
async def restarted(tmp_path: Path) -> AsyncIterator[tuple[FakeSlack, Store, SlackApi]]:
    """Slack, the store a killed process left and an API client: what a new start sees."""
    async with FakeSlack() as fake, open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        yield fake, store, SlackApi(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))


async def start_native(api: SlackApi, shown: str) -> str:
    """A native stream in a mention's thread, showing ``shown``; returns its ts."""
    started = await api.call(
        "chat.startStream",
        channel=CHANNEL,
        thread_ts="1700000000.000100",
        recipient_user_id="UHUMAN",
        recipient_team_id="T0001",
        markdown_text=neutralize_broadcasts(shown),
    )
    return str(started["ts"])


@pytest.mark.parametrize("expired", [False, True], ids=["stopped", "expired"])
async def test_a_dangling_native_stream_ends_with_its_fence_closed_and_nobody_pinged(
    tmp_path: Path, slack_no_proxy: None, expired: bool
) -> None:
    confirmed = "Ask @here first, then run:\n\n```python\nprint('hi')\n"
    async with restarted(tmp_path) as (fake, store, api):
        ts = await start_native(api, confirmed)
        await SlackJournal(store, CHANNEL).streaming(ts, NativeEnd(confirmed, len(confirmed)))
        if expired:
            fake.expire_stream(CHANNEL, ts)
        fault(f"dangling native stream at startup ({'expired' if expired else 'live'})")
        assert await finalize_slack_dangling(store, api) == 1
        message = fake.messages[(CHANNEL, ts)]
        ending = f"\n```\n\n{INTERRUPTED}"
        assert message.visible_text == neutralize_broadcasts(confirmed) + ending
        assert not message.streaming and "@here" not in message.visible_text
        assert len(fake.calls_to("chat.update")) == int(expired)
        assert await store.inflight("slack") == []
        CHECKED.add(confirmed)


@pytest.mark.parametrize("arrived", [False, True], ids=["stop-lost", "stop-arrived"])
async def test_a_native_stream_killed_during_its_final_stop_ends_complete(
    tmp_path: Path, slack_no_proxy: None, arrived: bool
) -> None:
    answer = ANSWERS["short question"]
    confirmed = answer[: answer.index(" ", 150) + 1]
    async with restarted(tmp_path) as (fake, store, api):
        ts = await start_native(api, confirmed)
        # The final stop was journaled with the whole answer, then the process died with it
        # in flight: Slack may or may not have taken it.
        await SlackJournal(store, CHANNEL).streaming(ts, NativeEnd(answer, len(confirmed), ""))
        if arrived:
            rest = answer[len(confirmed) :]
            await api.call("chat.stopStream", channel=CHANNEL, ts=ts, markdown_text=rest)
        fault(f"kill -9 during a native stream's final stop ({'arrived' if arrived else 'lost'})")
        assert await finalize_slack_dangling(store, api) == 1
        message = fake.messages[(CHANNEL, ts)]
        assert message.visible_text == answer and not message.streaming
        CHECKED.add(answer)


@pytest.mark.parametrize("arrived", [False, True], ids=["update-lost", "update-arrived"])
async def test_a_message_killed_during_its_final_update_ends_complete(
    tmp_path: Path, slack_no_proxy: None, arrived: bool
) -> None:
    answer = ANSWERS["short question"]
    shown = answer[: answer.index(" ", 150)] + CURSOR
    place = SlackPlace("T0001", DM, None, "UHUMAN", "T0001", "")
    async with restarted(tmp_path) as (fake, store, api):
        writer, journal = SlackWriter(api, place), SlackJournal(store, DM)
        ts = await writer.post(shown, stop_id="vfs:1")
        await journal.showing(ts, shown)
        # The final text was journaled, then the process died with its chat.update in flight:
        # Slack may or may not have applied it.
        await journal.showing(ts, answer, True)
        if arrived:
            await writer.edit(ts, answer, stop_id=None)
        fault(f"kill -9 during a final chat.update ({'arrived' if arrived else 'lost'})")
        assert await finalize_slack_dangling(store, api) == 1
        message = fake.messages[(DM, ts)]
        assert message.visible_text == answer and not slack_hanging(message)
        assert await store.inflight("slack") == []
        CHECKED.add(answer)


@pytest.mark.parametrize("failure", ["internal_error", "expiry"])
async def test_a_native_stream_failing_past_4000_characters_ends_and_the_rest_follows(
    slack_world_factory: WorldFactory, failure: str
) -> None:
    """chat.update takes 4,000 characters, so a long native message cannot be pinned to its
    text: a live one (an append refused) is stopped as it stands, an expired one (Slack's own
    time limit, here 3 s) keeps what it streamed; no message is left streaming or journaled,
    and the rest follows in a new message, exact."""
    long = slack_fixtures.ANSWERS["ten thousand"]
    max_age = {"stream_max_age_s": 3.0} if failure == "expiry" else {}
    async with slack_world_factory(token_delay_s=0.01, **max_age) as w:
        fault(f"slack native stream {failure} past 4,000 characters")
        ts = await w.mention("ten thousand")

        def native_past_4000() -> bool:
            messages = w.answer_messages(CHANNEL, ts)
            return any(m.streaming and len(m.visible_text) > 4500 for m in messages)

        if failure == "internal_error":
            await w.fake.wait_until(native_past_4000, 30)
            w.fake.inject("chat.appendStream", error="internal_error")
        await wait_slack(w, CHANNEL, ts, long, within_s=40)
        if failure == "expiry":
            expired = [c for c in w.fake.calls if c.error == "message_not_in_streaming_state"]
            assert expired and len(w.fake.visible_text(CHANNEL, expired[0].args["ts"])) > 4000
        assert len(w.answer_messages(CHANNEL, ts)) >= 2
        assert [i for i in await w.bridge.store.inflight("slack") if i.data.get("native")] == []
