"""Streaming into Slack end to end: slack-bolt ↔ FakeSlack, Bridge ↔ Simulator over HTTP.

The acceptance of the Slack adapter issue, in Socket Mode and HTTP mode: for a mention, a DM
and a thread follow-up the final visible text equals the streamed text exactly, with zero
429s — also with five concurrent streams in one workspace, a 10,000-character answer, a
native stream expiring mid-answer (redelivery: test_slack_dedup.py; stop:
test_slack_interactions.py).
"""

from __future__ import annotations

import asyncio

from core.simulator.content import long_answer
from tests.e2e import slack_fixtures
from tests.e2e.slack_fixtures import (
    ANSWERS,
    CHANNEL,
    DM,
    Mode,
    SlackWorld,
    WorldFactory,
)

slack_world = slack_fixtures.slack_world
slack_mode = slack_fixtures.slack_mode
slack_world_factory = slack_fixtures.slack_world_factory
slack_no_proxy = slack_fixtures.slack_no_proxy


def stream_calls(world: SlackWorld, method: str) -> int:
    return len(world.fake.calls_to(method))


async def test_mention_is_answered_natively_in_its_thread(slack_world: SlackWorld) -> None:
    world = slack_world
    ts = await world.mention("hello there")
    await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"])
    assert stream_calls(world, "chat.startStream") == 1
    assert stream_calls(world, "chat.stopStream") == 1
    start = world.fake.calls_to("chat.startStream")[0].args
    assert start["thread_ts"] == ts
    assert start["recipient_user_id"] == "UHUMAN" and start["recipient_team_id"] == "T0001"
    assert "chunks" not in start and start["markdown_text"]
    assert world.text_requests() == ["hello there"], "the mention ran more than one turn"
    assert set(world.fake.statuses[(CHANNEL, ts)]) == {"is thinking…"}
    assert world.fake.count_429 == 0


async def test_dm_is_answered_inline_with_post_and_update(slack_world: SlackWorld) -> None:
    world = slack_world
    await world.dm("hello there")
    await world.wait_answer(DM, None, ANSWERS["hello there"])
    assert stream_calls(world, "chat.startStream") == 0
    post = world.fake.calls_to("chat.postMessage")[0].args
    assert post["blocks"][1]["elements"][0]["action_id"].startswith("vfs:"), "no stop button"
    final = world.fake.calls_to("chat.update")[-1].args
    assert [b["type"] for b in final["blocks"]] == ["markdown"], "stop button left behind"
    assert world.fake.count_429 == 0


async def test_thread_follow_up_without_mention(slack_world: SlackWorld) -> None:
    world = slack_world
    ts = await world.mention("hello there")
    await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"])
    await world.reply_in_thread("tell me more", ts)
    await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"] + ANSWERS["tell me more"])
    assert world.text_requests() == ["hello there", "tell me more"]
    assert world.fake.count_429 == 0


async def test_thread_reply_in_a_foreign_thread_is_ignored(slack_world: SlackWorld) -> None:
    world = slack_world
    await world.reply_in_thread("hello there", "1600000000.000001")
    ts = await world.mention("hello there")  # a later turn proves the first was skipped
    await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"])
    assert world.text_requests() == ["hello there"]


async def test_five_concurrent_streams_in_one_workspace(slack_world: SlackWorld) -> None:
    world = slack_world
    channels = [f"C000{i}" for i in range(1, 6)]
    threads = await asyncio.gather(*(world.mention("two thousand", channel=c) for c in channels))
    for channel, ts in zip(channels, threads, strict=True):
        await world.wait_answer(channel, ts, ANSWERS["two thousand"])
    assert world.fake.count_429 == 0
    assert sorted(world.text_requests()) == ["two thousand"] * 5


async def test_five_concurrent_fallback_streams_in_one_workspace(
    slack_world_factory: WorldFactory, slack_mode: Mode
) -> None:
    async with slack_world_factory(mode=slack_mode, native_streaming=False) as world:
        channels = [f"C000{i}" for i in range(1, 6)]
        threads = await asyncio.gather(
            *(world.mention("two thousand", channel=c) for c in channels)
        )
        for channel, ts in zip(channels, threads, strict=True):
            await world.wait_answer(channel, ts, ANSWERS["two thousand"])
        assert world.fake.calls_to("chat.startStream")[0].error == "feature_not_enabled"
        assert all(c.ok for c in world.fake.calls_to("chat.update")), "an update failed"
        assert len(world.fake.calls_to("chat.update")) >= 5
        assert world.fake.count_429 == 0
        assert sorted(world.text_requests()) == ["two thousand"] * 5


async def test_ten_thousand_characters(slack_world: SlackWorld) -> None:
    world = slack_world
    ts = await world.mention("ten thousand")
    await world.wait_answer(CHANNEL, ts, ANSWERS["ten thousand"], within_s=30)
    assert world.fake.count_429 == 0


async def test_ten_thousand_characters_in_a_dm_roll_over(slack_world: SlackWorld) -> None:
    world = slack_world
    await world.dm("ten thousand")
    await world.wait_answer(DM, None, ANSWERS["ten thousand"], within_s=30)
    messages = world.answer_messages(DM, None)
    assert len(messages) >= 3 and all(len(m.visible_text) <= 3_900 for m in messages)
    assert world.fake.count_429 == 0


async def test_native_stream_expiring_mid_answer_loses_nothing(
    slack_world_factory: WorldFactory, slack_mode: Mode
) -> None:
    async with slack_world_factory(mode=slack_mode, stream_max_age_s=0.3) as world:
        ts = await world.mention("ten thousand")
        await world.wait_answer(CHANNEL, ts, ANSWERS["ten thousand"], within_s=30)
        errors = [c.error for c in world.fake.calls if c.error]
        assert "message_not_in_streaming_state" in errors
        assert len(world.answer_messages(CHANNEL, ts)) >= 2
        assert world.fake.count_429 == 0


async def test_native_unavailable_falls_back_to_post_and_update(
    slack_world_factory: WorldFactory,
) -> None:
    async with slack_world_factory(native_streaming=False) as world:
        first = await world.mention("hello there")
        await world.wait_answer(CHANNEL, first, ANSWERS["hello there"])
        second = await world.mention("tell me more")
        await world.wait_answer(CHANNEL, second, ANSWERS["tell me more"])
        starts = world.fake.calls_to("chat.startStream")
        assert [c.error for c in starts] == ["feature_not_enabled"], "native not switched off"
        assert world.fake.count_429 == 0


async def test_native_stream_rotates_before_the_size_limit(
    slack_world_factory: WorldFactory,
) -> None:
    async with slack_world_factory() as world:
        ts = await world.mention("thirteen thousand")
        await world.wait_answer(CHANNEL, ts, ANSWERS["thirteen thousand"], within_s=30)
        assert not [c for c in world.fake.calls if c.error], "a write failed"
        native, *rest = world.answer_messages(CHANNEL, ts)
        assert 9_000 < len(native.visible_text) <= 11_000
        assert rest, "no continuation"
        assert len(world.fake.calls_to("chat.stopStream")) == 1


async def test_eleventh_answer_in_a_minute_falls_back(slack_world_factory: WorldFactory) -> None:
    async with slack_world_factory() as world:
        channels = [f"C2{i:02d}" for i in range(11)]
        # eleven people, not one person eleven times: the per-user rate limit is not the point
        threads = await asyncio.gather(
            *(world.mention("hello there", channel=c, user=f"U{c}") for c in channels)
        )
        for channel, ts in zip(channels, threads, strict=True):
            await world.wait_answer(channel, ts, ANSWERS["hello there"])
        started = [c for c in world.fake.calls_to("chat.startStream") if c.ok]
        assert len(started) == 10, "the Tier 2 start budget was not respected"
        assert world.fake.count_429 == 0


async def test_retry_after_on_append_is_honoured(slack_world_factory: WorldFactory) -> None:
    async with slack_world_factory(token_delay_s=0.01) as world:
        world.fake.inject("chat.appendStream", status=429, retry_after=1)
        ts = await world.mention("two thousand")
        await world.wait_answer(CHANNEL, ts, ANSWERS["two thousand"])
        appends = world.fake.calls_to("chat.appendStream")
        failed = [c for c in appends if c.status == 429]
        assert len(failed) == 1 and world.fake.count_429 == 1
        later = [c for c in appends if c.t > failed[0].t]
        assert all(c.t - failed[0].t >= 0.95 for c in later), "Retry-After ignored"


async def test_retry_after_on_update_is_honoured(slack_world_factory: WorldFactory) -> None:
    async with slack_world_factory(native_streaming=False, token_delay_s=0.01) as world:
        world.fake.inject("chat.update", status=429, retry_after=1)
        await world.dm("two thousand")
        await world.wait_answer(DM, None, ANSWERS["two thousand"])
        updates = world.fake.calls_to("chat.update")
        failed = [c for c in updates if c.status == 429]
        assert len(failed) == 1 and world.fake.count_429 == 1
        assert all(c.t - failed[0].t >= 0.95 for c in updates if c.t > failed[0].t)


def without_fence_lines(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if not line.strip().startswith("```"))


async def test_expiry_inside_a_code_block_closes_and_reopens_the_fence(
    slack_world_factory: WorldFactory,
) -> None:
    async with slack_world_factory(stream_max_age_s=0.5, token_delay_s=0.004) as world:
        ts = await world.mention("long")
        expected = long_answer()
        await world.fake.wait_until(
            lambda: (
                without_fence_lines(world.answer_text(CHANNEL, ts)) == without_fence_lines(expected)
                and not any(m.streaming for m in world.answer_messages(CHANNEL, ts))
            ),
            30,
        )
        await world.bot.drain()
        messages = world.answer_messages(CHANNEL, ts)
        assert len(messages) >= 2
        for message in messages:
            fences = [ln for ln in message.visible_text.split("\n") if ln.startswith("```")]
            assert len(fences) % 2 == 0, f"unbalanced fence in {message.visible_text[-200:]!r}"
        assert world.fake.count_429 == 0
