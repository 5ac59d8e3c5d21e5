"""Each Slack message runs one turn: the three de-duplication paths, each tested on its own.

The bot drops a delivery Slack marks as a retry (``X-Slack-Retry-Num``, Socket Mode
``retry_attempt``) or whose ``event_id`` it has seen (EventGate), and claims each message's
``(channel, ts)`` once (a mention arrives as ``app_mention`` and as ``message`` with different
event ids). A plain redelivery is marked and repeats both the event id and the ts, so any
path alone would pass it; the tests below let only one path catch each case.
"""

from __future__ import annotations

from typing import Any

from bots.slack.events import EVENT_TTL_S, EventGate, is_retry
from tests.e2e import slack_fixtures
from tests.e2e.slack_fixtures import ANSWERS, CHANNEL, DM, TEAM, SlackWorld

slack_world = slack_fixtures.slack_world
slack_world_factory = slack_fixtures.slack_world_factory
slack_no_proxy = slack_fixtures.slack_no_proxy


def dm_event(world: SlackWorld, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "channel_type": "im",
        "user": "UHUMAN",
        "text": text,
        "ts": world.next_ts(),
        "channel": DM,
        "team": TEAM,
    }


async def test_redelivered_event_is_answered_once(slack_world: SlackWorld) -> None:
    world = slack_world
    event = dm_event(world, "hello there")
    await world.deliver(event, event_id="EvSAME")
    await world.deliver(event, event_id="EvSAME", retry=1)
    await world.wait_answer(DM, None, ANSWERS["hello there"])
    await world.deliver(event, event_id="EvSAME", retry=2)
    await world.dm("tell me more")
    await world.wait_answer(DM, None, ANSWERS["hello there"] + ANSWERS["tell me more"])
    assert world.text_requests() == ["hello there", "tell me more"]
    assert world.fake.count_429 == 0


async def test_event_id_alone_drops_a_redelivery(slack_world: SlackWorld) -> None:
    """The redelivery carries a new ts and no retry mark, so neither the (channel, ts) claim
    nor the mark can be what drops it."""
    world = slack_world
    await world.deliver(dm_event(world, "hello there"), event_id="EvONCE")
    await world.wait_answer(DM, None, ANSWERS["hello there"])
    await world.deliver(dm_event(world, "broadcast"), event_id="EvONCE")
    await world.dm("tell me more")  # a later turn proves the retry was skipped, not queued
    await world.wait_answer(DM, None, ANSWERS["hello there"] + ANSWERS["tell me more"])
    assert world.text_requests() == ["hello there", "tell me more"]
    assert world.fake.count_429 == 0


async def test_retry_mark_alone_drops_a_redelivery(slack_world: SlackWorld) -> None:
    """A retry whose first attempt this process never saw (it went to another process, or
    came before a restart): a fresh event id and ts, only X-Slack-Retry-Num (HTTP) or
    retry_attempt (Socket Mode) say it is one."""
    world = slack_world
    await world.deliver(dm_event(world, "hello there"), event_id="EvFRESH", retry=1)
    await world.dm("tell me more")  # a later turn proves the retry was skipped, not queued
    await world.wait_answer(DM, None, ANSWERS["tell me more"])
    assert world.text_requests() == ["tell me more"]
    assert world.fake.count_429 == 0


async def test_channel_ts_claim_alone_drops_the_mention_twin(slack_world: SlackWorld) -> None:
    """In a thread the bot is part of, a mention arrives as app_mention and as message with
    different event ids; either alone starts a turn (a mention; a thread follow-up)."""
    world = slack_world
    ts = await world.mention("hello there")
    await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"])
    twin = {
        "user": "UHUMAN",
        "text": "<@UBOT> tell me more",
        "ts": world.next_ts(),
        "thread_ts": ts,
        "channel": CHANNEL,
        "team": TEAM,
    }
    await world.deliver({"type": "app_mention", **twin}, event_id="EvMention")
    await world.deliver({"type": "message", "channel_type": "channel", **twin}, event_id="EvMsg")
    await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"] + ANSWERS["tell me more"])
    assert world.text_requests() == ["hello there", "tell me more"]
    assert world.fake.count_429 == 0


def test_event_gate_remembers_event_ids_for_a_day() -> None:
    now = [0.0]
    gate = EventGate(bot_user_id="UBOT", bot_id="B0001", clock=lambda: now[0])
    body = {
        "type": "event_callback",
        "team_id": TEAM,
        "event_id": "Ev1",
        "event": {"type": "message", "user": "UHUMAN", "channel": DM, "ts": "1.1"},
    }
    assert gate.reject_reason(body) is None
    assert gate.reject_reason({**body, "event": {**body["event"], "ts": "2.2"}}) == (
        "redelivered event"
    )
    assert gate.reject_reason({**body, "event_id": "Ev2"}) is None, "the ts is not its business"
    now[0] += EVENT_TTL_S + 1
    assert gate.reject_reason(body) is None, "an event id was remembered past its TTL"


def test_a_first_attempt_is_not_a_retry() -> None:
    """Socket Mode marks every first delivery ``retry_attempt: 0``; bolt copies it as "0"."""
    assert not is_retry({})
    assert not is_retry({"x-slack-retry-num": ["0"]})
    assert is_retry({"x-slack-retry-num": ["1"]})
    assert is_retry({"x-slack-retry-num": ["3"], "x-slack-retry-reason": ["http_timeout"]})
