"""The HTTP server of a process that is not a worker (the bridge, the JT/T 808 gateway): metrics and health.

* ``GET /metrics`` -> the process's Prometheus registry, in the text format (OpenMetrics when the
  ``Accept`` header asks for it), as ``prometheus_client`` serves it.
* ``GET /health`` -> ``200 {"status": "ready"}`` while the process passes fixes on; else ``503 {"status":
  ..., "why": ...}`` (``status`` from its ``readiness``: e.g. ``starting``, ``mqtt_disconnected``,
  ``kafka_down``, ``stopping``), so a load balancer stops sending work to one that cannot do it.

Both public: Prometheus and load balancers call them without a key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from engine.core.errors import ConfigError

log = logging.getLogger(__name__)

#: ``(status, why)``: ``("ready", "")`` when the process passes fixes on, else a short status and the reason.
Readiness = Callable[[], tuple[str, str]]


class MetricsServer:
    """``/metrics`` and ``/health`` on ``host:port``: :meth:`start`, then :meth:`stop` when the process stops.

    ``who`` names the process in its log line; ``setting`` is the setting that holds ``port``, named when the
    port cannot be listened on.
    """

    def __init__(self, registry: CollectorRegistry, readiness: Readiness, host: str, port: int, *, who: str,
                 setting: str):
        self.registry, self.readiness, self.host, self.port = registry, readiness, host, port
        self.who, self.setting = who, setting
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
            raise ConfigError(f"{self.setting}: cannot listen on {self.host}:{self.port} "
                              f"({exc.strerror or exc}); set another port or stop what uses it") from exc
        log.info("%s: metrics and health on http://%s:%d/metrics, /health", self.who, self.host, self.port)

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))  # OpenMetrics if asked for
        return web.Response(body=encode(self.registry), headers={"Content-Type": content_type})

    async def _health(self, request: web.Request) -> web.Response:
        status, why = self.readiness()
        if status == "ready":
            return web.json_response({"status": status})
        return web.json_response({"status": status, "why": why}, status=503)
