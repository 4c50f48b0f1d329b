"""Server push: one delta per tick, encoded once, queued to every connected browser.

Each browser has a bounded queue (``onemap.client_queue`` messages). A
browser that falls that far behind is not allowed to grow the server's
memory: its queue is emptied and it is sent a fresh snapshot instead
(counted in ``citywatch_onemap_client_resyncs_total``). Messages are
server-sent events: ``event: snapshot`` / ``event: delta`` with one JSON line
of data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from engine.core.metrics import WorkerMetrics
from engine.onemap.view import OneMapView

log = logging.getLogger(__name__)

RESYNC = b"resync"  # queue marker: send a snapshot next
RETRY_MS = 2000


def sse(event: str, data: Any) -> bytes:
    """One server-sent event; ``data`` is JSON-encoded on one line."""
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    return b"event: " + event.encode() + b"\ndata: " + body + b"\n\n"


class Client:
    __slots__ = ("queue", "resyncs")

    def __init__(self, size: int):
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=size + 1)  # +1: room for a marker
        self.resyncs = 0


class Hub:
    """Browsers subscribed to the view's deltas."""

    def __init__(self, view: OneMapView, metrics: WorkerMetrics | None = None):
        self.view, self.metrics = view, metrics
        self.cfg = view.cfg
        self.clients: set[Client] = set()
        self.closed = False

    def subscribe(self) -> Client | None:
        """A new browser's queue, or ``None`` when ``max_clients`` are connected (or the hub is closed)."""
        if self.closed or len(self.clients) >= self.cfg.max_clients:
            return None
        c = Client(self.cfg.client_queue)
        self.clients.add(c)
        self._gauge()
        return c

    def unsubscribe(self, client: Client) -> None:
        self.clients.discard(client)
        self._gauge()

    def snapshot_message(self) -> bytes:
        msg = sse("snapshot", self.view.snapshot())
        self._count("snapshot", msg)
        return msg

    def tick(self) -> bytes | None:
        """Build the delta since the last tick and queue it to every browser; returns the message."""
        started = time.process_time()
        delta = self.view.delta()
        msg = None
        if delta is not None:
            msg = sse("delta", delta)
            for c in list(self.clients):
                self._offer(c, msg)
        if self.metrics is not None:
            self.metrics.onemap_tick_seconds.observe(time.process_time() - started)
            self.metrics.onemap_vehicles.set(self.view.vehicle_count())
        return msg

    def _offer(self, c: Client, msg: bytes) -> None:
        if c.queue.qsize() >= self.cfg.client_queue:
            while not c.queue.empty():  # too far behind: drop its backlog, resend everything once
                c.queue.get_nowait()
            c.queue.put_nowait(RESYNC)
            c.resyncs += 1
            if self.metrics is not None:
                self.metrics.onemap_client_resyncs.inc()
            return
        c.queue.put_nowait(msg)

    def sent(self, msg: bytes) -> None:
        """Count a delta or heartbeat written to one browser."""
        self._count("delta" if msg.startswith(b"event: delta") else "other", msg)

    async def run(self) -> None:
        """Tick every ``push_interval_ms`` until cancelled."""
        interval = self.cfg.push_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a bug in one tick must not stop the page for good
                log.exception("onemap: building the delta failed")

    async def close(self, *_: Any) -> None:
        """Make every open stream end (worker shutdown): the web server then need not wait for them."""
        self.closed = True
        for c in list(self.clients):
            while not c.queue.empty():
                c.queue.get_nowait()
            c.queue.put_nowait(None)

    def _count(self, kind: str, msg: bytes) -> None:
        if self.metrics is not None:
            self.metrics.onemap_messages.labels(kind).inc()
            self.metrics.onemap_bytes.inc(len(msg))

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.onemap_clients.set(len(self.clients))
