"""The redacting log filter removes secrets from messages, arguments and tracebacks."""

from __future__ import annotations

import logging

from core.logs import REDACTED, RedactingFilter

SECRET = "xoxb-very-secret-token"


def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, exc_info)


def test_secret_in_arguments_is_redacted() -> None:
    rec = record("calling with %s", SECRET)
    assert RedactingFilter([SECRET]).filter(rec)
    assert SECRET not in rec.getMessage() and REDACTED in rec.getMessage()


def test_traceback_with_a_secret_is_withheld() -> None:
    try:
        raise RuntimeError(f"token {SECRET}")
    except RuntimeError as exc:
        rec = record("failed", exc=exc)
    RedactingFilter([SECRET]).filter(rec)
    assert rec.exc_info is None and "withheld" in rec.getMessage()


def test_clean_records_are_untouched() -> None:
    rec = record("hello %s", "world")
    RedactingFilter([SECRET]).filter(rec)
    assert rec.getMessage() == "hello world" and rec.args == ("world",)
