"""The operator's port (``METRICS_PORT``): Prometheus metrics, liveness and readiness.

``vf-bridge run`` serves, while it runs:

* ``GET /metrics``: every series of :class:`core.metrics.Metrics`, Prometheus text format;
* ``GET /healthz``: 200 while the process runs, with each configured platform's state as
  JSON (``{"discord": "connected", "slack": "standby"}``) — a liveness probe;
* ``GET /readyz``: 200 when every configured platform is connected here, else 503 with the
  same JSON — a readiness probe: a standby process (core/lease.py) is alive but not ready.

Nothing here reveals a token, a key or a user's text.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from core.errors import ConfigError
from core.metrics import CONTENT_TYPE, Metrics

__all__ = ["serve_ops"]

log = logging.getLogger(__name__)


def _states(metrics: Metrics) -> dict[str, str]:
    return {
        platform: "connected" if connected else "standby"
        for platform, connected in metrics.platforms().items()
    }


def ops_app(metrics: Metrics) -> web.Application:
    async def get_metrics(_request: web.Request) -> web.Response:
        await metrics.refresh()
        body = metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def healthz(_request: web.Request) -> web.Response:
        await metrics.refresh()
        return web.json_response(_states(metrics))

    async def readyz(_request: web.Request) -> web.Response:
        await metrics.refresh()
        return web.json_response(_states(metrics), status=200 if metrics.ready() else 503)

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


@asynccontextmanager
async def serve_ops(metrics: Metrics, port: int, host: str = "0.0.0.0") -> AsyncIterator[int]:
    """Serve the operator's endpoints on ``host:port`` (0: any free port) while inside;
    yields the port it listens on."""
    runner = web.AppRunner(ops_app(metrics), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:  # the port is taken, or not ours to bind
            raise ConfigError(
                "METRICS_PORT", f"cannot listen on {_at(host, port)} ({exc})"
            ) from exc
        bound = int(runner.addresses[0][1])
        log.info("metrics at http://%s/metrics (health: /healthz, /readyz)", _at(host, bound))
        yield bound
    finally:
        await runner.cleanup()


def _at(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
