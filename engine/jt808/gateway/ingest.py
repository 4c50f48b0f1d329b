"""The Kafka side of a gateway process, shared by all its connections: fixes in partition batches, in order, and
each frame's reply released once Kafka has every record made from it.

A terminal that gets 0x8001 result 0 for a location deletes it; so the reply waits until the fixes (and the
rejections of that frame) are acknowledged by Kafka (``acks=all``), as the bridge's MQTT acknowledgements do.
The same pieces carry it: :class:`~engine.telemetry.batching.PartitionBatcher` (one columnar ``fixes`` record
per partition batch, its tags the :class:`Ticket` s waiting), :class:`~engine.telemetry.delivery.OrderedLanes`
(one batch in flight per partition, retried through outages, so a vehicle's fixes stay in order) and
:class:`~engine.telemetry.delivery.KafkaHealth`. Rejections need no order and go out concurrently.

Fixes of the frames one event-loop turn brought are turned into columns together (one
:func:`~engine.telemetry.columns.from_fixes` per turn, not per frame): with thousands of terminals each frame
holds one fix. A connection closed before its reply loses nothing: the fixes are in Kafka, the terminal sends
them again and the worker drops the duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from engine.core.metrics import Jt808Metrics
from engine.jt808.gateway.config import Jt808Config
from engine.kafka.producers import producer_options
from engine.telemetry.batching import Batch, PartitionBatcher
from engine.telemetry.columns import from_fixes
from engine.telemetry.delivery import KafkaHealth, OrderedLanes, Record, batch_producer, deliver, producer_attempt
from engine.telemetry.models import Fix
from engine.telemetry.rejection import Rejection

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class Ticket:
    """One frame's records: ``on_durable`` runs once Kafka has all ``remaining`` of them."""

    remaining: int
    on_durable: Callable[[], None]


class Ingest:
    """``submit`` a frame's fixes and rejections with what to do once they are durable; ``start``, ``stop``."""

    def __init__(self, settings: Jt808Config, metrics: Jt808Metrics, *, client_id: str = "citywatch-jt808"):
        self.settings, self.metrics, self.client_id = settings, metrics, client_id
        self.pending = 0                 # tickets not yet durable
        self.started = False
        self.health = KafkaHealth(metrics, lambda: self.pending, who="jt808 gateway", what="terminal frames")
        self._idempotent = bool(producer_options(settings.kafka)["enable_idempotence"])
        self._queue: list[Fix] = []      # fixes of this loop turn, not yet in a batch
        self._owners: list[Ticket] = []
        self._flush_soon: asyncio.Handle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self._producer = batch_producer(s.kafka, self.client_id, s.bridge.kafka_timeout_s)
        self._attempt = producer_attempt(self._producer, idempotent=self._idempotent,
                                         timeout_s=s.bridge.kafka_timeout_s, health=self.health)
        try:
            await self._producer.start()
            partitions = len(await self._producer.partitions_for(s.kafka.topics.fixes))
        except BaseException:
            await self._producer.stop()
            raise
        self._batcher: PartitionBatcher[Ticket] = PartitionBatcher(
            partitions, max_fixes=s.bridge.batch_max_fixes, linger_s=s.bridge.batch_linger_ms / 1000.0)
        self._lanes = OrderedLanes(self._attempt, self.health)
        self.partitions = partitions
        self.started = True

    def submit(self, fixes: list[Fix], rejections: list[Rejection], on_durable: Callable[[], None]) -> None:
        """Send ``fixes`` and ``rejections``; call ``on_durable`` once Kafka has them all (at once if none)."""
        n = len(fixes) + len(rejections)
        if n == 0:
            on_durable()
            return
        ticket = Ticket(n, on_durable)
        self.pending += 1
        self.metrics.pending_replies.set(self.pending)
        for r in rejections:
            self._track(deliver(self._attempt, Record(self.settings.kafka.topics.fixes_rejected, r.to_json(),
                                                      r.vehicle_id.encode() if r.vehicle_id else None, None,
                                                      lambda: self._done(ticket, 1)), self.health))
        if fixes:
            self._queue.extend(fixes)
            self._owners.extend([ticket] * len(fixes))
            if self._flush_soon is None:
                self._flush_soon = self._loop.call_soon(self._flush_queue)

    def _done(self, ticket: Ticket, n: int) -> None:
        ticket.remaining -= n
        if ticket.remaining == 0:
            self.pending -= 1
            self.metrics.pending_replies.set(self.pending)
            try:
                ticket.on_durable()
            except Exception:  # noqa: BLE001 - one connection's bug must not stop the others' replies
                log.exception("jt808: writing a reply failed")

    def _flush_queue(self) -> None:
        """This loop turn's fixes, as one set of columns, onto their partitions' batches."""
        self._flush_soon = None
        if not self._queue:
            return
        fixes, owners = self._queue, self._owners
        self._queue, self._owners = [], []
        for batch in self._batcher.add_rows(from_fixes(fixes), owners, self._loop.time()):
            self._send(batch)
        if self._linger is None:
            due = self._batcher.next_due()
            if due is not None:
                self._linger = self._loop.call_at(due, self._flush_due)

    def _flush_due(self) -> None:
        self._linger = None
        for batch in self._batcher.due(self._loop.time()):
            self._send(batch)
        due = self._batcher.next_due()
        if due is not None:
            self._linger = self._loop.call_at(due, self._flush_due)

    def _send(self, batch: Batch[Ticket]) -> None:
        owners, fixes = batch.owners(), batch.fixes
        try:
            value = batch.payload()
        except ValueError as exc:  # validated fixes always encode: a bug must not leave terminals unanswered
            log.exception("jt808: could not encode a batch of %d fixes for partition %d", fixes, batch.partition)
            for ticket, n in owners:
                r = Rejection("internal_error", f"{n} fixes were in a batch the gateway could not encode: {exc}"[:300],
                              b"", topic="jt808", source="jt808")
                self._track(deliver(self._attempt, Record(self.settings.kafka.topics.fixes_rejected, r.to_json(), None,
                                                          None, partial(self._done, ticket, n)), self.health))
            return

        def delivered() -> None:
            self.metrics.fixes.inc(fixes)
            self.metrics.batches_produced.inc()
            for ticket, n in owners:
                self._done(ticket, n)

        self._lanes.put(batch.partition, Record(self.settings.kafka.topics.fixes, value, batch.key, batch.partition,
                                                delivered))

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def flush(self) -> None:
        """Every fix held, into batches sent now (at shutdown)."""
        if self._flush_soon is not None:
            self._flush_soon.cancel()
        self._flush_queue()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        for batch in self._batcher.drain():
            self._send(batch)

    async def wait_durable(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for every record sent to be in Kafka; whether all are."""
        pending = [*self._lanes.tasks(), *self._tasks]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        return self.pending == 0

    async def stop(self, timeout: float) -> None:
        """Give up on what Kafka has not taken (its replies are not sent: the terminals send it again)."""
        if not self.started:
            return
        for task in [*self._lanes.tasks(), *self._tasks]:
            task.cancel()
        try:
            await asyncio.wait_for(self._producer.stop(), timeout)
        except TimeoutError:
            log.warning("jt808: the Kafka producer did not stop in time")
        self.started = False
