"""Everything the suite's processes printed, for the secret scan in ``tests/conftest.py``.

Tests that spawn processes hand their output to :func:`record`; the conftest adds every log
record of the test process itself.
"""

from __future__ import annotations

SEEN: list[str] = []
#: Secrets some test configured (beyond the fakes' well-known ones).
SECRETS: set[str] = set()


def record(text: str) -> None:
    SEEN.append(text)


def uses_secret(value: str) -> str:
    """Register a secret a test configures; returns it."""
    SECRETS.add(value)
    return value
