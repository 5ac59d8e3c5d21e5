"""Logging setup: one format, and a filter that redacts every configured secret.

Nothing should ever log a secret in the first place; the filter is the second line of
defence (e.g. a library that logs a URL or a header).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

__all__ = ["REDACTED", "RedactingFilter", "setup_logging"]

REDACTED = "[redacted]"
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, REDACTED)
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if any(s in text for s in self._secrets):
                record.exc_info = None
                record.exc_text = None
                redacted += " (traceback withheld: it contained a secret)"
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str, secrets: Iterable[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter below WARNING is noise for operators.
    for name in ("discord", "slack_bolt", "slack_sdk", "httpx", "aiohttp.access", "aiosqlite"):
        logging.getLogger(name).setLevel(max(logging.getLevelName(level), logging.WARNING))
