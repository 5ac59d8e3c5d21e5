"""The one error tree of voiceflow-bridge.

    BridgeError
    ├── ConfigError                 bad configuration; names the variable
    ├── VoiceflowError              anything from the Voiceflow runtime
    │   ├── VoiceflowAuthError      401: bad key, or key and project do not match
    │   ├── VoiceflowNotFoundError  404: environment missing / not published
    │   ├── VoiceflowRequestError   400 and other 4xx: the request was refused
    │   ├── VoiceflowUnavailableError  429/5xx/connect errors after every retry
    │   └── StreamInterruptedError  the stream broke after it started (EOF without
    │                               `end`, dropped connection, idle timeout)
    └── PlatformError               anything from Discord or Slack, mapped by the adapter
        ├── MessageGoneError        the message we edit no longer exists
        ├── MessageTooLongError     the platform refused the length
        ├── PlatformRateLimitedError  429 we could not avoid; carries retry_after
        ├── PlatformUncertainError  sent, but no answer came: it may have been carried out
        ├── StreamExpiredError      Slack native stream no longer accepts appends
        └── PlatformPermissionError missing permission / scope

Library errors (httpx, discord, slack_sdk) are translated into these exactly once, at the
client or adapter boundary.
"""

from __future__ import annotations

__all__ = [
    "BridgeError",
    "ConfigError",
    "MessageGoneError",
    "MessageTooLongError",
    "PlatformError",
    "PlatformPermissionError",
    "PlatformRateLimitedError",
    "PlatformUncertainError",
    "StreamExpiredError",
    "StreamInterruptedError",
    "VoiceflowAuthError",
    "VoiceflowError",
    "VoiceflowNotFoundError",
    "VoiceflowRequestError",
    "VoiceflowUnavailableError",
]


class BridgeError(Exception):
    """Base of every error raised on purpose by voiceflow-bridge."""


class ConfigError(BridgeError):
    """A configuration variable is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class VoiceflowError(BridgeError):
    """The Voiceflow runtime refused or failed a request."""

    #: A short text safe to show to the end user in the conversation.
    user_message = "The assistant is unavailable right now. Please try again in a moment."

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class VoiceflowAuthError(VoiceflowError):
    user_message = "The assistant is not configured correctly (authorization failed)."


class VoiceflowNotFoundError(VoiceflowError):
    user_message = "The assistant is not published yet."


class VoiceflowRequestError(VoiceflowError):
    user_message = "The assistant could not handle that request."


class VoiceflowUnavailableError(VoiceflowError):
    pass


class StreamInterruptedError(VoiceflowError):
    user_message = "The answer was interrupted."


class PlatformError(BridgeError):
    """Discord or Slack refused or failed a request."""


class MessageGoneError(PlatformError):
    pass


class PlatformUncertainError(PlatformError):
    """The request went out but no answer came (a timeout, a dropped connection): it may have
    been carried out, so a write that is not idempotent (a post) must not be sent again."""


class MessageTooLongError(PlatformError):
    pass


class PlatformRateLimitedError(PlatformError):
    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StreamExpiredError(PlatformError):
    pass


class PlatformPermissionError(PlatformError):
    pass
