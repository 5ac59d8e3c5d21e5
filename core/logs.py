"""Logging setup: a text or a JSON format, and a filter that redacts every configured secret.

``LOG_FORMAT=json`` writes one JSON object per line (``time``, ``level``, ``logger``,
``message``, and ``exception`` with the traceback when there is one), for log pipelines that
index fields (Loki, Datadog, CloudWatch); ``text`` (the default) is for people.

Nothing should ever log a secret in the first place; the filter is the second line of
defence (e.g. a library that logs a URL or a header).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

__all__ = ["REDACTED", "JsonFormatter", "RedactingFilter", "setup_logging"]

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


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, secrets: Iterable[str], *, json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(_FORMAT))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter below WARNING is noise for operators.
    for name in ("discord", "slack_bolt", "slack_sdk", "httpx", "aiohttp.access", "aiosqlite"):
        logging.getLogger(name).setLevel(max(logging.getLevelName(level), logging.WARNING))
