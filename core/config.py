"""Settings: read once from the environment (then `.env`), frozen, passed down.

Nothing below the CLI reads ``os.environ``. Every problem is a :class:`ConfigError` that names
its variable; :func:`load_settings` collects all of them so `vf-bridge check` can print one line
each.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Literal
from urllib.parse import urlsplit

from core.errors import ConfigError

__all__ = ["ConfigErrors", "Secret", "Settings", "load_settings", "safe_url"]

DEFAULT_VOICEFLOW_API_URL = "https://general-runtime.voiceflow.com"
DEFAULT_DISCORD_API_URL = "https://discord.com/api/v10"
DEFAULT_DISCORD_GATEWAY_URL = "wss://gateway.discord.gg"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_STATE_URL = "sqlite:///vf-bridge.db"
DEFAULT_VOICEFLOW_IDLE_TIMEOUT_S = 60.0
#: Far above any bot's need (Discord recommends one shard per ~1,000 guilds).
MAX_SHARDS = 10_000

# `VF.DM.<24 hex>.<secret>`: ids and secret lengths vary (docs, public keys, private clouds), so
# only the prefix and the three dot-separated parts are checked (docs/voiceflow-api.md §7).
_VOICEFLOW_KEY = re.compile(r"^VF\.DM\.[!-\-/-~]+\.[!-\-/-~]+$")  # printable ASCII but "."
# The project id goes into the request path: anything without a separator or whitespace.
_PROJECT_ID = re.compile(r"^[^\s/?#%]+$")
_ENVIRONMENT_ALIASES = ("production", "development")
_ENVIRONMENT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
_BAD_ADDRESS = "must have a valid host and a port in 0-65535"
_USERINFO = re.compile(r"(?<=//)[^/\s]*@")  # up to the last @ before the path, as urlsplit


def safe_url(url: str) -> str:
    """``url`` fit for a log line or an error: any ``user:password@`` replaced by ``***@``."""
    return _USERINFO.sub("***@", url)


Scope = Literal["channel", "user", "channel_user"]
StreamUnit = Literal["word", "sentence"]


class Secret:
    """A credential whose ``repr``/``str`` never shows the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    voiceflow_api_key: Secret | None = None
    voiceflow_project_id: str | None = None
    voiceflow_environment: str = "production"
    voiceflow_api_url: str = DEFAULT_VOICEFLOW_API_URL
    #: Seconds without a Voiceflow event before a started stream counts as interrupted.
    voiceflow_idle_timeout_s: float = DEFAULT_VOICEFLOW_IDLE_TIMEOUT_S
    discord_token: Secret | None = None
    discord_api_url: str = DEFAULT_DISCORD_API_URL
    discord_gateway_url: str = DEFAULT_DISCORD_GATEWAY_URL
    #: None: one gateway connection (no sharding); "auto": every shard Discord recommends, in
    #: this process; a number: that many shards in all.
    discord_shard_count: int | Literal["auto"] | None = None
    #: The shards this process connects (with a numeric count); None: every one of them.
    discord_shard_ids: tuple[int, ...] | None = None
    slack_bot_token: Secret | None = None
    slack_app_token: Secret | None = None
    slack_signing_secret: Secret | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    slack_port: int = 3000
    state_url: str = DEFAULT_STATE_URL
    conversation_scope: Scope = "channel"
    stream_unit: StreamUnit = "word"
    stream_static_text: bool = False
    #: Send who wrote and where as ``bridge_*`` Voiceflow variables (core/bridge.py Speaker).
    voiceflow_context_variables: bool = True
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    allowed_guilds: frozenset[str] = field(default_factory=frozenset)
    allowed_channels: frozenset[str] = field(default_factory=frozenset)
    allowed_workspaces: frozenset[str] = field(default_factory=frozenset)
    user_rate_limit_per_minute: int = 0  # 0: no limit
    #: ``vf-bridge run`` serves /metrics, /healthz and /readyz here (None: not at all).
    metrics_port: int | None = None
    #: The address METRICS_PORT listens on (every interface by default, as exporters do).
    metrics_host: str = "0.0.0.0"

    @property
    def uses_simulator(self) -> bool:
        return self.voiceflow_api_key is None

    @property
    def discord_enabled(self) -> bool:
        return self.discord_token is not None

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None

    def secrets(self) -> list[str]:
        """Every configured secret value, for redaction and leak tests."""
        found = (
            self.voiceflow_api_key,
            self.discord_token,
            self.slack_bot_token,
            self.slack_app_token,
            self.slack_signing_secret,
        )
        store_password = _password_of(self.state_url)
        return [s.reveal() for s in found if s is not None] + (
            [store_password] if store_password else []
        )

    def __repr__(self) -> str:
        """As the dataclass's, but a password in ``STATE_URL`` (Redis) shows as ``***``."""
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "state_url":
                value = safe_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"


class ConfigErrors(Exception):
    """All configuration problems found at once; each names its variable."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.errors: list[ConfigError] = []

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.env.get(name, "").strip()
        return value or default

    def secret(self, name: str) -> Secret | None:
        value = self.text(name)
        return Secret(value) if value else None

    def url(self, name: str, default: str, schemes: tuple[str, ...]) -> str:
        value = self.text(name, default) or default
        if not _has_valid_address(value):
            self.fail(name, f"{_BAD_ADDRESS}, got {safe_url(value)!r}")
            return default
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            self.fail(name, f"must be a {'/'.join(schemes)} URL, got {safe_url(value)!r}")
            return default
        if parts.username is not None or parts.password is not None:
            # The client sends the token or key as Authorization; URL credentials would clash.
            self.fail(name, f"must not carry a user or password, got {safe_url(value)!r}")
            return default
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = (self.text(name, default) or default).lower()
        if value not in allowed:
            self.fail(name, f"must be one of {', '.join(allowed)}, got {value!r}")
            return default
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.fail(name, f"must be a whole number, got {raw!r}")
            return default
        if not low <= value <= high:
            self.fail(name, f"must be between {low} and {high}, got {value}")
            return default
        return value

    def seconds(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.fail(name, f"must be a number of seconds, got {raw!r}")
            return default
        if not low <= value <= high:
            self.fail(name, f"must be between {low:g} and {high:g} seconds, got {value:g}")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self.fail(name, f"must be true or false, got {raw!r}")
        return default

    def id_set(self, name: str) -> frozenset[str]:
        raw = self.text(name) or ""
        return frozenset(part.strip() for part in raw.split(",") if part.strip())

    def fail(self, name: str, problem: str) -> None:
        self.errors.append(ConfigError(name, problem))


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from ``env``; raise :class:`ConfigErrors` listing every problem."""
    r = _Reader(env)
    key = r.secret("VOICEFLOW_API_KEY")
    project = r.text("VOICEFLOW_PROJECT_ID")
    if key is not None and not _VOICEFLOW_KEY.match(key.reveal()):
        r.fail("VOICEFLOW_API_KEY", "must be a Dialog Manager key shaped VF.DM.<id>.<secret>")
    if key is not None and project is None:
        r.fail("VOICEFLOW_PROJECT_ID", "is required when VOICEFLOW_API_KEY is set")
    if key is None and project is not None:  # not a silent switch to the simulator
        r.fail(
            "VOICEFLOW_API_KEY",
            "is required when VOICEFLOW_PROJECT_ID is set (unset both for the built-in simulator)",
        )
    if project is not None and not _PROJECT_ID.match(project):
        r.fail("VOICEFLOW_PROJECT_ID", "must be the project id from Agent Settings, no / or spaces")
    environment = r.text("VOICEFLOW_ENVIRONMENT", "production") or "production"
    if environment.lower() in _ENVIRONMENT_ALIASES:  # "Production", as the Voiceflow UI shows
        environment = environment.lower()
    elif not _ENVIRONMENT_ID.match(environment):
        r.fail(
            "VOICEFLOW_ENVIRONMENT",
            f"must be production, development or a 24-hex environment id, got {environment!r}",
        )
    slack_bot = r.secret("SLACK_BOT_TOKEN")
    slack_app = r.secret("SLACK_APP_TOKEN")
    signing = r.secret("SLACK_SIGNING_SECRET")
    _check_slack(r, slack_bot, slack_app, signing)
    discord = r.secret("DISCORD_TOKEN")
    if discord is not None and discord.reveal().count(".") != 2:
        r.fail("DISCORD_TOKEN", "does not look like a bot token (three dot-separated parts)")
    shard_count, shard_ids = _discord_shards(r)
    slack_port = r.integer("SLACK_PORT", 3000, 1, 65535)
    slack_http = slack_bot is not None and slack_app is None
    settings = Settings(
        voiceflow_api_key=key,
        voiceflow_project_id=project,
        voiceflow_environment=environment,
        voiceflow_api_url=r.url("VOICEFLOW_API_URL", DEFAULT_VOICEFLOW_API_URL, ("http", "https")),
        voiceflow_idle_timeout_s=r.seconds(
            "VOICEFLOW_IDLE_TIMEOUT_S", DEFAULT_VOICEFLOW_IDLE_TIMEOUT_S, 0.1, 3600.0
        ),
        discord_token=discord,
        discord_api_url=r.url("DISCORD_API_URL", DEFAULT_DISCORD_API_URL, ("http", "https")),
        discord_gateway_url=r.url(
            "DISCORD_GATEWAY_URL", DEFAULT_DISCORD_GATEWAY_URL, ("ws", "wss")
        ),
        discord_shard_count=shard_count,
        discord_shard_ids=shard_ids,
        slack_bot_token=slack_bot,
        slack_app_token=slack_app,
        slack_signing_secret=signing,
        slack_api_url=r.url("SLACK_API_URL", DEFAULT_SLACK_API_URL, ("http", "https")),
        slack_port=slack_port,
        state_url=_state_url(r),
        conversation_scope=r.choice(  # type: ignore[arg-type]
            "CONVERSATION_SCOPE", "channel", ("channel", "user", "channel_user")
        ),
        stream_unit=r.choice("STREAM_UNIT", "word", ("word", "sentence")),  # type: ignore[arg-type]
        stream_static_text=r.flag("STREAM_STATIC_TEXT", False),
        voiceflow_context_variables=r.flag("VOICEFLOW_CONTEXT_VARIABLES", True),
        log_level=r.choice("LOG_LEVEL", "INFO", ("debug", "info", "warning", "error")).upper(),
        log_format=r.choice("LOG_FORMAT", "text", ("text", "json")),  # type: ignore[arg-type]
        allowed_guilds=r.id_set("DISCORD_ALLOWED_GUILDS"),
        allowed_channels=r.id_set("ALLOWED_CHANNELS"),
        allowed_workspaces=r.id_set("SLACK_ALLOWED_WORKSPACES"),
        user_rate_limit_per_minute=r.integer("USER_RATE_LIMIT_PER_MINUTE", 0, 0, 10_000),
        metrics_port=_metrics_port(r, slack_http_port=slack_port if slack_http else None),
        metrics_host=_metrics_host(r),
    )
    if r.errors:
        raise ConfigErrors(r.errors)
    return settings


def _metrics_port(r: _Reader, *, slack_http_port: int | None) -> int | None:
    """METRICS_PORT, which must not be Slack HTTP mode's port (None: Socket Mode or no Slack)."""
    if r.text("METRICS_PORT") is None:
        return None
    port = r.integer("METRICS_PORT", 0, 1, 65535) or None
    if port is not None and port == slack_http_port:
        r.fail("METRICS_PORT", f"must differ from SLACK_PORT ({port}), where Slack's events come")
    return port


def _metrics_host(r: _Reader) -> str:
    """METRICS_HOST: an IP address of this machine to listen on (127.0.0.1: this host only)."""
    raw = r.text("METRICS_HOST")
    if raw is None:
        return Settings.metrics_host
    if r.text("METRICS_PORT") is None:
        r.fail("METRICS_HOST", "is set but METRICS_PORT is not: set both to serve /metrics")
        return Settings.metrics_host
    try:
        return str(ipaddress.ip_address(raw.strip("[]")))
    except ValueError:
        r.fail("METRICS_HOST", f"must be an IP address such as 127.0.0.1 or 0.0.0.0, not {raw!r}")
        return Settings.metrics_host


def _discord_shards(r: _Reader) -> tuple[int | Literal["auto"] | None, tuple[int, ...] | None]:
    """DISCORD_SHARD_COUNT (``auto`` or 1–MAX_SHARDS) and DISCORD_SHARD_IDS (``0-3,8``)."""
    raw_count = r.text("DISCORD_SHARD_COUNT")
    raw_ids = r.text("DISCORD_SHARD_IDS")
    count: int | Literal["auto"] | None = None
    if raw_count is not None and raw_count.lower() == "auto":
        count = "auto"
    elif raw_count is not None and not raw_count.isdigit():
        r.fail("DISCORD_SHARD_COUNT", f"must be auto or a whole number, got {raw_count!r}")
    elif raw_count is not None:
        count = r.integer("DISCORD_SHARD_COUNT", 0, 1, MAX_SHARDS) or None
    if raw_ids is None:
        return count, None
    if not isinstance(count, int):
        r.fail("DISCORD_SHARD_IDS", "needs DISCORD_SHARD_COUNT set to the number of shards in all")
        return count, None
    ids: list[int] = []
    for part in (p.strip() for p in raw_ids.split(",")):
        low, dash, high = (side.strip() for side in part.partition("-"))
        if not low.isdigit() or (dash and not high.isdigit()) or int(high or low) < int(low):
            r.fail("DISCORD_SHARD_IDS", f"must be shard ids and ranges like 0-3,8, got {part!r}")
            return count, None
        if int(high or low) >= count:
            r.fail("DISCORD_SHARD_IDS", f"must be below DISCORD_SHARD_COUNT ({count}), got {part}")
            return count, None
        ids.extend(range(int(low), int(high or low) + 1))
    return count, tuple(sorted(set(ids)))


def _check_slack(
    r: _Reader, bot: Secret | None, app: Secret | None, signing: Secret | None
) -> None:
    if bot is not None and not bot.reveal().startswith("xoxb-"):
        r.fail("SLACK_BOT_TOKEN", "must be a bot token starting with xoxb-")
    if app is not None and not app.reveal().startswith("xapp-"):
        r.fail("SLACK_APP_TOKEN", "must be an app-level token starting with xapp-")
    if bot is not None and app is None and signing is None:
        r.fail("SLACK_SIGNING_SECRET", "is required for HTTP mode (or set SLACK_APP_TOKEN)")
    if bot is None and (app is not None or signing is not None):
        r.fail("SLACK_BOT_TOKEN", "is required when SLACK_APP_TOKEN or SLACK_SIGNING_SECRET is set")


def _state_url(r: _Reader) -> str:
    value = r.text("STATE_URL", DEFAULT_STATE_URL) or DEFAULT_STATE_URL
    if not value.startswith(("sqlite:///", "redis://", "rediss://", "unix://")):
        r.fail(
            "STATE_URL", f"must be sqlite:///PATH or redis://HOST:PORT/DB, got {safe_url(value)!r}"
        )
        return DEFAULT_STATE_URL
    if not _has_valid_address(value):
        r.fail("STATE_URL", f"{_BAD_ADDRESS}, got {safe_url(value)!r}")
        return DEFAULT_STATE_URL
    if value.startswith("sqlite:///") and not value.removeprefix("sqlite:///").strip():
        # SQLite's "" is a throwaway database: every conversation forgotten at each restart
        r.fail("STATE_URL", "sqlite:/// needs a file path, e.g. sqlite:///vf-bridge.db")
        return DEFAULT_STATE_URL
    return value


def _password_of(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _has_valid_address(url: str) -> bool:
    """Whether ``url``'s host and port parse: httpx and redis would raise a traceback later."""
    try:
        _ = urlsplit(url).port  # reading the port is what parses it
    except ValueError:  # an unclosed "[", a port that is not a number in 0-65535
        return False
    return True
