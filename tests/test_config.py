"""Settings: defaults, one error per bad variable (named), secrets never shown."""

from __future__ import annotations

import pytest

from core.config import ConfigErrors, Secret, load_settings

GOOD_KEY = "VF.DM.0123456789abcdef01234567.AbCdEf123456"
GOOD_PROJECT = "0123456789abcdef01234567"


def test_defaults_use_the_simulator() -> None:
    settings = load_settings({})
    assert settings.uses_simulator
    assert settings.voiceflow_environment == "production"
    assert settings.state_url == "sqlite:///vf-bridge.db"
    assert not settings.discord_enabled and not settings.slack_enabled


def errors_of(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_settings(env)
    return [e.variable for e in info.value.errors]


@pytest.mark.parametrize(
    ("env", "variables"),
    [
        (
            {"VOICEFLOW_API_KEY": "nope", "VOICEFLOW_PROJECT_ID": GOOD_PROJECT},
            ["VOICEFLOW_API_KEY"],
        ),
        ({"VOICEFLOW_API_KEY": GOOD_KEY}, ["VOICEFLOW_PROJECT_ID"]),
        ({"VOICEFLOW_API_URL": "ftp://x"}, ["VOICEFLOW_API_URL"]),
        ({"DISCORD_GATEWAY_URL": "https://x"}, ["DISCORD_GATEWAY_URL"]),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, ["SLACK_SIGNING_SECRET"]),
        ({"SLACK_APP_TOKEN": "xapp-1"}, ["SLACK_BOT_TOKEN"]),
        ({"SLACK_PORT": "abc"}, ["SLACK_PORT"]),
        ({"CONVERSATION_SCOPE": "galaxy"}, ["CONVERSATION_SCOPE"]),
        ({"STREAM_UNIT": "token"}, ["STREAM_UNIT"]),
        ({"STATE_URL": "mysql://x"}, ["STATE_URL"]),
        ({"STREAM_STATIC_TEXT": "maybe"}, ["STREAM_STATIC_TEXT"]),
    ],
)
def test_each_problem_names_its_variable(env: dict[str, str], variables: list[str]) -> None:
    assert errors_of(env) == variables


def test_all_problems_are_reported_at_once() -> None:
    assert errors_of({"SLACK_PORT": "x", "STREAM_UNIT": "y"}) == ["SLACK_PORT", "STREAM_UNIT"]


def test_secrets_never_show_in_repr_or_errors() -> None:
    env = {"VOICEFLOW_API_KEY": GOOD_KEY, "VOICEFLOW_PROJECT_ID": GOOD_PROJECT}
    settings = load_settings(env)
    assert GOOD_KEY not in repr(settings)
    assert settings.secrets() == [GOOD_KEY]
    bad = "VF.DM.short.secretvalue"
    with pytest.raises(ConfigErrors) as info:
        load_settings({"VOICEFLOW_API_KEY": bad, "VOICEFLOW_PROJECT_ID": GOOD_PROJECT})
    assert bad not in str(info.value)
    assert "secret" not in repr(Secret("secret"))
