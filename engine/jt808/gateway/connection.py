"""One terminal's TCP connection: its read loop, its replies and the bounds it lives within.

Every bound is per connection, so one terminal can only hurt itself:

* idle: no whole frame for ``3 x jt808.heartbeat_s`` closes it (``closed_idle``), however many stray bytes came;
* pending: with ``jt808.max_pending_replies`` frames waiting for Kafka it is not read until replies go out
  (its socket fills, the terminal's TCP stack waits); Kafka being slow stalls each connection at its own bound,
  never the gateway;
* slow: replies are written without waiting (one event loop serves every terminal); a client whose unsent
  replies pass ``jt808.write_buffer_bytes`` does not read them and is cut off (``closed_slow``). The kernel's
  send buffer of the socket is set to the same size (SO_SNDBUF), so at most a few times that waits per
  connection, and a stalled client is found after kilobytes, not after megabytes the kernel would queue;
* bad frames: the session closes after ``jt808.max_bad_frames`` in a row (``closed_bad_frames``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from engine.core.metrics import Jt808Metrics
from engine.jt808.gateway.ingest import Ingest
from engine.jt808.gateway.session import Outcome, Session

log = logging.getLogger(__name__)

READ_BYTES = 65536


class Connection:
    """``serve()`` reads until the terminal goes, is closed, or the gateway stops."""

    def __init__(self, session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 ingest: Ingest, metrics: Jt808Metrics, *, idle_timeout_s: float, max_pending: int,
                 write_buffer_bytes: int, on_closed: Callable[[Connection], None]):
        self.session, self.reader, self.writer, self.ingest, self.metrics = session, reader, writer, ingest, metrics
        self.idle_timeout_s, self.max_pending, self.write_buffer_bytes = idle_timeout_s, max_pending, write_buffer_bytes
        self.on_closed = on_closed
        self.pending = 0                # frames whose records Kafka has not yet acknowledged
        self.closed = ""                # why, once closed
        self.stopping = False           # the gateway stops: read no more
        self.task: asyncio.Task[None] | None = None
        self._room = asyncio.Event()
        self._room.set()
        self._loop = asyncio.get_running_loop()
        self._last_frame = self._loop.time()

    async def serve(self) -> None:
        reason = "closed_peer"
        try:
            while not self.closed:
                try:  # idle counts from the last whole frame, so trickling bytes do not hold a connection
                    async with asyncio.timeout_at(self._last_frame + self.idle_timeout_s):
                        data = await self.reader.read(READ_BYTES)
                except TimeoutError:
                    reason = "closed_idle"
                    break
                if not data or self.stopping:
                    break
                await self._received(data)
        except (ConnectionError, OSError):
            pass
        except Exception:  # noqa: BLE001 - a bug in one connection must not stop the others
            log.exception("jt808: the connection of %s failed", self.session.who)
            reason = "closed_error"
        finally:
            self.close("closed_shutdown" if self.stopping else reason)

    async def _received(self, data: bytes) -> None:
        """Handle the frames of one read in order; at the pending bound, wait for replies before the next."""
        started = self._loop.time()
        now_replies: list[bytes] = []
        for item in self.session.split(data):
            if self.pending >= self.max_pending:
                self.send(now_replies, started)
                now_replies = []
                self.metrics.backpressure.inc()
                self._room.clear()
                await self._room.wait()
            if self.closed or self.stopping:
                return
            self._last_frame = self._loop.time()
            outcome = self.session.take(item)
            if outcome.reply is not None:
                now_replies.append(outcome.reply)
            if outcome.records or outcome.durable_reply is not None:
                self._submit(outcome, started)
            if outcome.close:
                self.send(now_replies, started)
                self.close(f"closed_{outcome.close}")
                return
        self.send(now_replies, started)

    def _submit(self, outcome: Outcome, started: float) -> None:
        reply = outcome.durable_reply
        self.pending += 1

        def durable() -> None:
            self.pending -= 1
            if self.pending < self.max_pending:
                self._room.set()
            if reply is not None:
                self.send([reply], started)

        self.ingest.submit(outcome.fixes, outcome.rejections, durable)

    def send(self, replies: list[bytes], started: float) -> None:
        """Write ``replies`` without waiting; a client that lets them pile up is closed as slow."""
        if not replies or self.closed:
            return
        transport = self.writer.transport
        transport.write(b"".join(replies) if len(replies) > 1 else replies[0])
        elapsed = self._loop.time() - started
        for _ in replies:
            self.metrics.reply_seconds.observe(elapsed)
        if transport.get_write_buffer_size() > self.write_buffer_bytes:
            log.info("jt808: %s does not read its replies (over %d bytes unsent); closing", self.session.who,
                     self.write_buffer_bytes)
            self.close("closed_slow")

    def close(self, reason: str) -> None:
        """Close once: gently (what was written still goes out: a logout's answer, the last replies at shutdown),
        but at once for a slow client, whose unsent replies would hold the socket open."""
        if self.closed:
            return
        self.closed = reason
        self._room.set()
        transport = self.writer.transport
        if reason == "closed_slow" or (transport.get_write_buffer_size() and reason != "closed_shutdown"):
            transport.abort()
        else:
            transport.close()
        self.metrics.connections.labels(reason).inc()
        self.on_closed(self)

    def stop(self) -> None:
        """The gateway stops: read no more frames (replies still go out until :meth:`close`)."""
        self.stopping = True
        transport = self.writer.transport
        if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
            transport.pause_reading()
        self._room.set()
