"""The gateway's HTTP server on ``jt808.metrics_port`` (host ``web.host``): metrics and health, no data.

* ``GET /metrics`` -> the gateway's Prometheus registry (OpenMetrics when the ``Accept`` header asks for it).
* ``GET /health`` -> ``200 {"status": "ready"}`` while the gateway listens and Kafka takes its records; else
  ``503 {"status": ..., "why": ...}`` (``starting``, ``kafka_down``, ``stopping``): a load balancer in front of
  several gateway processes stops sending terminals to one that cannot answer them.

The same as the bridge's (:mod:`engine.telemetry.bridge_http`), which is internal to the telemetry domain and
names the bridge's settings in its errors; this one names the gateway's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from engine.core.errors import ConfigError

log = logging.getLogger(__name__)

#: ``(status, why)``: ``("ready", "")`` when the gateway answers terminals, else a short status and the reason.
Readiness = Callable[[], tuple[str, str]]


class GatewayHttp:
    """``/metrics`` and ``/health`` on ``host:port``: :meth:`start`, then :meth:`stop` when the gateway stops."""

    def __init__(self, registry: CollectorRegistry, readiness: Readiness, host: str, port: int):
        self.registry, self.readiness, self.host, self.port = registry, readiness, host, port
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(f"jt808.metrics_port: cannot listen on {self.host}:{self.port} "
                              f"({exc.strerror or exc}); set another port or stop what uses it") from exc
        log.info("jt808: metrics and health on http://%s:%d/metrics, /health", self.host, self.port)

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(self.registry), headers={"Content-Type": content_type})

    async def _health(self, request: web.Request) -> web.Response:
        status, why = self.readiness()
        if status == "ready":
            return web.json_response({"status": status})
        return web.json_response({"status": status, "why": why}, status=503)
