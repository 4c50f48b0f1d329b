"""Records to Kafka until Kafka has them: in order per partition, retried through outages.

The bridge acknowledges an MQTT message only once Kafka has every record
made from it, so a record is never given up: a failed (or timed-out) produce
is re-sent after ``RETRY_DELAY_S`` until it succeeds or the bridge stops.

Fix batches go through :class:`OrderedLanes`, one lane per partition with
one batch in flight at a time. A retried batch therefore never lands behind
a later batch of the same partition, which the worker would read as a late
(out-of-order) fix. Several batches of a lane in flight would need the
producer's idempotence (sequence numbers the broker checks) to stay in order
when one of them fails and a later one does not; Tansu does not support
idempotent producers, and re-sending the later batches too would put older
fixes behind newer ones. (On Kafka the bridge's producer is idempotent: it
retries a batch itself until the broker takes it, so there a slow answer is
reported as an outage and waited out, and the batch is never sent twice.) It costs little: a lane's next batch keeps filling
while one is in flight (up to ``bridge.batch_max_fixes``), and Tansu answers
an ``acks=all`` produce of a 500-fix batch in ~1 ms (measured), so one lane
carries far more than one bridge produces. Rejections need no order and go
out concurrently (:func:`deliver`).

:class:`KafkaHealth` turns failures into one log line per outage (not one
per record), ``citywatch_bridge_kafka_up`` and the error counter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.core.metrics import BridgeMetrics

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0


@dataclass(eq=False)
class Record:
    topic: str
    value: bytes
    key: bytes | None
    partition: int | None
    on_delivered: Callable[[], None]


Attempt = Callable[[Record], Awaitable[None]]


class KafkaHealth:
    """Whether Kafka takes records: a gauge, an error counter and one log line per change."""

    def __init__(self, metrics: BridgeMetrics, held: Callable[[], int]):
        self.metrics, self._held = metrics, held
        self._down_since: float | None = None
        self._failures = 0
        metrics.kafka_up.set(1)

    @property
    def up(self) -> bool:
        return self._down_since is None

    def failed(self, exc: BaseException) -> None:
        self.metrics.kafka_errors.inc()
        self._failures += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.metrics.kafka_up.set(0)
            log.warning("bridge: Kafka does not take records (%s: %s); holding back %d MQTT messages "
                        "unacknowledged and retrying every %.0f s", type(exc).__name__, exc, self._held(),
                        RETRY_DELAY_S)

    def ok(self) -> None:
        if self._down_since is not None:
            log.warning("bridge: Kafka takes records again after %.1f s (%d failed attempts); %d MQTT messages "
                        "held", time.monotonic() - self._down_since, self._failures, self._held())
            self._down_since, self._failures = None, 0
            self.metrics.kafka_up.set(1)


async def deliver(attempt: Attempt, record: Record, health: KafkaHealth) -> None:
    """``attempt(record)`` until it succeeds, then ``record.on_delivered()``."""
    while True:
        try:
            await attempt(record)
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - timeouts, connection errors, broker errors: all retried
            health.failed(exc)
            await asyncio.sleep(RETRY_DELAY_S)
    health.ok()
    record.on_delivered()


class OrderedLanes:
    """One FIFO per lane (partition); each lane delivers its head, then the next."""

    def __init__(self, attempt: Attempt, health: KafkaHealth):
        self._attempt, self._health = attempt, health
        self._lanes: dict[object, deque[Record]] = {}
        self._tasks: dict[object, asyncio.Task] = {}

    def put(self, lane: object, record: Record) -> None:
        self._lanes.setdefault(lane, deque()).append(record)
        if lane not in self._tasks:
            self._tasks[lane] = asyncio.create_task(self._run(lane))

    async def _run(self, lane: object) -> None:
        queue = self._lanes[lane]
        try:
            while queue:
                await deliver(self._attempt, queue[0], self._health)
                queue.popleft()
        finally:
            del self._tasks[lane]  # no await between the empty check and here: put() starts a new task

    def pending(self) -> int:
        """Records not yet delivered."""
        return sum(len(q) for q in self._lanes.values())

    def tasks(self) -> list[asyncio.Task]:
        return list(self._tasks.values())
