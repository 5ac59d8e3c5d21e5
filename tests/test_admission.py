"""Admission: per-user rate limit, input bounds, control characters, allowlists."""

from __future__ import annotations

from core.admission import MAX_INPUT_CHARS, TOO_FAST, Admission, clean_input, is_allowed_place
from core.config import Settings


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_flooding_user_is_bounded_and_warned_once_per_window() -> None:
    clock = Clock()
    gate = Admission(10, clock=clock)
    verdicts = [gate.check("u1", f"msg {i}") for i in range(100)]
    assert sum(v.text is not None for v in verdicts) == 10
    assert [v.reply for v in verdicts if v.reply] == [TOO_FAST]
    assert gate.check("u2", "other user").text == "other user"
    clock.now += 61
    assert gate.check("u1", "later").text == "later"


def test_long_and_empty_input_get_a_clear_reply() -> None:
    gate = Admission(100)
    long = gate.check("u", "x" * 50_000)
    assert long.text is None and long.reply is not None and "50,000" in long.reply
    assert gate.check("u", "x" * MAX_INPUT_CHARS).text is not None
    assert gate.check("u", "\x00\x01  ").reply is not None


def test_control_characters_are_removed() -> None:
    assert clean_input("he\x00llo\r\nwor\x1bld\u202e!") == "hello\nworld!"
    assert clean_input("tab\tkept") == "tab\tkept"


def test_allowlists() -> None:
    open_settings = Settings()
    assert is_allowed_place(
        open_settings, platform="discord", workspace="g", channel="c", is_dm=False
    )
    strict = Settings(allowed_guilds=frozenset({"g1"}), allowed_channels=frozenset({"c1"}))
    args = {"platform": "discord", "is_dm": False}
    assert is_allowed_place(strict, workspace="g1", channel="c1", **args)  # type: ignore[arg-type]
    assert not is_allowed_place(strict, workspace="g2", channel="c1", **args)  # type: ignore[arg-type]
    assert not is_allowed_place(strict, workspace="g1", channel="c2", **args)  # type: ignore[arg-type]
    assert is_allowed_place(strict, platform="discord", workspace=None, channel="d", is_dm=True)
    slack = Settings(allowed_workspaces=frozenset({"T1"}))
    assert not is_allowed_place(slack, platform="slack", workspace="T2", channel="C", is_dm=False)
