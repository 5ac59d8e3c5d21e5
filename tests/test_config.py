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


@pytest.mark.parametrize(
    ("env", "count", "ids"),
    [
        ({}, None, None),
        ({"DISCORD_SHARD_COUNT": "Auto"}, "auto", None),
        ({"DISCORD_SHARD_COUNT": "8"}, 8, None),
        ({"DISCORD_SHARD_COUNT": "8", "DISCORD_SHARD_IDS": "4-5, 0,2-3,2"}, 8, (0, 2, 3, 4, 5)),
    ],
)
def test_discord_shards_are_a_count_and_the_ids_this_process_connects(
    env: dict[str, str], count: object, ids: object
) -> None:
    settings = load_settings(env)
    assert (settings.discord_shard_count, settings.discord_shard_ids) == (count, ids)


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
        ({"STATE_URL": "sqlite:///"}, ["STATE_URL"]),  # SQLite's "": a throwaway database
        ({"VOICEFLOW_PROJECT_ID": GOOD_PROJECT}, ["VOICEFLOW_API_KEY"]),  # not the simulator
        # The token or key goes in Authorization: credentials in the URL would clash with it.
        ({"SLACK_API_URL": "http://u:pw@127.0.0.1:1/"}, ["SLACK_API_URL"]),
        ({"DISCORD_API_URL": "https://u:pw@proxy.example/api/v10"}, ["DISCORD_API_URL"]),
        ({"DISCORD_GATEWAY_URL": "wss://u@proxy.example"}, ["DISCORD_GATEWAY_URL"]),
        ({"VOICEFLOW_API_URL": "https://:pw@proxy.example"}, ["VOICEFLOW_API_URL"]),
        ({"VOICEFLOW_API_URL": "http://:80"}, ["VOICEFLOW_API_URL"]),  # no host
        ({"STREAM_STATIC_TEXT": "maybe"}, ["STREAM_STATIC_TEXT"]),
        ({"VOICEFLOW_ENVIRONMENT": "not valid!"}, ["VOICEFLOW_ENVIRONMENT"]),
        (
            {"VOICEFLOW_API_KEY": "VF.DM.only-two", "VOICEFLOW_PROJECT_ID": "p"},
            ["VOICEFLOW_API_KEY"],
        ),
        (
            {"VOICEFLOW_API_KEY": "VF.DM.abc.pasted–dash", "VOICEFLOW_PROJECT_ID": "p"},
            ["VOICEFLOW_API_KEY"],
        ),
        ({"VOICEFLOW_API_KEY": GOOD_KEY, "VOICEFLOW_PROJECT_ID": "a/b"}, ["VOICEFLOW_PROJECT_ID"]),
        ({"USER_RATE_LIMIT_PER_MINUTE": "-1"}, ["USER_RATE_LIMIT_PER_MINUTE"]),
        ({"DISCORD_SHARD_COUNT": "many"}, ["DISCORD_SHARD_COUNT"]),
        ({"DISCORD_SHARD_COUNT": "0"}, ["DISCORD_SHARD_COUNT"]),
        ({"DISCORD_SHARD_IDS": "0"}, ["DISCORD_SHARD_IDS"]),
        ({"DISCORD_SHARD_COUNT": "auto", "DISCORD_SHARD_IDS": "0"}, ["DISCORD_SHARD_IDS"]),
        ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "2-4"}, ["DISCORD_SHARD_IDS"]),
        ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "3-1"}, ["DISCORD_SHARD_IDS"]),
        ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "one"}, ["DISCORD_SHARD_IDS"]),
        ({"METRICS_PORT": "0"}, ["METRICS_PORT"]),
        ({"LOG_FORMAT": "yaml"}, ["LOG_FORMAT"]),
        ({"VOICEFLOW_CONTEXT_VARIABLES": "maybe"}, ["VOICEFLOW_CONTEXT_VARIABLES"]),
        ({"METRICS_PORT": "http"}, ["METRICS_PORT"]),
        ({"METRICS_PORT": "9464", "METRICS_HOST": "localhost"}, ["METRICS_HOST"]),
        ({"METRICS_PORT": "9464", "METRICS_HOST": "10.0.0.300"}, ["METRICS_HOST"]),
        ({"METRICS_HOST": "127.0.0.1"}, ["METRICS_HOST"]),  # without a port: nothing served
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "METRICS_PORT": "3000"},
            ["METRICS_PORT"],
        ),
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
    bad = "VF.WS.0123456789abcdef01234567.secretvalue"  # a workspace key, not a DM key
    with pytest.raises(ConfigErrors) as info:
        load_settings({"VOICEFLOW_API_KEY": bad, "VOICEFLOW_PROJECT_ID": GOOD_PROJECT})
    assert bad not in str(info.value)
    assert "secret" not in repr(Secret("secret"))


def test_a_store_password_never_shows_in_repr_and_is_redacted_from_logs() -> None:
    settings = load_settings({"STATE_URL": "redis://:s3cr3tpass@redis.internal:6379/0"})
    assert "s3cr3tpass" not in repr(settings)
    assert "state_url='redis://***@redis.internal:6379/0'" in repr(settings)
    assert settings.secrets() == ["s3cr3tpass"]


def test_keys_project_ids_and_environments_of_any_documented_shape_are_accepted() -> None:
    """Only the DM prefix and the key's three parts are checked (docs/voiceflow-api.md §7)."""
    for key, project, environment in [
        ("VF.DM.abc.secret123456", "myproject", "development"),
        (GOOD_KEY, GOOD_PROJECT, "0123456789abcdef01234567"),
    ]:
        settings = load_settings(
            {
                "VOICEFLOW_API_KEY": key,
                "VOICEFLOW_PROJECT_ID": project,
                "VOICEFLOW_ENVIRONMENT": environment,
            }
        )
        assert settings.voiceflow_project_id == project
        assert settings.voiceflow_environment == environment


def test_an_environment_alias_is_taken_in_any_case() -> None:
    settings = load_settings({"VOICEFLOW_ENVIRONMENT": " Production "})
    assert settings.voiceflow_environment == "production"


@pytest.mark.parametrize(
    "url",
    ["postgres://user:hunter2pw@db.internal/x", "postgres://bob:hunter2pw@x@db.internal/x"],
)
def test_a_bad_url_is_echoed_without_its_credentials(url: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_settings({"STATE_URL": url})
    assert "hunter2pw" not in str(info.value)
    assert "postgres://***@db.internal/x" in str(info.value)


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("VOICEFLOW_API_URL", "http://127.0.0.1:abc"),
        ("VOICEFLOW_API_URL", "http://[::1"),
        ("VOICEFLOW_API_URL", "http://127.0.0.1:99999"),
        ("DISCORD_GATEWAY_URL", "wss://gateway.example:-1"),
        ("STATE_URL", "redis://127.0.0.1:abc/0"),
        ("STATE_URL", "redis://127.0.0.1:99999/0"),
        ("STATE_URL", "redis://[::1"),
    ],
)
def test_a_bad_host_or_port_is_a_config_error(variable: str, url: str) -> None:
    """httpx and redis would only fail later, with a traceback."""
    assert errors_of({variable: url}) == [variable]


def test_a_bad_port_is_echoed_without_the_password() -> None:
    with pytest.raises(ConfigErrors) as info:
        load_settings({"STATE_URL": "redis://:hunter2pw@127.0.0.1:abc/0"})
    assert "hunter2pw" not in str(info.value) and "port" in str(info.value)


def test_good_hosts_and_ports_pass() -> None:
    settings = load_settings(
        {"VOICEFLOW_API_URL": "http://[::1]:3978", "STATE_URL": "redis://127.0.0.1:6379/0"}
    )
    assert settings.voiceflow_api_url == "http://[::1]:3978"
    assert settings.state_url == "redis://127.0.0.1:6379/0"


def test_no_user_rate_limit_unless_configured() -> None:
    assert load_settings({}).user_rate_limit_per_minute == 0
    assert load_settings({"USER_RATE_LIMIT_PER_MINUTE": "5"}).user_rate_limit_per_minute == 5


def test_metrics_are_served_only_when_a_port_is_configured() -> None:
    assert load_settings({}).metrics_port is None
    assert load_settings({"METRICS_PORT": "9464"}).metrics_port == 9464
    socket_mode = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "METRICS_PORT": "3000"}
    assert load_settings(socket_mode).metrics_port == 3000  # no HTTP listener to collide with


def test_metrics_listen_on_every_interface_unless_told_an_address() -> None:
    assert load_settings({"METRICS_PORT": "9464"}).metrics_host == "0.0.0.0"
    local = load_settings({"METRICS_PORT": "9464", "METRICS_HOST": "127.0.0.1"})
    assert local.metrics_host == "127.0.0.1"
    assert load_settings({"METRICS_PORT": "9464", "METRICS_HOST": "[::1]"}).metrics_host == "::1"
