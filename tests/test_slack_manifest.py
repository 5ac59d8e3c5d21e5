"""The Slack manifests grant exactly the scopes `vf-bridge check` requires and the optional
ones, in both modes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bots.slack.check import OPTIONAL_BOT_SCOPES, REQUIRED_BOT_SCOPES

ROOT = Path(__file__).resolve().parent.parent


def bot_scopes(manifest: str) -> set[str]:
    block = manifest.split("    bot:\n", 1)[1].split("settings:", 1)[0]
    return set(re.findall(r"^\s+- ([a-z_]+:[a-z_]+|commands)\s*$", block, re.MULTILINE))


@pytest.mark.parametrize("name", ["slack-manifest.yml", "slack-manifest-http.yml"])
def test_manifest_scopes_are_exactly_the_required_and_optional_ones(name: str) -> None:
    manifest = (ROOT / name).read_text()
    assert bot_scopes(manifest) == REQUIRED_BOT_SCOPES | OPTIONAL_BOT_SCOPES
    for event in (
        "app_home_opened",
        "app_mention",
        "message.im",
        "message.channels",
        "message.groups",
    ):
        assert f"- {event}\n" in manifest
    assert "command: /reset" in manifest and "is_enabled: true" in manifest
