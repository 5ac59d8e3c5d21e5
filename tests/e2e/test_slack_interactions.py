"""Slack interactivity and safety end to end: buttons, stop, reset, echoes, signatures, check.

Same harness as test_slack_streaming.py: real slack-bolt against FakeSlack (Socket Mode and
HTTP), the real Bridge with SQLite in tmp_path, the real Simulator over HTTP.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from bots.slack import check_slack, neutralize_broadcasts
from bots.slack.bot import NOT_YOUR_BUTTONS, NOT_YOUR_STOP
from bots.slack.mentions import ZWJ
from core.admission import EMPTY, TOO_FAST
from core.bridge import RETRY_LABEL
from core.config import Secret
from core.relay import AGENT_ERROR_NOTE
from core.simulator import DefaultAgent, ScriptedAgent
from core.simulator.agent import choice, path_button
from tests.e2e import slack_fixtures
from tests.e2e.slack_fixtures import (
    ANSWERS,
    CHANNEL,
    DM,
    Mode,
    SlackWorld,
    WorldFactory,
    dm_event,
)
from tests.fakes.slack import FakeMessage

slack_world = slack_fixtures.slack_world
slack_mode = slack_fixtures.slack_mode
slack_world_factory = slack_fixtures.slack_world_factory
slack_no_proxy = slack_fixtures.slack_no_proxy


def buttons_message(world: SlackWorld, channel: str, thread_ts: str | None) -> FakeMessage:
    return next(
        m
        for m in world.answer_messages(channel, thread_ts)
        if any(b.get("type") == "actions" for b in m.blocks or [])
    )


def action_ids(message: FakeMessage) -> list[str]:
    return [
        e["action_id"]
        for b in message.blocks or []
        if b.get("type") == "actions"
        for e in b["elements"]
    ]


def default_buttons() -> list[dict[str, Any]]:
    traces = DefaultAgent().respond({"type": "text", "payload": "buttons"})
    return list(next(t for t in traces if t["type"] == "choice")["payload"]["buttons"])


# -- buttons ---------------------------------------------------------------------------------
async def test_button_round_trip_sends_the_request_verbatim(slack_world: SlackWorld) -> None:
    world = slack_world
    ts = await world.mention("buttons")
    await world.fake.wait_until(
        lambda: (
            bool(world.answer_messages(CHANNEL, ts))
            and any("actions" in str(m.blocks) for m in world.answer_messages(CHANNEL, ts))
        )
    )
    await world.bot.drain()
    message = buttons_message(world, CHANNEL, ts)
    ids = action_ids(message)
    assert ids[0].startswith("vfb:") and ids[-1].startswith("vfl:"), ids  # Docs is a link
    await world.click(message, ids[0])
    order_coffee = default_buttons()[0]
    await world.simulator.wait_for_requests(3, path_contains="/interact/stream")
    await world.fake.wait_until(
        lambda: "You chose **Order coffee**" in world.answer_text(CHANNEL, ts)
    )
    await world.bot.drain()
    actions = [r.json["action"] for r in world.simulator.requests if r.json and "action" in r.json]
    assert actions[-1] == order_coffee["request"], "button request not sent verbatim"
    chosen = world.fake.messages[(CHANNEL, message.ts)]
    assert not action_ids(chosen), "the button set is still clickable"
    assert "<@UHUMAN> chose *Order coffee*" in str(chosen.blocks)
    assert chosen.text == "<@UHUMAN> chose Order coffee", "the notification lost the mention"
    assert world.fake.count_429 == 0
    await world.assert_acked_in_time()


async def test_link_button_click_sends_its_request_and_shows_the_choice(
    slack_world: SlackWorld,
) -> None:
    """An open_url button opens its URL in Slack, and its click still goes to Voiceflow
    (SPEC §6; docs/voiceflow-api.md: open_url clicks come back as the button's request)."""
    world = slack_world
    await world.dm("buttons")
    await world.fake.wait_until(
        lambda: any("actions" in str(m.blocks) for m in world.answer_messages(DM, None))
    )
    await world.bot.drain()
    message = buttons_message(world, DM, None)
    link = action_ids(message)[-1]
    assert link.startswith("vfl:"), link
    await world.click(message, link)
    await world.fake.wait_until(
        lambda: "(received a request of type 'action': Docs)" in world.answer_text(DM, None)
    )
    await world.bot.drain()
    actions = [r.json["action"] for r in world.simulator.requests if r.json and "action" in r.json]
    assert actions[-1] == default_buttons()[-1]["request"], "link request not sent verbatim"
    chosen = world.fake.messages[(DM, message.ts)]
    assert not action_ids(chosen), "the button set is still clickable"
    assert "<@UHUMAN> chose *Docs*" in str(chosen.blocks)
    await world.assert_acked_in_time()


async def test_chosen_notification_mentions_the_user_but_not_the_label(
    slack_world: SlackWorld,
) -> None:
    """The bridge's own mention of who clicked notifies them; a broadcast in the label does not."""
    world = slack_world
    label = "Tell <!here> and @channel"
    world.simulator.agent = ScriptedAgent(
        launch=[],
        texts={"ping buttons": [choice(path_button(label, "p1n6"))]},
        requests={},
        default=None,
    )
    await world.dm("ping buttons")
    await world.fake.wait_until(
        lambda: any("actions" in str(m.blocks) for m in world.answer_messages(DM, None))
    )
    await world.bot.drain()
    message = buttons_message(world, DM, None)
    await world.click(message, action_ids(message)[0])
    await world.fake.wait_until(lambda: not action_ids(world.fake.messages[(DM, message.ts)]))
    await world.bot.drain()
    chosen = world.fake.messages[(DM, message.ts)]
    assert chosen.text == f"<@UHUMAN> chose Tell @{ZWJ}here and @{ZWJ}channel"
    assert set(chosen.pings) == {"<@UHUMAN>"}, chosen.pings


async def test_buttons_keep_working_after_a_restart(
    slack_world_factory: WorldFactory, slack_mode: Mode
) -> None:
    async with slack_world_factory(mode=slack_mode) as world:
        await world.dm("buttons")
        await world.fake.wait_until(
            lambda: any("actions" in str(m.blocks) for m in world.answer_messages(DM, None))
        )
        await world.bot.drain()
        message = buttons_message(world, DM, None)
        await world.restart()
        await world.click(message, action_ids(message)[1])
        await world.fake.wait_until(
            lambda: "You chose **Track order**" in world.answer_text(DM, None)
        )
        await world.bot.drain()
        actions = [
            r.json["action"] for r in world.simulator.requests if r.json and "action" in r.json
        ]
        assert actions[-1] == default_buttons()[1]["request"]


# -- stop ------------------------------------------------------------------------------------
async def test_stop_button_mid_stream(slack_world_factory: WorldFactory, slack_mode: Mode) -> None:
    async with slack_world_factory(
        mode=slack_mode, native_streaming=False, token_delay_s=0.02
    ) as world:
        await world.dm("ten thousand")

        def placeholder() -> FakeMessage | None:
            found = [m for m in world.answer_messages(DM, None) if "vfs:" in str(m.blocks)]
            return found[0] if found else None

        await world.fake.wait_until(lambda: placeholder() is not None)
        await world.fake.wait_until(lambda: len(world.fake.calls_to("chat.update")) >= 2)
        message = placeholder()
        assert message is not None
        await world.click(message, action_ids(message)[0])
        await world.simulator.wait_for_disconnects(1)
        await world.fake.wait_until(lambda: world.answer_text(DM, None).endswith("⏹️ stopped"))
        await world.bot.drain()
        shown = world.answer_text(DM, None).removesuffix("\n\n⏹️ stopped")
        assert ANSWERS["ten thousand"].startswith(shown) and len(shown) < 10_000
        assert "vfs:" not in str(world.fake.messages[(DM, message.ts)].blocks)
        assert world.fake.count_429 == 0
        await world.assert_acked_in_time()


async def test_a_deleted_question_stops_its_answer(
    slack_world_factory: WorldFactory, slack_mode: Mode
) -> None:
    """The asker deletes their question mid-answer: the Voiceflow request closes and the
    native answer ends as stopped. A question deleted while it waits behind that turn never
    reaches Voiceflow, and nothing is posted for it."""
    async with slack_world_factory(mode=slack_mode, token_delay_s=0.02) as world:
        ts = await world.mention("ten thousand")
        await world.fake.wait_until(lambda: len(world.fake.calls_to("chat.appendStream")) >= 1)
        queued = await world.reply_in_thread("tell me more", ts)  # the same thread: it waits
        await world.delete(queued, channel=CHANNEL)
        await world.delete(ts, channel=CHANNEL)
        await world.simulator.wait_for_disconnects(1)
        await world.fake.wait_until(lambda: world.answer_text(CHANNEL, ts).endswith("⏹️ stopped"))
        await world.bot.drain()
        texts = [
            r.json["action"]["payload"]
            for r in world.simulator.requests
            if r.json and r.json.get("action", {}).get("type") == "text"
        ]
        assert texts == ["ten thousand"]
        assert len(world.answer_messages(CHANNEL, ts)) == 1  # nothing posted after it
        assert world.fake.count_429 == 0
        await world.assert_acked_in_time()


async def test_only_the_asker_can_stop_an_answer(slack_world_factory: WorldFactory) -> None:
    """Someone else's click on Stop gets a note only they see; the asker's stops it."""
    async with slack_world_factory(native_streaming=False, token_delay_s=0.02) as world:
        ts = await world.mention("ten thousand")

        def placeholder() -> FakeMessage | None:
            found = [m for m in world.answer_messages(CHANNEL, ts) if "vfs:" in str(m.blocks)]
            return found[0] if found else None

        await world.fake.wait_until(lambda: placeholder() is not None)
        message = placeholder()
        assert message is not None
        await world.click(message, action_ids(message)[0], user="U0999")
        await world.fake.wait_until(
            lambda: any(NOT_YOUR_STOP in m.visible_text for m in world.fake.ephemerals)
        )
        assert world.simulator.disconnects == []
        await world.click(message, action_ids(message)[0])
        await world.simulator.wait_for_disconnects(1)
        await world.fake.wait_until(lambda: world.answer_text(CHANNEL, ts).endswith("⏹️ stopped"))


async def stop_native_answer(world: SlackWorld) -> tuple[str, FakeMessage, str]:
    """Mention the bot, then press Slack's stop on its native answer mid-stream; returns the
    thread, the native message and what that message showed when the user pressed stop."""
    ts = await world.mention("ten thousand")
    await world.fake.wait_until(lambda: len(world.fake.calls_to("chat.appendStream")) >= 1)
    native = world.fake.messages[
        (CHANNEL, world.fake.calls_to("chat.startStream")[0].response["ts"])
    ]
    shown = native.visible_text
    world.fake.stop_by_user(CHANNEL, native.ts)
    await world.simulator.wait_for_disconnects(1)
    await world.bot.drain()
    return ts, native, shown


async def test_native_stop_by_user_ends_the_answer_as_stopped(
    slack_world_factory: WorldFactory, slack_mode: Mode
) -> None:
    """Slack's stop control does what the Stop button does in post + update mode: the
    Voiceflow request is cancelled and the message ends with what it showed + the note."""
    async with slack_world_factory(mode=slack_mode, token_delay_s=0.02) as world:
        ts, native, shown = await stop_native_answer(world)
        assert shown and ANSWERS["ten thousand"].startswith(shown), shown
        assert [m.ts for m in world.answer_messages(CHANNEL, ts)] == [native.ts], "a notice too"
        assert native.visible_text == shown + "\n\n⏹️ stopped"
        errors = [c.error for c in world.fake.calls if c.error]
        assert errors == ["stopped_by_user"], "appended again after the stop"
        assert world.fake.count_429 == 0
        await world.assert_acked_in_time()


async def test_native_stop_by_user_on_the_final_stop_ends_the_answer_as_stopped(
    slack_world_factory: WorldFactory,
) -> None:
    """Stopped just as the answer ends: Slack refuses the closing stopStream; the message
    keeps what it confirmed and shows the note, once."""
    async with slack_world_factory() as world:
        world.fake.inject("chat.stopStream", error="stopped_by_user")
        ts = await world.mention("hello there")
        await world.fake.wait_until(lambda: bool(world.fake.calls_to("chat.update")))
        await world.bot.drain()
        [native] = world.answer_messages(CHANNEL, ts)
        body = native.visible_text.removesuffix("\n\n⏹️ stopped")
        assert body != native.visible_text, native.visible_text
        assert body and ANSWERS["hello there"].startswith(body), body
        assert "⏹️" not in body
        await world.assert_acked_in_time()


async def test_native_stop_by_user_posts_the_note_when_the_update_is_refused(
    slack_world_factory: WorldFactory,
) -> None:
    """A stopped answer too long for chat.update keeps its text; the note follows it."""
    async with slack_world_factory(token_delay_s=0.02) as world:
        world.fake.update_max_chars = 10  # below any answer + note: Slack says msg_too_long
        ts, native, shown = await stop_native_answer(world)
        first, note = world.answer_messages(CHANNEL, ts)
        assert first.ts == native.ts and first.visible_text == shown, "what was shown changed"
        assert note.visible_text == "⏹️ stopped"
        assert [c.error for c in world.fake.calls_to("chat.update")] == ["msg_too_long"]
        await world.assert_acked_in_time()


# -- text safety -----------------------------------------------------------------------------
def test_neutralize_broadcasts() -> None:
    text = (
        "Hi <!channel>, <!here|here> and <!everyone>; @here @Channel @everyone! <!subteam^S1|@ops>"
    )
    out = neutralize_broadcasts(text)
    assert out == (
        f"Hi @{ZWJ}channel, @{ZWJ}here and @{ZWJ}everyone; @{ZWJ}here @{ZWJ}Channel "
        f"@{ZWJ}everyone! @{ZWJ}ops"
    )
    assert neutralize_broadcasts("mail ops@here.example, @heresy, <#C1|general>") == (
        "mail ops@here.example, @heresy, <#C1|general>"
    )
    assert neutralize_broadcasts("<@U123>, <@W42|ann lee> and <@U7|@bo>") == (
        f"@{ZWJ}U123, @{ZWJ}ann lee and @{ZWJ}bo"
    )
    assert neutralize_broadcasts(out) == out
    emphasis = "_@here_ __@channel__ *@everyone* ~@here~ _*@channel*_ @here_"
    assert neutralize_broadcasts(emphasis) == (
        f"_@{ZWJ}here_ __@{ZWJ}channel__ *@{ZWJ}everyone* ~@{ZWJ}here~ _*@{ZWJ}channel*_ "
        f"@{ZWJ}here_"
    )
    assert neutralize_broadcasts("snake_case@here, @here2, @@here") == (
        "snake_case@here, @here2, @@here"
    )


async def test_broadcast_mentions_are_neutralized(slack_world: SlackWorld) -> None:
    world = slack_world
    ts = await world.mention("broadcast")
    await world.dm("broadcast")
    expected = neutralize_broadcasts(ANSWERS["broadcast"])
    await world.wait_answer(CHANNEL, ts, expected)
    await world.wait_answer(DM, None, expected)
    for call in world.writes():
        wire = str(call.args)
        assert "<!channel>" not in wire and "<!here>" not in wire
        assert "@everyone" not in wire and " @here" not in wire


# -- reset -----------------------------------------------------------------------------------
def user_ids(world: SlackWorld) -> list[str]:
    return [
        r.path.split("/user/")[1].split("/")[0]
        for r in world.simulator.requests
        if r.path.endswith("/interact/stream")
    ]


async def test_reset_word_starts_a_fresh_conversation(slack_world: SlackWorld) -> None:
    world = slack_world
    await world.dm("hello there")
    await world.wait_answer(DM, None, ANSWERS["hello there"])
    await world.dm("Reset!")
    await world.fake.wait_until(lambda: "Conversation reset" in world.answer_text(DM, None))
    await world.bot.drain()
    await world.dm("tell me more")
    await world.fake.wait_until(
        lambda: world.answer_text(DM, None).endswith(ANSWERS["tell me more"])
    )
    await world.bot.drain()
    ids = user_ids(world)
    assert ids[0] == ids[1] != ids[-1], ids  # launch+text on g1, then a new userID
    assert world.text_requests() == ["hello there", "tell me more"], "reset went to Voiceflow"


async def test_reset_in_a_mention_thread(slack_world: SlackWorld) -> None:
    world = slack_world
    ts = await world.mention("hello there")
    await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"])
    await world.mention("reset", thread_ts=ts)
    await world.fake.wait_until(lambda: "Conversation reset" in world.answer_text(CHANNEL, ts))
    await world.bot.drain()
    assert world.text_requests() == ["hello there"]


async def test_reset_slash_command(slack_world: SlackWorld) -> None:
    world = slack_world
    await world.dm("hello there")
    await world.wait_answer(DM, None, ANSWERS["hello there"])
    if world.mode == "socket":
        envelope = await world.fake.send_slash_command("/reset", "", channel_id=DM)
        assert await world.fake.wait_ack(envelope) < 3.0
        reply = world.fake.ack_payloads[envelope]
    else:
        response = await world.fake.post_slash_http(world.events_url, "/reset", "", channel_id=DM)
        assert response.status_code == 200
        reply = response.json()
    assert "Conversation reset" in reply["text"]
    await world.dm("tell me more")
    await world.fake.wait_until(
        lambda: world.answer_text(DM, None).endswith(ANSWERS["tell me more"])
    )
    await world.bot.drain()
    ids = user_ids(world)
    assert ids[0] != ids[-1]


async def test_reset_slash_command_in_a_channel_says_where_resets_go(
    slack_world_factory: WorldFactory,
) -> None:
    """Slack does not tell a slash command its thread, and every channel conversation is a
    thread: /reset there says how to reset one instead of confirming a reset of nothing. With
    CONVERSATION_SCOPE=user the member's one conversation is reset from anywhere."""
    for scope, expected in (("channel", "write `reset` in its thread"), ("user", "reset")):
        async with slack_world_factory(
            mode="socket", settings_changes={"conversation_scope": scope}
        ) as world:
            ts = await world.mention("hello there")
            await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"])
            envelope = await world.fake.send_slash_command("/reset", "", channel_id=CHANNEL)
            assert await world.fake.wait_ack(envelope) < 3.0
            text = world.fake.ack_payloads[envelope]["text"]
            assert expected in text and ("Conversation reset" in text) == (scope == "user")
            await world.mention("tell me more", thread_ts=ts)
            await world.fake.wait_until(
                lambda w=world, t=ts: w.answer_text(CHANNEL, t).endswith(ANSWERS["tell me more"])
            )
            await world.bot.drain()
            ids = user_ids(world)
            assert (ids[0] == ids[-1]) == (scope == "channel"), ids


# -- events that must not become turns -----------------------------------------------------------
async def test_own_echoes_and_other_bots_are_ignored(slack_world_factory: WorldFactory) -> None:
    async with slack_world_factory(mode="socket") as world:
        ts = await world.mention("hello there")
        await world.wait_answer(CHANNEL, ts, ANSWERS["hello there"])
        await world.fake.send_event(
            {
                "type": "message",
                "channel": DM,
                "channel_type": "im",
                "user": "UOTHER",
                "bot_id": "B0999",
                "text": "hello there",
                "ts": world.next_ts(),
            }
        )
        await world.fake.wait_until(lambda: not world.fake.unacked)
        await world.bot.drain()
        assert world.fake.echo_envelopes, "the fake echoed nothing; the test proves nothing"
        assert world.text_requests() == ["hello there"]
        assert not world.fake.late_acks


async def test_http_bad_signature_is_rejected(slack_world_factory: WorldFactory) -> None:
    async with slack_world_factory(mode="http") as world:
        event = {
            "type": "message",
            "channel_type": "im",
            "user": "UHUMAN",
            "text": "hello there",
            "ts": world.next_ts(),
            "channel": DM,
        }
        response = await world.fake.post_event_http(world.events_url, event, bad_signature=True)
        assert response.status_code == 401
        old = await world.fake.post_event_http(world.events_url, event, timestamp=1_600_000_000)
        assert old.status_code == 401
        await world.bot.drain()
        assert world.simulator.requests == []


# -- check -----------------------------------------------------------------------------------
async def test_check_slack(slack_world_factory: WorldFactory) -> None:
    async with slack_world_factory(mode="socket", start=False) as world:
        good = world.settings
        assert await check_slack(good) == []
        bad_bot = replace(good, slack_bot_token=Secret("xoxb-wrong-token"))
        [line] = await check_slack(bad_bot)
        assert line.startswith("SLACK_BOT_TOKEN: rejected by Slack (invalid_auth)")
        assert "xoxb-wrong-token" not in line
        bad_app = replace(good, slack_app_token=Secret("xapp-wrong-token"))
        [line] = await check_slack(bad_app)
        assert line.startswith("SLACK_APP_TOKEN: rejected by Slack (invalid_auth)")
        gone = replace(good, slack_api_url="http://127.0.0.1:9/api/")
        [line] = await check_slack(gone)
        assert line.startswith("SLACK_API_URL: cannot reach http://127.0.0.1:9/api/")


async def test_a_message_without_text_gets_the_same_reply_as_on_discord(
    slack_world_factory: WorldFactory,
) -> None:
    """A file-only DM or a bare mention in an ongoing conversation is answered with the
    admission's notice (it was silently dropped), and the per-user limit counts it."""
    limit = {"user_rate_limit_per_minute": 3}
    async with slack_world_factory(mode="socket", settings_changes=limit) as w:
        await w.dm("hello there")
        await w.wait_answer(DM, None, ANSWERS["hello there"])
        event = dm_event("", ts=w.next_ts())
        event |= {"subtype": "file_share", "files": [{"id": "F1", "name": "report.pdf"}]}
        await w.deliver(event)
        await w.fake.wait_until(
            lambda: any(EMPTY in m.visible_text for m in w.answer_messages(DM, None)), 15
        )
        for _ in range(3):  # the limit leaves one: a greeting, then two refused
            await w.mention("")

        def launches() -> int:
            actions = [r.json.get("action") or {} for r in w.simulator.requests if r.json]
            return sum(a.get("type") == "launch" for a in actions)

        def refused() -> bool:
            return any(TOO_FAST in m.visible_text for m in w.fake.messages.values())

        await w.fake.wait_until(refused, 15)
        await asyncio.wait_for(w.simulator.wait_for_requests(3), 15)  # launch, text, launch
        await w.bot.drain()
        assert launches() == 2  # the first DM's, and one bare mention's greeting


async def test_with_a_conversation_per_member_a_click_drives_only_your_own(
    slack_world_factory: WorldFactory,
) -> None:
    """CONVERSATION_SCOPE=channel_user: another member's click on your buttons gets a note
    only they see and reaches no Voiceflow state; the member they were shown to still can."""
    per_member = {"conversation_scope": "channel_user"}
    async with slack_world_factory(settings_changes=per_member) as world:
        ts = await world.mention("buttons")
        await world.fake.wait_until(
            lambda: any("actions" in str(m.blocks) for m in world.answer_messages(CHANNEL, ts))
        )
        await world.bot.drain()
        message = buttons_message(world, CHANNEL, ts)
        turns = len(world.simulator.requests)
        await world.click(message, action_ids(message)[0], user="U0999")
        await world.fake.wait_until(
            lambda: any(NOT_YOUR_BUTTONS in m.visible_text for m in world.fake.ephemerals)
        )
        await world.bot.drain()
        assert len(world.simulator.requests) == turns, "the foreign click reached Voiceflow"
        assert action_ids(world.fake.messages[(CHANNEL, message.ts)]), "the set was disabled"
        await world.click(message, action_ids(message)[0])
        await world.fake.wait_until(
            lambda: "You chose **Order coffee**" in world.answer_text(CHANNEL, ts)
        )
        await world.assert_acked_in_time()


async def test_a_runtime_crash_of_the_agent_is_told_in_the_conversation(
    slack_world: SlackWorld,
) -> None:
    """A debug "An internal error occurred." then end (docs/voiceflow-api.md §6) before any
    answer: the user reads that the agent failed instead of getting nothing, with a Retry
    button under it that asks again once the agent works."""
    w = slack_world
    await w.dm("hello there")
    await w.wait_answer(DM, None, ANSWERS["hello there"])
    before = len(w.answer_messages(DM, None))
    w.simulator.faults.internal_error = True
    await w.dm("tell me more")
    await w.fake.wait_until(
        lambda: any(RETRY_LABEL in m.visible_text for m in w.answer_messages(DM, None)), 15
    )
    await w.bot.drain()
    shown = w.answer_messages(DM, None)[before:]
    assert [m.visible_text for m in shown] == [AGENT_ERROR_NOTE, RETRY_LABEL]
    w.simulator.faults.internal_error = False
    await w.click(shown[1], action_ids(shown[1])[0])
    await w.fake.wait_until(lambda: w.answer_text(DM, None).endswith(ANSWERS["tell me more"]), 15)
    await w.bot.drain()
    assert w.answer_text(DM, None).count(ANSWERS["tell me more"]) == 1
    assert w.simulator.requests[-1].json["action"] == {"type": "text", "payload": "tell me more"}
    assert not action_ids(w.fake.messages[(DM, shown[1].ts)]), "the Retry was not disabled"
    await w.assert_acked_in_time()
