"""PacedMessage against the recording platform: exact finals, budgets, overflow, faults."""

from __future__ import annotations

import asyncio

from core.budget import RateBudget
from core.errors import PlatformError, PlatformPermissionError
from core.live_messages import GuardedStream, LiveMessages
from core.markdown import split_text
from core.paced_message import CURSOR, RETRY_DELAY_S, PacedMessage, split_limit
from core.platform import Outcome
from tests.fakes.recording import Platform, RecordingWriter

WINDOW_S = 0.5


def words(n: int) -> list[str]:
    return [f"word{i} " if i % 7 else f"sentence {i}.\n\n" for i in range(n)]


def make(platform: Platform, budget: RateBudget | None = None) -> PacedMessage:
    return PacedMessage(
        RecordingWriter(platform),
        edit_budget=budget or RateBudget(platform.limit, platform.window_s),
        post_budget=RateBudget(platform.limit, platform.window_s),
        stop_id="s1",
    )


def make_with(platform: Platform, post_budget: RateBudget) -> PacedMessage:
    return PacedMessage(
        RecordingWriter(platform),
        edit_budget=RateBudget(platform.limit, platform.window_s),
        post_budget=post_budget,
        stop_id="s1",
    )


async def stream(message: PacedMessage, chunks: list[str], delay_s: float = 0.002) -> str:
    for chunk in chunks:
        message.append(chunk)
        await asyncio.sleep(delay_s)
    return "".join(chunks)


async def test_final_text_is_exact_and_edits_stay_in_budget() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    message = make(platform)
    text = await stream(message, words(150))
    await message.finish()
    assert platform.visible() == [p.rendered for p in split_text(text, split_limit(2000))]
    assert "".join(platform.visible()) == text
    assert platform.rejected_429 == 0
    assert message.edits >= 3  # it really streamed
    final = platform.requests[-1]
    assert final.stop_id is None and not final.text.endswith(CURSOR)


async def test_interim_text_only_grows_and_ends_at_word_boundaries() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    message = make(platform)
    chunks = ["Hel", "lo wor", "ld, this ", "is a te", "st of stre", "aming. "] * 20
    text = await stream(message, chunks, delay_s=0.01)
    await message.finish()
    interim = [r.text for r in platform.requests if r.kind == "edit" and r.stop_id]
    assert interim
    for shown in interim:
        body = shown.removesuffix(CURSOR)
        assert text.startswith(body)
        assert body == "" or body.endswith((" ", ",", ".")) or text[len(body)] == " "
    assert platform.visible() == [text]


async def test_overflow_rolls_into_continuations_with_balanced_fences() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    message = make(platform)
    code = "\n".join(f"    print('line {i}')  # some code" for i in range(80))
    text = "Intro paragraph.\n\n" + "Prose " * 200 + "\n\n```python\n" + code + "\n```\n\nDone."
    await stream(message, [text[i : i + 40] for i in range(0, len(text), 40)], 0.001)
    await message.finish()
    parts = split_text(text, split_limit(2000))
    assert len(parts) >= 3
    assert platform.visible() == [p.rendered for p in parts]
    assert "".join(p.body for p in parts) == text
    for shown in platform.visible():
        assert shown.count("```") % 2 == 0
        assert len(shown) <= 2000
    assert platform.rejected_429 == 0


async def test_interrupted_message_keeps_text_and_ends_with_a_note() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    message = make(platform)
    text = await stream(message, ["Partial ", "answer ", "here"])
    await message.finish(Outcome.INTERRUPTED)
    assert platform.visible() == [f"{text}\n\n{Outcome.INTERRUPTED.note}"]


async def test_deleted_placeholder_gets_the_rest_posted_anew() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    message = make(platform)
    first = await stream(message, ["one ", "two ", "three "], 0.05)
    platform.deleted.add(platform.order[0])
    rest = await stream(message, ["four ", "five ", "six."], 0.05)
    await message.finish()
    assert platform.visible() == [first + rest]


async def test_failing_edits_deliver_only_the_unseen_remainder() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    message = make(platform)
    first = await stream(message, ["alpha ", "beta ", "gamma "], 0.15)
    platform.fail_next.extend(PlatformError("500") for _ in range(50))
    rest = await stream(message, ["delta ", "epsilon ", "zeta ", "eta ", "theta."], 0.15)
    platform.fail_next.clear()
    await message.finish()
    shown = [v.removesuffix(CURSOR) for v in platform.visible()]
    assert "".join(shown) == first + rest
    assert len(shown) >= 2


class FirstMessageFrozen(RecordingWriter):
    """A writer that cannot edit the first message's final text in (it keeps failing)."""

    async def edit(self, message_id: str, text: str, *, stop_id: str | None) -> None:
        if message_id == "1" and stop_id is None:
            raise PlatformError("500")
        await super().edit(message_id, text, stop_id=stop_id)


async def test_a_full_part_that_cannot_be_frozen_loses_none_of_its_text() -> None:
    platform = Platform(limit=50, window_s=WINDOW_S)
    message = PacedMessage(
        FirstMessageFrozen(platform),
        edit_budget=RateBudget(platform.limit, platform.window_s),
        post_budget=RateBudget(platform.limit, platform.window_s),
        stop_id="s1",
    )
    text = await stream(message, words(600), 0.0005)  # about three messages' worth
    await message.finish()
    shown = [v.removesuffix(CURSOR) for v in platform.visible()]
    first, rest = shown[0], "".join(shown[1:])
    assert text.startswith(first) and first + rest == text  # the unseen rest posted once


class NoPermission(RecordingWriter):
    """A destination the bot may not post in (Discord 50013, Slack not_in_channel)."""

    attempts = 0

    async def post(self, text: str, *, stop_id: str | None) -> str:
        self.attempts += 1
        raise PlatformPermissionError("missing 'Send Messages' permission")


async def test_a_missing_permission_is_not_retried() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    writer = NoPermission(platform)
    message = PacedMessage(
        writer,
        edit_budget=RateBudget(platform.limit, platform.window_s),
        post_budget=RateBudget(platform.limit, platform.window_s),
        stop_id="s1",
    )
    started = asyncio.get_running_loop().time()
    await stream(message, words(50))
    await message.finish()
    assert writer.attempts == 2  # the placeholder, then the answer once: no retry loop
    assert asyncio.get_running_loop().time() - started < RETRY_DELAY_S


async def test_empty_completion_removes_the_placeholder() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    message = make(platform)
    await asyncio.sleep(0.05)  # the placeholder goes out
    await message.finish()
    assert platform.visible() == []
    assert [r.kind for r in platform.requests] == ["post", "delete"]


async def test_a_whitespace_only_completion_removes_the_placeholder_too() -> None:
    """Blanks are no answer (and Discord refuses a message of blanks, 50006)."""
    platform = Platform(limit=5, window_s=WINDOW_S)
    message = make(platform)
    while not platform.requests:  # the placeholder goes out
        platform.changed.clear()
        await platform.changed.wait()
    for blank in (" ", "\n", "  "):
        message.append(blank)
    await message.finish()
    assert platform.visible() == []
    assert [r.kind for r in platform.requests][-1] == "delete"


async def test_an_answer_that_ends_before_its_placeholder_slot_is_posted_whole() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    post_budget = RateBudget(1, 0.3, reserve=0)
    async with post_budget.slot(final=True):  # another message holds the only post slot
        message = make_with(platform, post_budget)
        text = await stream(message, words(40))
        finishing = asyncio.create_task(message.finish())
        await asyncio.sleep(0)
    await finishing
    assert platform.visible() == [text]
    assert [r.kind for r in platform.requests] == ["post"]  # one request, no placeholder


async def test_a_late_placeholder_shows_the_text_so_far() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    post_budget = RateBudget(1, 0.3, reserve=0)
    async with post_budget.slot(final=True):
        message = make_with(platform, post_budget)
        message.append("Hello there, ")
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.4)  # the slot settled as the block ended: one window (0.3 s) later
    first = platform.requests[0]
    assert first.kind == "post" and first.text.startswith("Hello there,")
    message.append("world.")
    await message.finish()
    assert platform.visible() == ["Hello there, world."]


async def test_three_messages_share_one_destination_budget() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    shared = RateBudget(platform.limit, platform.window_s)
    messages = [make(platform, shared) for _ in range(3)]
    texts = await asyncio.gather(*(stream(m, words(150), 0.008) for m in messages))
    await asyncio.gather(*(m.finish() for m in messages))
    assert sorted(platform.visible()) == sorted(texts)
    assert platform.rejected_429 == 0
    assert all(m.edits >= 2 for m in messages)


async def test_remainder_that_starts_inside_a_code_block_reopens_the_fence() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    message = make(platform)
    first = await stream(message, ["Look:\n\n```python\n", "x = 1\n", "y = 2\n"], 0.15)
    platform.fail_next.extend(PlatformError("500") for _ in range(50))
    rest = await stream(message, ["z = 3\n", "```\n\n", "After the code."], 0.15)
    platform.fail_next.clear()
    await message.finish()
    shown = [v.removesuffix(CURSOR) for v in platform.visible()]
    assert len(shown) == 2
    assert shown[1].startswith("```python\n")
    # the stale message keeps its interim closing fence (decoration, not source)
    assert shown[0].removesuffix("```") + shown[1].removeprefix("```python\n") == first + rest
    assert shown[1].endswith("After the code.")


async def test_a_failed_edit_is_retried_on_a_timer_without_new_text() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    message = make(platform)
    await stream(message, ["Hello "], 0.05)  # the placeholder goes out
    platform.fail_next.append(PlatformError("500"))
    platform.changed.clear()
    message.append("world, this is all. ")  # its edit fails; nothing else arrives
    while not platform.messages[platform.order[0]].startswith("Hello world, this is all."):
        platform.changed.clear()
        await asyncio.wait_for(platform.changed.wait(), 5)
    assert not platform.fail_next  # the failure happened, then the timer retried
    await message.finish()
    assert platform.visible() == ["Hello world, this is all. "]


async def test_a_message_abandoned_inside_bold_ends_before_the_marker() -> None:
    """Its interim view closed the bold ("**bold words**"); that closer is no source text, so
    the message ends before the "**" and the rest starts with it: exact, valid markdown."""
    platform = Platform(limit=5, window_s=WINDOW_S)
    budget = RateBudget(platform.limit, platform.window_s)
    live = LiveMessages(RecordingWriter(platform), budget=budget)
    post_budget = RateBudget(platform.limit, platform.window_s)
    paced = PacedMessage(live, edit_budget=budget, post_budget=post_budget, stop_id="s1")
    first = await stream(paced, ["Intro. ", "**bold ", "words "], 0.15)
    assert platform.visible() == ["Intro. **bold words**" + CURSOR]
    platform.fail_next.extend(PlatformError("500") for _ in range(50))
    rest = await stream(paced, ["more bold", "** and ", "plain."], 0.15)
    platform.fail_next.clear()
    await GuardedStream(paced, live).finish()
    assert platform.visible() == ["Intro. ", "**bold words more bold** and plain."]
    assert "".join(platform.visible()) == first + rest


async def test_with_more_streams_open_than_a_window_takes_the_answer_is_posted_whole() -> None:
    platform = Platform(limit=5, window_s=WINDOW_S)
    shared = RateBudget(2, 1.0, reserve=0)  # a global limit: 2 requests a second
    shared.expect(2)  # two other streams are open and each owes a write
    message = PacedMessage(
        RecordingWriter(platform),
        edit_budget=RateBudget(5, WINDOW_S, parent=shared),
        post_budget=RateBudget(5, WINDOW_S, parent=shared),
        stop_id="s1",
        demand=shared,
    )
    text = await stream(message, words(30))
    await message.finish()
    assert [r.kind for r in platform.requests] == ["post"]  # no placeholder, no edits
    assert platform.visible() == [text]
    assert shared._open_streams == 2  # this one is done
