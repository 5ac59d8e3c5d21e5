"""What an operator watches: Prometheus metrics and the platforms' connection state.

One :class:`Metrics` per bridge (its own registry, so tests and several bridges in one process
never share counts). The bridge counts turns; adapters report platform responses and whether
they are connected; ``vf-bridge run`` serves it all on ``METRICS_PORT`` (core/ops_server.py).

Series (every one labelled by ``platform``: ``discord``, ``slack`` or ``console``):

* ``vfbridge_turns_total{outcome}``: Voiceflow turns by how they ended (``complete``,
  ``interrupted``, ``stopped``, ``error``);
* ``vfbridge_turn_seconds``: a turn's whole duration, request to final write;
* ``vfbridge_first_output_seconds``: request to Voiceflow → its first trace with output,
  which the placeholder or message is written for next (the platform's own time to show it
  is not in it): how long Voiceflow keeps the user waiting;
* ``vfbridge_turns_in_progress``: turns running now;
* ``vfbridge_platform_responses_total{result}``: the platform's answers, ``ok``,
  ``rate_limited`` (a 429: should stay near 0) or ``error`` (an error answer, or none) —
  on Discord every REST response, on Slack every Web API call of the bridge's own (not
  slack-bolt's connection calls);
* ``vfbridge_connected``: 1 while this process serves the platform (it holds the lease and
  its connection is up), else 0 — a standby process reports 0. Discord reports each gateway
  connection dropping and coming back; Slack Socket Mode is asked at each scrape (slack-sdk
  watches and reconnects it by itself), Slack HTTP mode is connected while it listens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

__all__ = ["CONTENT_TYPE", "Metrics", "ResponseResult"]

#: What :meth:`Metrics.render` writes: Prometheus text format 0.0.4.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
#: Seconds: first output is expected within a second or two, a turn within a minute.
_FIRST_OUTPUT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
_TURN_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)

ResponseResult = Literal["ok", "rate_limited", "error"]
Check = Callable[[], Awaitable[bool]]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._turns = Counter(
            "vfbridge_turns", "Voiceflow turns by outcome", ["platform", "outcome"], registry=r
        )
        self._turn_seconds = Histogram(
            "vfbridge_turn_seconds",
            "A turn's duration, request to final write",
            ["platform"],
            buckets=_TURN_BUCKETS,
            registry=r,
        )
        self._first_output = Histogram(
            "vfbridge_first_output_seconds",
            "Request to Voiceflow to its first trace with output",
            ["platform"],
            buckets=_FIRST_OUTPUT_BUCKETS,
            registry=r,
        )
        self._in_progress = Gauge(
            "vfbridge_turns_in_progress", "Turns running now", ["platform"], registry=r
        )
        self._responses = Counter(
            "vfbridge_platform_responses",
            "Platform API responses: ok, rate_limited (429) or error",
            ["platform", "result"],
            registry=r,
        )
        self._connected = Gauge(
            "vfbridge_connected",
            "1 while this process serves the platform (lease held, connection up)",
            ["platform"],
            registry=r,
        )
        self._reported: dict[str, bool] = {}  # what each adapter said last
        self._checks: dict[str, Check] = {}  # asked at each scrape, while reported connected
        self._live: dict[str, bool] = {}  # what they answered last

    # -- turns (core/bridge.py) ----------------------------------------------------------
    def turn_started(self, platform: str) -> None:
        self._in_progress.labels(platform).inc()

    def turn_ended(
        self, platform: str, outcome: str, seconds: float, first_output_s: float | None
    ) -> None:
        self._in_progress.labels(platform).dec()
        self._turns.labels(platform, outcome).inc()
        self._turn_seconds.labels(platform).observe(seconds)
        if first_output_s is not None:
            self._first_output.labels(platform).observe(first_output_s)

    # -- platforms (adapters) ------------------------------------------------------------
    def response(self, platform: str, result: ResponseResult) -> None:
        self._responses.labels(platform, result).inc()

    def expect_platform(self, platform: str) -> None:
        """``platform`` is configured: not ready until it reports itself connected."""
        self._reported.setdefault(platform, False)
        self._update(platform)

    def set_connected(self, platform: str, connected: bool, *, check: Check | None = None) -> None:
        """What the adapter knows; ``check``: a live question (a library's own ``is_connected``)
        asked at every scrape while it says connected, for a link it cannot watch itself."""
        self._reported[platform] = connected
        if check is not None:
            self._checks[platform] = check
        self._live.pop(platform, None)
        self._update(platform)

    async def refresh(self) -> None:
        """Ask the live checks (before /metrics, /healthz and /readyz answer)."""
        for platform, check in list(self._checks.items()):
            if not self._reported.get(platform):
                continue
            try:
                self._live[platform] = bool(await check())
            except Exception:  # a check that fails says "not connected", never breaks a probe
                self._live[platform] = False
            self._update(platform)

    def platforms(self) -> dict[str, bool]:
        """Each configured platform, and whether this process serves it now."""
        return {platform: self._connected_now(platform) for platform in self._reported}

    def ready(self) -> bool:
        """Whether every configured platform is connected here (False with none)."""
        platforms = self.platforms()
        return bool(platforms) and all(platforms.values())

    def _connected_now(self, platform: str) -> bool:
        return self._reported.get(platform, False) and self._live.get(platform, True)

    def _update(self, platform: str) -> None:
        self._connected.labels(platform).set(1 if self._connected_now(platform) else 0)

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)
