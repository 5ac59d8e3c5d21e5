"""Hostile input on both platforms: nobody is pinged, nobody floods, nobody else gets in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bots.slack.mentions import ZWJ, neutralize_broadcasts
from core.admission import MAX_INPUT_CHARS, TOO_FAST, TOO_LONG
from core.simulator.agent import ScriptedAgent, completion
from tests.e2e import discord_fixtures, slack_fixtures
from tests.e2e.discord_fixtures import DiscordWorld
from tests.e2e.discord_fixtures import WorldFactory as DiscordFactory
from tests.e2e.slack_fixtures import CHANNEL, DM, Mode, SlackWorld
from tests.e2e.slack_fixtures import WorldFactory as SlackFactory
from tests.faults.invariants import ANSWERS, CHECKED, fault, fault_agent, wait_discord
from tests.faults.test_slack_faults import wait_slack

discord_world_factory = discord_fixtures.discord_world_factory
slack_world_factory = slack_fixtures.slack_world_factory
slack_no_proxy = slack_fixtures.slack_no_proxy
slack_mode = slack_fixtures.slack_mode

PINGS = (
    "Hey @everyone and @here! <@&4000> role, <@2000> user, <@!2000> nick, "
    "<!channel> <!here> <!everyone> <!subteam^S123|@team> <@U123> <@W42|ann lee> — read this."
)
#: A 0.5 s+ silence in the stream (empty chunks, one token delay each): a native stream
#: flushes what it has in between, so a mention is cut across two appends.
GAP = [""] * 250
SPLIT_MENTIONS = ["Ask ", "<!subteam^S1|@support ", *GAP, "team> or <@W42|ann ", *GAP, "lee> now."]
# No space for 250 characters (minified JSON, a long URL) before a mention cut in two.
GLUED = "x" * 250
GLUED_MENTIONS = [GLUED + "<!chan", *GAP, "nel> and ", GLUED + '{"text":"@he', *GAP, 're"} now.']
HUGE_INPUT = "x" * 50_000
CONTROL = "hello\x00\x07 there\x1b[31m\u202e friend\r\n"


def hostile_agent() -> ScriptedAgent:
    agent = fault_agent()
    agent.texts["ping everyone"] = [completion(PINGS)]
    agent.texts["split mentions"] = chunked(SPLIT_MENTIONS)
    agent.texts["glued mentions"] = chunked(GLUED_MENTIONS)
    return agent


def chunked(chunks: list[str]) -> list[dict[str, object]]:
    """One completion streamed as exactly these content chunks."""
    return [
        {"type": "completion", "payload": {"state": "start"}},
        *({"type": "completion", "payload": {"state": "content", "content": c}} for c in chunks),
        {"type": "completion", "payload": {"state": "end"}},
    ]


def text_requests(simulator_requests: list[object]) -> list[str]:
    return [
        str(r.json["action"]["payload"])  # type: ignore[attr-defined]
        for r in simulator_requests
        if r.json and r.json["action"]["type"] == "text"  # type: ignore[attr-defined]
    ]


@pytest.fixture
async def discord(discord_world_factory: DiscordFactory) -> AsyncIterator[DiscordWorld]:
    async with discord_world_factory(
        token_delay_s=0.002, settings_changes={"user_rate_limit_per_minute": 5}
    ) as w:
        w.simulator.agent = hostile_agent()
        yield w


@pytest.fixture
async def slack(slack_world_factory: SlackFactory) -> AsyncIterator[SlackWorld]:
    async with slack_world_factory(token_delay_s=0.002) as w:
        w.simulator.agent = hostile_agent()
        yield w


async def test_discord_model_output_pings_nobody(discord: DiscordWorld) -> None:
    w = discord
    fault("hostile mentions in model output (Discord)")
    await w.mention("ping everyone", channel_id="3001")
    await wait_discord(w, "3001", PINGS)
    writes = [r for r in w.message_requests() if r.json is not None]
    assert len(writes) >= 2  # the placeholder and at least the final edit
    for request in writes:
        mentions = request.json["allowed_mentions"]
        assert mentions["parse"] == [], request
        assert not mentions.get("users") and not mentions.get("roles")
        assert not mentions.get("replied_user")


async def test_slack_model_output_pings_nobody(
    slack_world_factory: SlackFactory, slack_mode: Mode
) -> None:
    async with slack_world_factory(mode=slack_mode, token_delay_s=0.002) as w:
        w.simulator.agent = hostile_agent()
        await model_output_pings_nobody(w)


async def model_output_pings_nobody(w: SlackWorld) -> None:
    fault(f"hostile mentions in model output (Slack, {w.mode})")
    await w.dm("ping everyone")
    await w.fake.wait_until(lambda: bool(w.answer_messages(DM, None)))
    ts = await w.mention("ping everyone")
    for channel, thread in ((DM, None), (CHANNEL, ts)):
        await w.fake.wait_until(
            lambda c=channel, t=thread: any(  # type: ignore[misc]
                "read this." in m.visible_text and not m.streaming for m in w.answer_messages(c, t)
            )
        )
    for call in w.writes():
        wire = str(call.args)
        pings = ("<!channel>", "<!here>", "<!everyone>", "<!subteam", "@everyone", "<@U", "<@W")
        for ping in pings:
            assert ping not in wire, (ping, call.method)
    messages = w.answer_messages(DM, None) + w.answer_messages(CHANNEL, ts)
    assert [m.pings for m in messages] == [[]] * len(messages)
    shown = "".join(m.visible_text for m in w.answer_messages(CHANNEL, ts))
    assert f"@{ZWJ}everyone" in shown and f"@{ZWJ}channel" in shown
    assert f"@{ZWJ}U123" in shown and f"@{ZWJ}ann lee" in shown
    CHECKED.add(shown)


@pytest.mark.parametrize(
    ("words", "chunks"),
    [("split mentions", SPLIT_MENTIONS), ("glued mentions", GLUED_MENTIONS)],
    ids=["after-a-space", "after-200-chars-without-one"],
)
async def test_slack_mention_cut_across_stream_appends_pings_nobody(
    slack_world_factory: SlackFactory, slack_mode: Mode, words: str, chunks: list[str]
) -> None:
    async with slack_world_factory(mode=slack_mode, token_delay_s=0.002) as w:
        w.simulator.agent = hostile_agent()
        fault(f"hostile mention cut across native stream appends, {words} (Slack, {w.mode})")
        ts = await w.mention(words)
        await wait_slack(w, CHANNEL, ts, neutralize_broadcasts("".join(chunks)), 10)
        [native] = w.answer_messages(CHANNEL, ts)
        assert len(native.history) >= 3, "the answer was not streamed in several writes"
        assert native.pings == [], "Slack joined the pieces into a mention"
        assert w.fake.count_429 == 0


async def test_slack_user_flooding_gets_one_polite_reply_and_others_are_unaffected(
    slack_world_factory: SlackFactory, slack_mode: Mode
) -> None:
    flood = {"user_rate_limit_per_minute": 5}
    async with slack_world_factory(
        mode=slack_mode, token_delay_s=0.002, settings_changes=flood
    ) as w:
        w.simulator.agent = hostile_agent()
        fault(f"hostile flood of 100 messages (Slack, {w.mode})")
        for _ in range(100):
            await w.dm("short question")
        await w.dm("second conversation", channel="D0002", user="U0002")
        await wait_slack(w, "D0002", None, ANSWERS["second conversation"])

        def shown(text: str) -> int:
            return [m.visible_text for m in w.answer_messages(DM, None)].count(text)

        await w.simulator.wait_for_turns(1 + 5 + 2)  # D0001: launch + 5 turns; D0002: 1 + 1
        await w.fake.wait_until(lambda: shown(ANSWERS["short question"]) == 5, 30)
        await w.bot.drain()
        assert text_requests(w.simulator.requests).count("short question") == 5
        assert shown(TOO_FAST) == 1 and len(w.answer_messages(DM, None)) == 6
        assert w.fake.count_429 == 0


async def test_a_50_kb_message_is_refused_and_control_characters_removed(
    discord: DiscordWorld, slack: SlackWorld
) -> None:
    fault("hostile 50 KB message")
    fault("hostile control characters")
    refusal = TOO_LONG.format(n=len(HUGE_INPUT), max=MAX_INPUT_CHARS)
    await discord.dm(HUGE_INPUT)
    await wait_discord(discord, "5000", refusal)
    await slack.dm(HUGE_INPUT)
    await wait_slack(slack, DM, None, refusal)
    await discord.dm(CONTROL)
    await slack.dm(CONTROL)
    await discord.simulator.wait_for_turns(2)  # launch, then the cleaned text
    await slack.simulator.wait_for_turns(2)
    for world in (discord, slack):
        # Control characters go; what is left of an escape sequence is inert text.
        assert text_requests(world.simulator.requests) == ["hello there[31m friend"]


async def test_one_user_flooding_gets_one_polite_reply_and_others_are_unaffected(
    discord: DiscordWorld,
) -> None:
    w = discord
    fault("hostile flood of 100 messages")
    for _ in range(100):
        await w.dm("short question")
    await w.mention("second conversation", channel_id="3001", author_id="2001")
    await wait_discord(w, "3001", ANSWERS["second conversation"])
    await w.simulator.wait_for_turns(1 + 5 + 2)  # DM: launch + 5 turns; 3001: launch + 1
    await w.fake.wait_until(lambda: len(w.find_all("5000", ANSWERS["short question"])) == 5)
    assert text_requests(w.simulator.requests).count("short question") == 5
    assert len(w.find_all("5000", TOO_FAST)) == 1


async def test_bots_and_itself_are_ignored(discord: DiscordWorld, slack: SlackWorld) -> None:
    fault("hostile messages from other bots and itself")
    await discord.fake.send_message("short question", channel_id="5000", author_id="1000")
    await discord.fake.send_message(
        "short question", channel_id="5000", author_id="7000", author_bot=True
    )
    base = {"type": "message", "channel_type": "im", "channel": DM, "team": "T0001"}
    await slack.fake.send_event({**base, "user": "UBOT", "text": "short question", "ts": "1.1"})
    await slack.fake.send_event(
        {**base, "user": "U7000", "bot_id": "B7000", "text": "short question", "ts": "1.2"}
    )
    await discord.mention("second conversation", channel_id="3001")
    await wait_discord(discord, "3001", ANSWERS["second conversation"])
    await slack.dm("second conversation", channel="D0002", user="U0002")
    await wait_slack(slack, "D0002", None, ANSWERS["second conversation"])
    for world in (discord, slack):
        assert text_requests(world.simulator.requests) == ["second conversation"]


@pytest.mark.parametrize(
    "changes",
    [{"allowed_guilds": frozenset({"9999"})}, {"allowed_channels": frozenset({"3001"})}],
    ids=["guild", "channel"],
)
async def test_discord_allowlists_keep_others_out(
    discord_world_factory: DiscordFactory, changes: dict[str, frozenset[str]]
) -> None:
    async with discord_world_factory(settings_changes=changes) as w:
        w.simulator.agent = hostile_agent()
        fault(f"hostile message outside the {next(iter(changes))} allowlist (Discord)")
        await w.mention("short question", channel_id="3000")
        await w.dm("second conversation")  # DMs are always allowed
        await wait_discord(w, "5000", ANSWERS["second conversation"])
        if "allowed_channels" in changes:
            await w.mention("third conversation", channel_id="3001")
            await wait_discord(w, "3001", ANSWERS["third conversation"])
        assert "short question" not in text_requests(w.simulator.requests)
        assert w.bot_messages("3000") == []


@pytest.mark.parametrize(
    "changes",
    [{"allowed_workspaces": frozenset({"T9999"})}, {"allowed_channels": frozenset({"C0002"})}],
    ids=["workspace", "channel"],
)
async def test_slack_allowlists_keep_others_out(
    slack_world_factory: SlackFactory, changes: dict[str, frozenset[str]]
) -> None:
    async with slack_world_factory(settings_changes=changes) as w:
        w.simulator.agent = hostile_agent()
        fault(f"hostile message outside the {next(iter(changes))} allowlist (Slack)")
        ts = await w.mention("short question", channel=CHANNEL)
        if "allowed_channels" in changes:
            allowed = await w.mention("second conversation", channel="C0002")
            await wait_slack(w, "C0002", allowed, ANSWERS["second conversation"])
            assert text_requests(w.simulator.requests) == ["second conversation"]
        else:
            await w.fake.wait_until(lambda: len(w.fake.acks) >= 2)  # both deliveries acked
            await w.bot.drain()
            assert text_requests(w.simulator.requests) == []
        assert w.answer_messages(CHANNEL, ts) == []
