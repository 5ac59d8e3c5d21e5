"""The redacting log filter removes secrets from messages, arguments and tracebacks."""

from __future__ import annotations

import io
import json
import logging

from core.logs import REDACTED, JsonFormatter, RedactingFilter

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


def test_json_lines_carry_the_fields_redacted_and_one_record_per_line() -> None:
    """LOG_FORMAT=json: what a log pipeline indexes; the redaction applies as for text (the
    handler as setup_logging builds it, on a logger of its own: global logging stays as is)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter([SECRET]))
    logger = logging.getLogger("core.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("two\nlines with %s", SECRET)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("failed — café")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["logger"] == "core.test.json"
    assert first["message"] == f"two\nlines with {REDACTED}"
    assert first["time"].endswith("+00:00") and "exception" not in first
    assert second["message"] == "failed — café" and "RuntimeError: boom" in second["exception"]
    assert SECRET not in "".join(lines)
