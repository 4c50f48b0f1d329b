"""The JT/T 808 gateway process: terminals connect over TCP on ``jt808.host:port``; their fixes go to Kafka.

One event loop serves every connection (:mod:`engine.jt808.gateway.connection`), one Kafka producer and
partition batcher serve them all (:mod:`engine.jt808.gateway.ingest`). A process holds at most
``jt808.max_connections`` terminals; a connection beyond is closed at once (``refused``). The port is opened
with SO_REUSEPORT (``jt808.reuse_port``), so several gateway processes on one box share it and the kernel spreads
new connections among them: a process may have 20,000 open files here, so 20,000 terminals need two. Auth codes
are stateless (:mod:`engine.jt808.gateway.registry`), so a terminal may reconnect to any of them.

At start the gateway creates the topics it is given, as the bridge and workers do (whoever starts first), then
listens. On SIGTERM it stops accepting and reading, sends what it holds to Kafka, waits up to
``jt808.shutdown_timeout_s`` for Kafka to take it (and writes the replies that waited on it), then closes every
connection; terminals reconnect (to another process) and send again what was not answered. The registry file
is read once, at start: a changed file takes a restart (one process at a time; the others keep the port).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket

from prometheus_client import CollectorRegistry

from engine.core.clock import Clock, SystemClock
from engine.core.errors import ConfigError
from engine.core.metrics import Jt808Metrics
from engine.jt808.gateway.config import Jt808Config
from engine.jt808.gateway.connection import Connection
from engine.jt808.gateway.ingest import Ingest
from engine.jt808.gateway.registry import Admission
from engine.jt808.gateway.session import Session
from engine.kafka.admin import TopicSpecs
from engine.kafka.topics import ensure_topics
from engine.web.metrics_server import MetricsServer

log = logging.getLogger(__name__)

BACKLOG = 4096          # connections the kernel queues before they are accepted (capped by somaxconn)
SPARE_FILES = 64        # open files beside the connections: Kafka, HTTP, logs
CLOSE_WAIT_S = 2.0      # at shutdown, how long closed connections may take to send their last replies


class Gateway:
    """One gateway process: ``await run(stop)`` serves terminals until ``stop`` is set."""

    def __init__(self, settings: Jt808Config, *, topic_specs: TopicSpecs, clock: Clock | None = None,
                 registry: CollectorRegistry | None = None, admission: Admission | None = None):
        self.settings = settings
        self.topic_specs = topic_specs  # it may start before any worker: it creates every topic, as they do
        self.clock = clock or SystemClock()
        self.registry = registry or CollectorRegistry()
        self.metrics = Jt808Metrics(self.registry)
        self.admission = admission or Admission.from_settings(settings.jt808)  # a bad registry stops us here
        self.ingest = Ingest(settings, self.metrics)
        self.connections: set[Connection] = set()
        self._accepting = False
        self._stopping = False
        self._server: asyncio.Server | None = None
        self.max_connections = settings.jt808.max_connections  # lowered to the open-file limit at start

    @property
    def port(self) -> int:
        """The port listened on (``jt808.port``), once :meth:`run` listens."""
        assert self._server is not None and self._server.sockets, "not listening"
        return int(self._server.sockets[0].getsockname()[1])

    def readiness(self) -> tuple[str, str]:
        """``("ready", "")`` while terminals are answered, else a status and why not (``GET /health``)."""
        s = self.settings
        if self._stopping:
            return "stopping", "the gateway is shutting down"
        if not self._accepting:
            return "starting", f"connecting to Kafka at {s.kafka.bootstrap}"
        if not self.ingest.health.up:
            return "kafka_down", (f"Kafka at {s.kafka.bootstrap} does not take records; {self.ingest.pending} "
                                  "frames wait for their replies")
        return "ready", ""

    async def run(self, stop: asyncio.Event, *, serve_metrics: bool = True) -> None:
        """Serve terminals until ``stop`` is set; with ``serve_metrics``, ``/metrics`` and ``/health`` meanwhile."""
        if not serve_metrics:
            return await self._serve(stop)
        http = MetricsServer(self.registry, self.readiness, self.settings.web.host, self.settings.jt808.metrics_port,
                             who="jt808", setting="jt808.metrics_port")
        await http.start()
        try:
            await self._serve(stop)
        finally:
            await http.stop()

    async def _serve(self, stop: asyncio.Event) -> None:
        s, cfg = self.settings, self.settings.jt808
        if self.admission.is_dev_key:
            log.warning("jt808: jt808.hmac_key is not set, using the built-in development key; set "
                        "CITYWATCH_JT808__HMAC_KEY (the same on every gateway process) before real terminals connect")
        self.max_connections = self._connection_limit()
        await asyncio.to_thread(ensure_topics, s.kafka, self.topic_specs)
        await self.ingest.start()
        try:
            try:
                self._server = await asyncio.start_server(self._client, cfg.host, cfg.port, backlog=BACKLOG,
                                                          reuse_port=cfg.reuse_port)
            except OSError as exc:
                raise ConfigError(f"jt808.port: cannot listen on {cfg.host}:{cfg.port} ({exc.strerror or exc}); set "
                                  "another port, stop what uses it, or set jt808.reuse_port to share it") from exc
            self._accepting = True
            mode = "open registration" if cfg.open_registration else "registry"
            log.info("jt808: listening on %s:%d (%s, %d terminals listed) -> kafka %s topic %s (%d partitions); at "
                     "most %d connections", cfg.host, self.port, mode, len(self.admission.terminals),
                     s.kafka.bootstrap, s.kafka.topics.fixes, self.ingest.partitions, self.max_connections)
            await stop.wait()
        finally:
            await self._shutdown()

    def _connection_limit(self) -> int:
        """``jt808.max_connections``, or fewer when this process may not open that many files: beyond its limit
        the kernel would refuse accepting (and asyncio pause the server), here they are refused and counted."""
        wanted = self.settings.jt808.max_connections
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY or soft - SPARE_FILES >= wanted:
            return wanted
        limit = max(1, soft - SPARE_FILES)
        log.info("jt808: this process may open %d files, so it holds %d terminals, not jt808.max_connections "
                    "(%d): run another gateway process on the same port (jt808.reuse_port) for the rest", soft, limit,
                    wanted)
        return limit

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cfg = self.settings.jt808
        if not self._accepting or len(self.connections) >= self.max_connections:
            self.metrics.connections.labels("refused").inc()
            writer.transport.abort()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:  # bound the kernel's share too, so a stalled client is found by its unsent bytes
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, cfg.write_buffer_bytes)
        conn = Connection(Session(self.settings, self.admission, self.metrics, self.clock), reader, writer,
                          self.ingest, self.metrics, idle_timeout_s=cfg.idle_timeout_s,
                          max_pending=cfg.max_pending_replies, write_buffer_bytes=cfg.write_buffer_bytes,
                          on_closed=self._closed)
        conn.task = asyncio.current_task()
        self.connections.add(conn)
        self.metrics.connections.labels("accepted").inc()
        self.metrics.connections_open.set(len(self.connections))
        await conn.serve()

    def _closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.metrics.connections_open.set(len(self.connections))

    async def _shutdown(self) -> None:
        """Stop accepting and reading, let Kafka take what is held and its replies go out, then close."""
        self._stopping, self._accepting = True, False
        timeout = self.settings.jt808.shutdown_timeout_s
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.stop()
        held = self.ingest.pending
        if self.ingest.started:
            self.ingest.flush()
            done = await self.ingest.wait_durable(timeout)
            if not done:
                log.warning("jt808: stopping; %d of %d frames were not taken by Kafka in %.0f s and stay unanswered "
                            "(their terminals send them again)", self.ingest.pending, held, timeout)
        tasks = {c.task: c for c in self.connections if c.task is not None}
        for conn in list(self.connections):
            conn.close("closed_shutdown")
        if tasks:  # their last replies go out; a client that does not take them is cut off
            _, stuck = await asyncio.wait(tasks, timeout=CLOSE_WAIT_S)
            for task in stuck:
                tasks[task].writer.transport.abort()
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
        await self.ingest.stop(timeout)
        log.info("jt808: stopped")


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft limit of open files towards ``wanted`` (up to the hard limit); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def run_gateway(settings: Jt808Config, *, topic_specs: TopicSpecs) -> int:
    """``citywatch jt808``: the gateway until SIGINT or SIGTERM; the exit code."""
    raise_open_files(settings.jt808.max_connections + SPARE_FILES)
    gateway = Gateway(settings, topic_specs=topic_specs)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await gateway.run(stop)

    asyncio.run(main())
    return 0
