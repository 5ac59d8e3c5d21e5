"""The redacting log filter removes secrets from messages, arguments and tracebacks."""

from __future__ import annotations

import json
import logging

import pytest

from core.logs import REDACTED, RedactingFilter, setup_logging

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


def test_json_lines_carry_the_fields_redacted_and_one_record_per_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """LOG_FORMAT=json: what a log pipeline indexes; the redaction applies as for text."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO", [SECRET], json_lines=True)
        logging.getLogger("core.test").info("two\nlines with %s", SECRET)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("core.test").exception("failed — café")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "core.test"
    assert first["message"] == f"two\nlines with {REDACTED}"
    assert first["time"].endswith("+00:00") and "exception" not in first
    assert second["message"] == "failed — café" and "RuntimeError: boom" in second["exception"]
    assert SECRET not in "".join(lines)
