"""Each Slack message runs one turn: the two de-duplication paths, each tested on its own.

The bot drops a delivery whose ``event_id`` it has seen (Slack's retries, EventGate) and
claims each message's ``(channel, ts)`` once (a mention arrives as ``app_mention`` and as
``message`` with different event ids). A plain redelivery repeats both the event id and the
ts, so either path alone would pass it; the tests below let only one path catch each case.
"""

from __future__ import annotations

from typing import Any

from bots.slack.events import EVENT_TTL_S, EventGate
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
    """The retry carries a new ts, so the (channel, ts) claim cannot be what drops it."""
    world = slack_world
    await world.deliver(dm_event(world, "hello there"), event_id="EvONCE")
    await world.wait_answer(DM, None, ANSWERS["hello there"])
    await world.deliver(dm_event(world, "broadcast"), event_id="EvONCE", retry=1)
    await world.dm("tell me more")  # a later turn proves the retry was skipped, not queued
    await world.wait_answer(DM, None, ANSWERS["hello there"] + ANSWERS["tell me more"])
    assert world.text_requests() == ["hello there", "tell me more"]
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
