"""Session-wide secret scan: no log line or process output of the whole suite may carry a
token or key the tests configure (SPEC §8 "No secret is ever logged or shown").

Every log record of the test process — our own loggers (``core``, ``bots``, ``vf-bridge``) at
DEBUG, third-party libraries at their default WARNING, as ``core.logs.setup_logging`` caps
them in production — is formatted and checked as it is emitted; what each test printed to
stdout and stderr (pytest's capture), and the outputs of the processes the suite spawns
(``tests/faults/outputs.py``), are checked at the end. A leak fails the session with the
offending lines; ``tests/test_secret_scan.py`` plants leaks to prove it does. The
simulator's public key (``SIMULATOR_API_KEY``) is printed on purpose and is not a secret;
``tests/test_logs.py`` logs its own fake secret on purpose to test the redacting filter.
"""

from __future__ import annotations

import logging

import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.faults import outputs
from tests.faults.invariants import CHECKED

#: Our loggers, watched at every level; libraries keep the root's WARNING (their chatter at
#: lower levels is capped in production too, and at DEBUG it would slow the suite tenfold).
OURS = ("core", "bots", "vf-bridge")


def configured_secrets() -> set[str]:
    from tests.test_cli import KEY
    from tests.test_config import GOOD_KEY
    from tests.test_voiceflow_client import OTHER_KEY

    slack = FakeSlack()
    found = {
        FakeDiscord.token,
        slack.bot_token,
        slack.app_token,
        slack.signing_secret,
        KEY,
        GOOD_KEY,
        OTHER_KEY,
        "bad.token.here",  # tests/e2e/test_discord_lifecycle.py
        "xoxb-wrong-token",  # tests/e2e/test_slack_interactions.py
        "xapp-wrong-token",
    }
    return found | outputs.SECRETS


class _LeakWatch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
        self.secrets: set[str] = set()
        self.records = 0
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        text = self.format(record)
        if any(secret in text for secret in self.secrets | outputs.SECRETS):
            self.leaks.append(text)


_WATCH = _LeakWatch()


def pytest_sessionstart(session: pytest.Session) -> None:
    _WATCH.secrets = configured_secrets()
    logging.getLogger().addHandler(_WATCH)
    for name in OURS:
        logging.getLogger(name).setLevel(logging.DEBUG)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":
        return  # the teardown report carries what every phase of the test printed
    for captured in (report.capstdout, report.capstderr):
        if captured:
            outputs.record(captured)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_WATCH)
    secrets = _WATCH.secrets | outputs.SECRETS
    leaks = _WATCH.leaks + [o for o in outputs.SEEN if any(s in o for s in secrets)]
    if leaks:
        session.config.stash[_LEAKS] = leaks
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_LEAKS = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    leaks = terminalreporter.config.stash.get(_LEAKS, [])
    if leaks:
        terminalreporter.section("SECRET LEAK", red=True)
        terminalreporter.line(
            f"{len(leaks)} log line(s)/output(s) contain a configured token or key:", red=True
        )
        for leak in leaks[:20]:
            terminalreporter.line("  " + leak[:300].replace("\n", "\\n"), red=True)
    terminalreporter.line(
        f"secret scan: {_WATCH.records} log records and {len(outputs.SEEN)} process outputs "
        f"checked for {len(_WATCH.secrets | outputs.SECRETS)} secrets; {len(leaks)} leak(s)"
    )
    if CHECKED.faults:
        terminalreporter.line(
            f"fault suite: {len(CHECKED.faults)} faults injected, {CHECKED.answers} answers "
            f"and {CHECKED.chars:,} characters checked end to end"
        )
