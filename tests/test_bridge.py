"""Bridge over real HTTP: simulator, real client, a real SQLite file, the recording platform."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.admission import EMPTY
from core.bridge import RETRY_LABEL, Bridge, ConversationKey, StopResult
from core.config import Secret, Settings
from core.platform import ButtonRef, Outcome
from core.relay import AGENT_ERROR_NOTE
from core.simulator import SIMULATOR_API_KEY, SIMULATOR_PROJECT_ID, Simulator
from core.simulator.server import ENDED_TEXT
from core.store import SqliteStore
from core.voiceflow import VoiceflowClient
from tests.fakes.recording import Platform, RecordingRenderer


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    async with Simulator(token_delay_s=0.005) as sim:
        yield sim


@pytest.fixture
async def bridge(simulator: Simulator, tmp_path: Path) -> AsyncIterator[Bridge]:
    store = await SqliteStore.open(tmp_path / "state.db")
    client = VoiceflowClient(
        base_url=simulator.url,
        api_key=Secret(SIMULATOR_API_KEY),
        project_id=SIMULATOR_PROJECT_ID,
        environment="production",
    )
    bridge = Bridge(Settings(), client, store)
    try:
        yield bridge
    finally:
        await bridge.aclose()
        await client.aclose()
        await store.close()


def key(place: str = "c1") -> ConversationKey:
    return ConversationKey("test", "w1", place, "")


def renderer() -> RecordingRenderer:
    return RecordingRenderer(Platform(limit=5, window_s=0.5))


def interacts(sim: Simulator) -> list[dict[str, object]]:
    return [r.json["action"] for r in sim.requests if r.path.endswith("/interact/stream")]


async def test_a_new_conversation_launches_first(bridge: Bridge, simulator: Simulator) -> None:
    out = renderer()
    await bridge.handle_message(key(), "hello there", out)
    actions = interacts(simulator)
    assert [a["type"] for a in actions] == ["launch", "text"]
    assert actions[1]["payload"] == "hello there"
    users = {r.path.split("/user/")[1] for r in simulator.requests if "/user/" in r.path}
    assert len(users) == 1
    kinds = [k for k, _ in out.events]
    assert kinds[:2] == ["text", "buttons"] and "stream" in kinds
    await bridge.handle_message(key(), "again", out)
    assert [a["type"] for a in interacts(simulator)] == ["launch", "text", "text"]


async def test_a_crashing_agent_is_told_once_per_message(
    bridge: Bridge, simulator: Simulator
) -> None:
    """The runtime crashes the launch and the text turn (a debug trace, then end): the user's
    text is still sent, and one note says so, not two; a greeting alone says it too."""
    simulator.faults.internal_error = True
    out = renderer()
    await bridge.handle_message(key(), "hello there", out)
    assert [a["type"] for a in interacts(simulator)] == ["launch", "text"]
    assert [kind for kind, _ in out.events] == ["notice", "buttons"]
    assert out.events[0] == ("notice", AGENT_ERROR_NOTE)
    assert retry_request(out) == {"type": "text", "payload": "hello there"}
    alone = renderer()
    await bridge.launch(key("c2"), alone)
    assert alone.events == [("notice", AGENT_ERROR_NOTE)]  # a greeting: mention the bot again


def retries(out: RecordingRenderer) -> list[ButtonRef]:
    """The Retry buttons the renderer was shown."""
    sets = [v for k, v in out.events if k == "buttons"]
    return [r for refs in sets for r in refs if r.button.name == RETRY_LABEL]  # type: ignore[attr-defined]


def last_buttons(out: RecordingRenderer) -> list[ButtonRef]:
    """The button set the renderer was last shown."""
    refs = [v for k, v in out.events if k == "buttons"][-1]
    assert isinstance(refs, list)
    return refs


def retry_request(out: RecordingRenderer) -> dict[str, object]:
    """The request of the Retry button the renderer was last shown."""
    refs = last_buttons(out)
    assert len(refs) == 1 and refs[0].button.name == RETRY_LABEL
    request: dict[str, object] = refs[0].button.request
    return request


async def test_a_broken_answer_offers_a_retry_that_asks_again(
    bridge: Bridge, simulator: Simulator
) -> None:
    """The stream breaks mid-answer: the text stays, a Retry button follows, and its click
    sends the user's text again — which now gets the whole answer, and no second Retry."""
    out = renderer()
    await bridge.handle_message(key(), "hi", out)
    simulator.faults.close_after_events = 6
    await bridge.handle_message(key(), "long", out)
    assert out.events[-1][0] == "buttons"
    assert retry_request(out) == {"type": "text", "payload": "long"}
    assert out.platform.visible()[-1].endswith(Outcome.INTERRUPTED.note)
    simulator.faults.close_after_events = None
    pressed = await bridge.lookup_button(last_buttons(out)[0].id)
    assert pressed is not None and pressed.key == key()
    shown = len(out.events)
    await bridge.handle_button(pressed, out)
    assert interacts(simulator)[-1] == {"type": "text", "payload": "long"}
    assert "buttons" not in [kind for kind, _ in out.events[shown:]]
    assert not out.platform.visible()[-1].endswith(Outcome.INTERRUPTED.note)


@pytest.mark.parametrize("status", [401, 404, 400])
async def test_a_refused_request_offers_no_retry(
    bridge: Bridge, simulator: Simulator, status: int
) -> None:
    """Sending it again would be refused again: the notice says what is wrong, no button."""
    out = renderer()
    await bridge.handle_message(key(), "hi", out)
    simulator.faults.fail_next(status)
    await bridge.handle_message(key(), "again", out)
    assert out.events[-1][0] == "notice"
    assert not retries(out)


async def test_ten_conversations_run_concurrently(bridge: Bridge, simulator: Simulator) -> None:
    done: list[float] = []

    async def converse(i: int) -> None:
        await bridge.handle_message(key(f"c{i}"), f"question {i}", renderer())
        done.append(time.monotonic())

    await asyncio.gather(*(converse(i) for i in range(10)))
    texts = [
        r for r in simulator.requests if r.json and r.json.get("action", {}).get("type") == "text"
    ]
    assert len(texts) == 10
    # every conversation's turn reached Voiceflow before the first one finished
    assert max(r.time for r in texts) < min(done)


async def test_turns_of_one_conversation_stay_in_order(
    bridge: Bridge, simulator: Simulator
) -> None:
    out = renderer()
    tasks = [asyncio.create_task(bridge.handle_message(key(), f"m{i}", out)) for i in range(5)]
    await asyncio.gather(*tasks)
    payloads = [a.get("payload") for a in interacts(simulator) if a["type"] == "text"]
    assert payloads == [f"m{i}" for i in range(5)]
    assert max(simulator.max_concurrent_turns.values()) == 1


async def test_stop_closes_the_upstream_request(bridge: Bridge, simulator: Simulator) -> None:
    out = renderer()
    await bridge.launch(key(), out)
    turn = asyncio.create_task(bridge.handle_message(key(), "long", out))
    await out.platform.changed.wait()
    while not out.streams or not out.streams[-1].text:
        out.platform.changed.clear()
        await out.platform.changed.wait()
    stop_id = next(v for k, v in reversed(out.events) if k == "stream")
    assert bridge.stop(str(stop_id)) is StopResult.STOPPED
    await asyncio.wait_for(simulator.wait_for_disconnects(1), 5)
    await turn
    assert out.platform.visible()[-1].endswith(Outcome.STOPPED.note)
    assert bridge.stop(str(stop_id)) is StopResult.NOT_RUNNING
    assert not retries(out)  # the user stopped it: nothing to retry


async def test_a_withdrawn_question_never_runs_or_stops_quietly(
    bridge: Bridge, simulator: Simulator
) -> None:
    """A deleted message (``withdraw``): reported before its turn began, the turn never runs;
    while it runs, Voiceflow's request closes and, with no answer shown yet, nothing is posted."""
    out = renderer()
    await bridge.handle_message(key(), "hi", out)
    assert bridge.withdraw("m0") is False  # no turn of it yet: remembered all the same
    await bridge.handle_message(key(), "never", out, origin="m0")
    shown = len(out.events)
    asked = len(simulator.requests)
    running = asyncio.create_task(bridge.handle_message(key(), "long", out, origin="m1"))
    await simulator.wait_for_requests(asked + 1)  # its Voiceflow request is open
    assert bridge.withdraw("m1") is True
    await asyncio.wait_for(simulator.wait_for_disconnects(1), 5)
    await running
    assert [a.get("payload") for a in interacts(simulator)[1:]] == ["hi", "long"]
    assert not [e for e in out.events[shown:] if e[0] in ("notice", "text", "buttons")]
    if "stream" in [kind for kind, _ in out.events[shown:]]:  # it had opened its answer
        assert out.platform.visible()[-1].endswith(Outcome.STOPPED.note)
    assert bridge.withdraw("m1") is False  # its turn is over


async def test_only_the_asker_or_an_override_stops_a_turn(
    bridge: Bridge, simulator: Simulator
) -> None:
    out = renderer()
    await bridge.launch(key(), out)
    turn = asyncio.create_task(bridge.handle_message(key(), "long", out, author="U1"))
    while not out.streams or not out.streams[-1].text:
        out.platform.changed.clear()
        await out.platform.changed.wait()
    stop_id = str(next(v for k, v in reversed(out.events) if k == "stream"))
    assert bridge.stop(stop_id, by="U2") is StopResult.NOT_YOURS
    assert bridge.stop(stop_id, by="U2", overrides=True) is StopResult.STOPPED
    await turn
    assert out.platform.visible()[-1].endswith(Outcome.STOPPED.note)


async def test_reset_rotates_the_user_and_deletes_the_old_state(
    bridge: Bridge, simulator: Simulator
) -> None:
    out = renderer()
    await bridge.handle_message(key(), "hi", out)
    first_user = key().user_id(1)
    await bridge.reset(key())
    deletes = [r for r in simulator.requests if r.method == "DELETE"]
    assert [r.path for r in deletes] == [f"/state/user/{first_user}"]
    await bridge.handle_message(key(), "hi again", out)
    last = [r for r in simulator.requests if r.path.endswith("/interact/stream")][-2:]
    assert [r.json["action"]["type"] for r in last] == ["launch", "text"]
    assert all(key().user_id(2) in r.path for r in last)


async def test_an_end_trace_makes_the_next_message_launch(
    bridge: Bridge, simulator: Simulator
) -> None:
    out = renderer()
    await bridge.handle_message(key(), "end", out)
    await bridge.handle_message(key(), "hello", out)
    assert [a["type"] for a in interacts(simulator)] == ["launch", "text", "launch", "text"]
    paths = [r.path for r in simulator.requests if r.path.endswith("/interact/stream")]
    assert all(key().user_id(1) in p for p in paths[:2])
    assert all(key().user_id(2) in p for p in paths[2:])  # a fresh Voiceflow state (SPEC §4)


async def test_a_launch_that_failed_is_sent_again_with_the_next_message(
    bridge: Bridge, simulator: Simulator
) -> None:
    out = renderer()
    simulator.faults.fail_next(401)  # refused, not retried
    await bridge.handle_message(key(), "hi", out)
    assert [a["type"] for a in interacts(simulator)] == ["launch"]  # answered 401
    await bridge.handle_message(key(), "hi again", out)
    assert [a["type"] for a in interacts(simulator)] == ["launch", "launch", "text"]


async def test_buttons_send_their_request_verbatim(bridge: Bridge, simulator: Simulator) -> None:
    out = renderer()
    await bridge.handle_message(key(), "buttons", out)
    refs = last_buttons(out)
    ref = next(r for r in refs if r.button.url is None)
    pressed = await bridge.lookup_button(ref.id)
    assert pressed is not None and pressed.key == key()
    await bridge.handle_button(pressed, out)
    assert interacts(simulator)[-1] == ref.button.request
    assert await bridge.lookup_button("unknown") is None
    simulator.faults.internal_error = True  # a click the agent crashes on offers it again
    await bridge.handle_button(pressed, out)
    assert retry_request(out) == ref.button.request


async def test_no_reply_timer_sends_no_reply(bridge: Bridge, simulator: Simulator) -> None:
    out = renderer()
    await bridge.handle_message(key(), "noreply", out)
    await asyncio.wait_for(_no_reply_seen(simulator), 10)
    assert interacts(simulator)[-1] == {"type": "no-reply"}


async def _no_reply_seen(simulator: Simulator) -> None:
    while not any(a == {"type": "no-reply"} for a in interacts(simulator)):
        await simulator.wait_for_requests(len(simulator.requests) + 1)


async def test_user_input_cancels_the_no_reply_timer(bridge: Bridge, simulator: Simulator) -> None:
    out = renderer()
    await bridge.handle_message(key(), "noreply", out)
    await bridge.handle_message(key(), "I'm here", out)
    assert bridge._no_reply == {}


@pytest.mark.parametrize("refused", ["", "x" * 5000], ids=["bare-mention", "too-long"])
async def test_input_refused_by_admission_cancels_the_no_reply_timer_too(
    bridge: Bridge, simulator: Simulator, refused: str
) -> None:
    """The user is there even if their message cannot be sent on: no "are you still there?"."""
    out = renderer()
    await bridge.handle_message(key(), "noreply", out)
    assert key().id in bridge._no_reply
    await bridge.handle_message(key(), refused, out)
    assert bridge._no_reply == {}


async def test_input_that_waited_for_a_turn_cancels_the_timer_that_turn_armed(
    bridge: Bridge, simulator: Simulator
) -> None:
    out = renderer()
    await bridge.handle_message(key(), "hi", out)
    asking = asyncio.create_task(bridge.handle_message(key(), "noreply", out))
    await asyncio.sleep(0)  # it holds the conversation; the answer below waits for it
    answer = asyncio.create_task(bridge.handle_message(key(), "I am here", out))
    await asyncio.gather(asking, answer)
    assert key().id not in bridge._no_reply  # the timer the first turn armed was cancelled


async def test_a_bare_mention_opening_a_conversation_launches_it(
    bridge: Bridge, simulator: Simulator
) -> None:
    out = renderer()
    await bridge.handle_message(key(), "   ", out)
    assert [a["type"] for a in interacts(simulator)] == ["launch"]  # a greeting, no text turn
    await bridge.handle_message(key(), "", out)  # in a running conversation: nothing to send
    assert [a["type"] for a in interacts(simulator)] == ["launch"]
    assert [v for k, v in out.events if k == "notice"] == [EMPTY]


async def test_a_button_clicked_after_the_end_launches_first(
    bridge: Bridge, simulator: Simulator
) -> None:
    out = renderer()
    await bridge.handle_message(key(), "buttons", out)
    refs = last_buttons(out)
    ref = next(r for r in refs if r.button.url is None)
    await bridge.handle_message(key(), "end", out)
    pressed = await bridge.lookup_button(ref.id)
    assert pressed is not None
    await bridge.handle_button(pressed, out)
    assert interacts(simulator)[-2:] == [{"type": "launch"}, ref.button.request]
    assert ENDED_TEXT not in out.platform.visible()


async def test_idle_conversations_hold_no_lock(bridge: Bridge, simulator: Simulator) -> None:
    """A lock lives while a turn runs or waits; thousands of one-off DMs leave none behind."""
    out = renderer()
    await asyncio.gather(*(bridge.handle_message(key(f"dm{i}"), "hi", out) for i in range(20)))
    first = asyncio.create_task(bridge.handle_message(key(), "hello", out))
    second = asyncio.create_task(bridge.handle_message(key(), "again", out))
    await asyncio.sleep(0)
    assert list(bridge._locks) == [key().id]  # one conversation busy, one turn waiting
    await asyncio.gather(first, second)
    assert bridge._locks == {}
