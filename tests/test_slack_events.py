"""bots/slack/events.py: what of a Slack message reaches Voiceflow as the user's words."""

from __future__ import annotations

import pytest

from bots.slack.events import clean_text, deleted_message, welcome_place

BOT = "UBOT"


@pytest.mark.parametrize(
    ("sent", "words"),
    [
        ("<@UBOT> what is <http://example.com|example.com>?", "what is http://example.com?"),
        ("<@UBOT|fakebot> read <https://a.io/x|the doc>", "read the doc (https://a.io/x)"),
        (
            "ask <@U123> or <@W9|ann> in <#C1|general> or <#C2>",
            "ask @U123 or @ann in #general or #C2",
        ),
        ("mail <mailto:a@b.io|a@b.io>, or <https://x.io>", "mail a@b.io, or https://x.io"),
        ("<!here> <!subteam^S1|@team> <!date^1700000000^{date}|Nov 14>", "@here @team Nov 14"),
        ("1 &lt; 2 &amp;&amp; 3 &gt; 2", "1 < 2 && 3 > 2"),  # Slack's escapes, not markup
    ],
)
def test_slack_markup_reaches_voiceflow_as_the_words_it_shows(sent: str, words: str) -> None:
    assert clean_text(sent, BOT) == words


def test_a_deletion_names_the_message_it_deleted() -> None:
    event = {"type": "message", "subtype": "message_deleted", "channel": "C1", "deleted_ts": "1.2"}
    assert deleted_message({"team_id": "T1", "event": event}) == ("T1", "C1", "1.2")
    edited = {**event, "subtype": "message_changed"}
    assert deleted_message({"team_id": "T1", "event": edited}) is None
    assert deleted_message({"team_id": "T1", "event": {**event, "deleted_ts": None}}) is None
    assert deleted_message({"type": "block_actions"}) is None


@pytest.mark.parametrize(
    ("event", "welcomed"),
    [
        ({"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "messages"}, True),
        ({"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home"}, False),
        ({"type": "app_home_opened", "user": "U1", "tab": "messages"}, False),
        ({"type": "app_home_opened", "channel": "D1", "tab": "messages"}, False),
    ],
    ids=["messages-tab", "home-tab", "no-dm", "no-member"],
)
def test_only_opening_the_messages_tab_welcomes(event: dict[str, object], welcomed: bool) -> None:
    place = welcome_place({"team_id": "T1", "event": event})
    assert (place is not None) == welcomed
    if place is not None:
        assert (place.team_id, place.channel, place.user_id, place.thread_ts) == (
            "T1",
            "D1",
            "U1",
            None,
        )
        assert place.is_dm and not place.status_ts
