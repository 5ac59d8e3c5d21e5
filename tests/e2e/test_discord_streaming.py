"""Streaming into Discord end to end: discord.py ↔ FakeDiscord, Bridge ↔ Simulator over HTTP.

The acceptance of the Discord adapter issue: placeholder at completion start, paced edits inside
the channel bucket, an exact final text, zero 429s — for a mention, a DM and a thread, three
conversations at once in one channel, a stop and a deleted placeholder (the overflowing answer
is in test_discord_overflow.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bots.discord.bot import NOT_YOUR_STOP_TEXT
from core.simulator.content import long_answer
from tests.e2e import discord_fixtures
from tests.e2e.discord_fixtures import (
    PLACEHOLDER,
    DiscordWorld,
    WorldFactory,
    expected_answer,
    fits_the_bucket,
    is_balanced,
    streaming_message,
    strip_cursor,
)
from tests.fakes import discord_guild as guild
from tests.fakes.discord import FakeMessage
from tests.fakes.discord_model import FLAG_EPHEMERAL

discord_world = discord_fixtures.discord_world
discord_world_factory = discord_fixtures.discord_world_factory

QUESTION = "tell me about pacing please"
#: The fake's buckets in these tests: 5 per 1.0 s per channel.
LIMIT, WINDOW_S = 5, 1.0
#: Request times are taken by the fake on arrival; allow for loopback jitter.


def text_actions(world: DiscordWorld) -> list[dict[str, Any]]:
    return [a for a in world.voiceflow_actions() if a.get("type") == "text"]


def interact_time(world: DiscordWorld, payload: str) -> float:
    return next(
        r.time
        for r in world.simulator.requests
        if r.path.endswith("/interact/stream")
        and r.json
        and r.json["action"] == {"type": "text", "payload": payload}
    )


def assert_streamed(
    world: DiscordWorld, channel_id: str, message: FakeMessage, text: str, *, min_interim: int = 1
) -> int:
    """Placeholder first, then growing edits inside the bucket, exact final, no 429.

    Returns the number of interim edits.
    """
    requests = world.requests_for(message.id)
    create, edits = requests[0], requests[1:]
    # The placeholder, or — when the channel's post bucket made it wait — the text so far.
    first = strip_cursor(create.json["content"])
    pairs = enumerate(zip(first, expected_answer(text), strict=False))
    shared = next((i for i, (a, b) in pairs if a != b), len(first))
    late_prefix = shared >= len(first) - 4  # interim closers (**, ```) may differ
    assert create.json["content"] == PLACEHOLDER or (first and late_prefix)
    assert create.json["allowed_mentions"]["parse"] == []
    stop = create.json["components"][0]["components"][0]
    assert stop["custom_id"].startswith("vfs:")
    started = interact_time(world, text)
    assert 0 <= create.t - started < 1.0, "placeholder not posted at completion start"
    assert len(edits) >= 1 + min_interim, "too few interim edits"
    shown = [len(strip_cursor(e.json["content"])) for e in edits[:-1]]
    assert shown == sorted(shown), "interim text shrank"
    assert edits[-1].json["content"] == message.content == expected_answer(text)
    assert edits[-1].json["components"] == []  # the stop control is gone
    patches = [r.t for r in world.message_requests(channel_id) if r.method == "PATCH"]
    assert fits_the_bucket(patches, LIMIT, WINDOW_S)
    assert world.fake.count_429 == 0
    return len(edits) - 1


async def test_a_mention_streams_into_a_reply(discord_world: DiscordWorld) -> None:
    w = discord_world
    asked = await w.mention(QUESTION)
    final = await w.wait_for_content("3000", expected_answer(QUESTION))
    assert_streamed(w, "3000", final, QUESTION)
    assert [a["type"] for a in w.voiceflow_actions()] == ["launch", "text"]
    assert text_actions(w)[0]["payload"] == QUESTION  # the mention itself is stripped
    first = w.bot_messages("3000")[0]
    assert first.message_reference is not None
    assert first.message_reference["message_id"] == asked  # the turn answers the user's message


async def test_a_dm_streams_without_a_mention(discord_world: DiscordWorld) -> None:
    w = discord_world
    await w.dm(QUESTION)
    final = await w.wait_for_content("5000", expected_answer(QUESTION))
    assert_streamed(w, "5000", final, QUESTION)
    assert all(m.message_reference is None for m in w.bot_messages("5000"))


async def test_a_thread_is_its_own_conversation(discord_world: DiscordWorld) -> None:
    w = discord_world
    await w.mention(QUESTION, channel_id="3500")
    final = await w.wait_for_content("3500", expected_answer(QUESTION))
    assert_streamed(w, "3500", final, QUESTION)
    users = {r.path.split("/user/")[1].split("/")[0] for r in w.simulator.requests}
    assert any("|3500|" in u for u in users)


async def test_three_conversations_stream_at_once_in_one_channel(
    discord_world_factory: WorldFactory,
) -> None:
    # Answers of ~1 s, so that each of the three gets interim edits from the shared budget.
    changes = {"conversation_scope": "channel_user"}
    async with discord_world_factory(settings_changes=changes, token_delay_s=0.03) as w:
        questions = {a: f"question number {a} about pacing" for a in ("2000", "2001", "2002")}
        for author in questions:  # the greetings first, so the three answers start together
            await w.mention("hi", author_id=author)
            await w.wait_for_content("3000", expected_answer("hi"), count=int(author) - 1999)
        await asyncio.gather(*(w.mention(q, author_id=a) for a, q in questions.items()))
        finals = await asyncio.gather(
            *(
                w.wait_for_content("3000", expected_answer(q), within_s=30)
                for q in questions.values()
            )
        )
        interim = [
            assert_streamed(w, "3000", final, question, min_interim=0)
            for final, question in zip(finals, questions.values(), strict=True)
        ]
        assert sum(interim) >= 1  # interim edits happen; their share is the core's fairness
        posts = [r.t for r in w.message_requests("3000") if r.method == "POST"]
        assert fits_the_bucket(posts, LIMIT, WINDOW_S)
        assert {a["payload"] for a in text_actions(w)} == {"hi", *questions.values()}
        users = {r.path.split("/user/")[1].split("/")[0] for r in w.simulator.requests}
        assert len(users) == 3  # channel_user: one Voiceflow user per person


async def test_stop_cancels_the_voiceflow_request(discord_world_factory: WorldFactory) -> None:
    async with discord_world_factory(token_delay_s=0.02) as w:
        await w.mention("something long please")
        placeholder = await streaming_message(w, "3000")
        stop_id = placeholder.components[0]["components"][0]["custom_id"]
        interaction = await w.fake.click(placeholder.id, stop_id)
        await w.simulator.wait_for_disconnects(1)
        await w.fake.wait_until(lambda: placeholder.content.endswith("⏹️ stopped"), 10)
        assert placeholder.components == []
        assert w.fake.interactions[interaction].response_type == 6
        assert len(placeholder.content) < len(long_answer())
        body = placeholder.content.removesuffix("⏹️ stopped").rstrip()
        assert is_balanced(body)
        assert long_answer().startswith(body.removesuffix("```").rstrip()[:200])
        assert w.fake.count_429 == 0


@pytest.mark.parametrize("bulk", [False, True], ids=["one-by-one", "bulk"])
async def test_a_deleted_question_stops_its_answer(
    discord_world_factory: WorldFactory, bulk: bool
) -> None:
    """The asker deletes their question mid-answer (docs/discord.md §8: cancel on a deleted
    prompt), or a moderator bulk-deletes it: the Voiceflow request closes and the answer ends
    as stopped. A question deleted while it waits behind that turn never reaches Voiceflow,
    and nothing is posted for it."""
    async with discord_world_factory(token_delay_s=0.02) as w:
        asked = await w.mention("something long please")
        placeholder = await streaming_message(w, "3000")
        queued = await w.mention("and another thing")  # the same conversation: it waits
        if bulk:
            w.fake.bulk_delete([queued, asked])
        else:
            w.fake.delete_message(queued)
            w.fake.delete_message(asked)
        await w.simulator.wait_for_disconnects(1)
        await w.fake.wait_until(lambda: placeholder.content.endswith("⏹️ stopped"), 10)
        await w.bot.drain()
        assert placeholder.components == []
        texts = [a["payload"] for a in w.voiceflow_actions() if a["type"] == "text"]
        assert texts == ["something long please"]
        assert w.bot_messages("3000")[-1].id == placeholder.id  # nothing posted after it
        assert w.fake.count_429 == 0


async def test_only_the_asker_or_a_moderator_can_stop_an_answer(
    discord_world_factory: WorldFactory,
) -> None:
    """A bystander's click on Stop is refused with a note only they see (docs/discord.md §8:
    requester or moderators only); a member who may manage messages stops it."""
    async with discord_world_factory(token_delay_s=0.02) as w:
        await w.mention("something long please")  # asked by the human, 2000
        placeholder = await streaming_message(w, "3000")
        stop_id = placeholder.components[0]["components"][0]["custom_id"]
        await w.fake.click(placeholder.id, stop_id, user_id="2999", permissions=guild.MEMBER)

        def refused() -> bool:
            return any(
                m.flags & FLAG_EPHEMERAL and m.content == NOT_YOUR_STOP_TEXT
                for m in w.fake.messages.values()
            )

        await w.fake.wait_until(refused, 10)
        assert w.simulator.disconnects == [] and "vfs:" in str(placeholder.components)
        await w.fake.click(placeholder.id, stop_id, user_id="2998", permissions=guild.MODERATOR)
        await w.simulator.wait_for_disconnects(1)
        await w.fake.wait_until(lambda: placeholder.content.endswith("⏹️ stopped"), 10)


async def test_a_deleted_placeholder_gets_the_rest_posted_anew(
    discord_world_factory: WorldFactory,
) -> None:
    async with discord_world_factory(token_delay_s=0.03) as w:
        await w.dm(QUESTION)
        doomed = await streaming_message(w, "5000")
        w.fake.delete_message(doomed.id)
        expected = expected_answer(QUESTION)
        final = await w.wait_for_content("5000", expected)
        assert final.id != doomed.id
        live = [m.content for m in w.bot_messages("5000")]
        assert live.count(expected) == 1
        assert not any(expected in c and c != expected for c in live)  # nothing doubled
        assert w.fake.count_429 == 0


async def test_llm_output_never_pings(discord_world: DiscordWorld) -> None:
    w = discord_world
    question = "@everyone and <@2000> hello"
    await w.dm(question)
    await w.wait_for_content("5000", expected_answer(question))
    bodies = [r.json for r in w.message_requests() if r.json is not None]
    webhook_edits = [
        r.json for r in w.fake.requests if r.route.startswith("PATCH /webhooks") and r.json
    ]
    assert bodies
    for body in bodies + webhook_edits:
        mentions = body["allowed_mentions"]
        assert mentions["parse"] == []
        assert not mentions.get("users") and not mentions.get("roles")
        assert not mentions.get("replied_user")
    assert w.fake.count_429 == 0
