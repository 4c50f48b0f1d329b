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
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer

from engine.kafka.producers import producer_options
from engine.kafka.settings import KafkaSettings

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


class HealthMetrics(Protocol):
    """What :class:`KafkaHealth` sets: the bridge's and the JT/T 808 gateway's metrics both have them."""

    kafka_up: Any     # a Gauge
    kafka_errors: Any  # a Counter


class KafkaHealth:
    """Whether Kafka takes records: a gauge, an error counter and one log line per change.

    ``who`` names the process in the log lines and ``held`` says what it holds back meanwhile (``"MQTT
    messages"``, ``"terminal frames"``).
    """

    def __init__(self, metrics: HealthMetrics, held: Callable[[], int], *, who: str = "bridge",
                 what: str = "MQTT messages"):
        self.metrics, self._held, self._who, self._what = metrics, held, who, what
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
            log.warning("%s: Kafka does not take records (%s: %s); holding back %d %s "
                        "unacknowledged and retrying every %.0f s", self._who, type(exc).__name__, exc, self._held(),
                        self._what, RETRY_DELAY_S)

    def ok(self) -> None:
        if self._down_since is not None:
            log.warning("%s: Kafka takes records again after %.1f s (%d failed attempts); %d %s held", self._who,
                        time.monotonic() - self._down_since, self._failures, self._held(), self._what)
            self._down_since, self._failures = None, 0
            self.metrics.kafka_up.set(1)


def batch_producer(kafka: KafkaSettings, client_id: str, timeout_s: float) -> AIOKafkaProducer:
    """The producer of a process that sends ready-made batches (the bridge, the JT/T 808 gateway).

    ``linger_ms`` 0: each record is already a batch (PartitionBatcher), and a partition has one in flight.
    """
    return AIOKafkaProducer(bootstrap_servers=kafka.servers, **producer_options(kafka), linger_ms=0,
                            client_id=client_id, max_request_size=4 * 1024 * 1024,
                            request_timeout_ms=max(1000, int(timeout_s * 1000)))


def producer_attempt(producer: AIOKafkaProducer, *, idempotent: bool, timeout_s: float,
                     health: KafkaHealth) -> Attempt:
    """One try at producing a record, for :func:`deliver` and :class:`OrderedLanes`.

    Without idempotence a produce fails after ``request_timeout_ms`` and :func:`deliver` sends it again. An
    idempotent producer never expires a batch: it retries it itself until the broker takes it, in order, so
    a slow answer is reported as an outage and waited out, never sent again (that would write it twice).
    """

    async def attempt(record: Record) -> None:
        fut = await producer.send(record.topic, record.value, key=record.key, partition=record.partition)
        if not idempotent:
            await fut
            return
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(fut), timeout_s)
                return
            except TimeoutError:
                health.failed(TimeoutError(f"no answer within {timeout_s:g} s"))

    return attempt


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
