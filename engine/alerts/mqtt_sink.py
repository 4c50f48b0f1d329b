"""Alert channel: MQTT ``{alerts_topic}/{kind}/{subject}`` at QoS 1, fed from the Kafka ``alerts`` topic.

Every worker runs one :class:`AlertDelivery`. It reads the ``alerts`` topic
with its own Kafka consumer (group ``{worker.app_id}-alert-delivery``, so the
alerts partitions are shared out among the workers apart from the fixes) and
publishes each alert through one asyncio MQTT client
(:class:`engine.mqtt.publisher.Publisher`: the publishes of one turn of the event
loop go out in one write, PUBACKs are read in bulk), with up to ``WINDOW``
alerts awaiting the broker's PUBACK at once. It reads records in batches,
without a Faust event per alert: read back through a Faust agent, the alerts
had cost the checking worker about as much CPU as checking the fixes.

A Kafka offset is committed only once the broker has acknowledged that alert
and every one before it on its partition. A worker that stops or dies with
alerts in flight leaves them uncommitted, and whoever reads the partition
next delivers them again (same ``alert_id``). On a rebalance the worker
waits a moment for the PUBACKs of the partitions it gives up and commits
what they cover.

While the broker is down the publishes wait, in order, and go out when the
client has reconnected (every unacknowledged one is sent again), so each
vehicle's alerts (one partition: the topic is keyed by subject) are delivered
in order and nothing is skipped; a duplicate can follow a reconnect. The
backlog stays in Kafka: reading pauses while ``WINDOW`` alerts are in flight.
``citywatch_alert_delivery_backlog`` counts the alerts on this worker's
partitions not yet delivered, ``citywatch_alert_delivery_lag_seconds`` is how
long the oldest one in flight has waited.

A group without committed offsets (the first start after an upgrade from
versions that delivered through a Faust agent) starts each partition where
the worker's Faust group had got to, not at the beginning of the topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, NamedTuple

import faust
import mode
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from engine.alerts.models import mqtt_topic
from engine.alerts.settings import AlertsConfig
from engine.core.metrics import WorkerMetrics
from engine.kafka.metadata import partitions_of
from engine.kafka.settings import KafkaSettings
from engine.kafka.tansu import FETCH_MAX_WAIT_MS
from engine.mqtt.publisher import Publisher

log = logging.getLogger(__name__)

WINDOW = 500          # alerts published and awaiting PUBACK
FETCH_MS = 200        # longest wait for records in one read
PAUSED_MS = 20        # read period while the window is full (the consumer is paused, PUBACKs are settled)
COMMIT_S = 0.2        # how often delivered offsets are committed
REPORT_S = 0.5        # how often the backlog metrics are refreshed
HANDOVER_S = 2.0      # how long PUBACKs are awaited for partitions given up or on stop
CHANNEL = "mqtt"


def consumer_tuning(kafka: KafkaSettings) -> dict[str, int]:
    """The delivery consumer's group and fetch timing for the configured kind of broker (as the worker's)."""
    if kafka.broker == "tansu":  # Tansu holds a JoinGroup half the session and a fetch its full max wait
        return dict(session_timeout_ms=3000, heartbeat_interval_ms=500, fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    return dict(session_timeout_ms=30000, heartbeat_interval_ms=3000, fetch_max_wait_ms=500)


class InFlight(NamedTuple):
    tp: TopicPartition
    offset: int
    done: asyncio.Future[None]
    read_at: float


class Ledger:
    """Alerts published and not yet settled, in publish order, and per partition what may be committed."""

    def __init__(self) -> None:
        self.queue: deque[InFlight] = deque()
        self.next_offset: dict[TopicPartition, int] = {}   # first offset not yet delivered
        self.uncommitted: dict[TopicPartition, int] = {}   # offset to commit (next to deliver)

    def add(self, entry: InFlight) -> None:
        self.queue.append(entry)
        self.next_offset.setdefault(entry.tp, entry.offset)

    def settle(self) -> None:
        """Take the acknowledged head of the queue; a partition may be committed up to its settled alerts."""
        q = self.queue
        while q and q[0].done.done() and not q[0].done.cancelled() and q[0].done.exception() is None:
            e = q.popleft()
            self.next_offset[e.tp] = self.uncommitted[e.tp] = e.offset + 1

    def futures_of(self, tps: set[TopicPartition]) -> list[asyncio.Future[None]]:
        return [e.done for e in self.queue if e.tp in tps]

    def forget(self, tps: set[TopicPartition]) -> None:
        """Partitions given up: their alerts in flight are the next owner's to deliver (again)."""
        self.queue = deque(e for e in self.queue if e.tp not in tps)
        for tp in tps:
            self.next_offset.pop(tp, None)
            self.uncommitted.pop(tp, None)

    def oldest_read(self) -> float | None:
        return self.queue[0].read_at if self.queue else None


class _Handover(ConsumerRebalanceListener):
    def __init__(self, delivery: AlertDelivery):
        self.delivery = delivery

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.delivery.hand_over(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Nothing to do: a partition is read from its committed offset."""


class AlertDelivery(mode.Service):
    """Kafka ``alerts`` -> MQTT, committed behind the PUBACKs (module docstring)."""

    def __init__(self, settings: AlertsConfig, metrics: WorkerMetrics, client_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.settings, self.metrics, self.client_id = settings, metrics, client_id
        self.group = f"{settings.worker.app_id}-alert-delivery"
        self.ledger = Ledger()
        self.consumer: AIOKafkaConsumer | None = None
        self.publisher: Publisher | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._commit_failing = False

    # -- lifecycle ------------------------------------------------------------------------------
    async def on_start(self) -> None:
        k = self.settings.kafka
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=k.servers, group_id=self.group, client_id=self.client_id,
            enable_auto_commit=False, auto_offset_reset="earliest", **consumer_tuning(k))
        await self.seed_offsets()
        self.consumer.subscribe([k.topics.alerts], listener=_Handover(self))
        await self.consumer.start()

        def lost(reason: str) -> None:
            log.warning("alert delivery: MQTT connection lost (%s); alerts wait in Kafka until the broker is back "
                        "(citywatch_alert_delivery_backlog)", reason)

        self.publisher = Publisher(self.settings.mqtt, self.client_id, on_lost=lost,
                                   on_connected=lambda: log.info("alert delivery: connected to the MQTT broker"))
        self._loops = [asyncio.create_task(self.publisher.run()), asyncio.create_task(self._deliver()),
                       asyncio.create_task(self._commit_loop()), asyncio.create_task(self._report_loop())]

    async def on_stop(self) -> None:
        """Stop reading; wait a moment for the PUBACKs in flight, commit what they cover, leave the group."""
        publisher, consumer = self.publisher, self.consumer
        for task in self._loops[1:]:
            task.cancel()
        await asyncio.gather(*self._loops[1:], return_exceptions=True)
        try:
            pending = [e.done for e in self.ledger.queue]
            if pending:
                await asyncio.wait(pending, timeout=HANDOVER_S)
            self.ledger.settle()
            if consumer is not None:
                await self._commit()
        finally:
            try:
                if publisher is not None:
                    await publisher.stop(f"{self.settings.mqtt.alerts_topic}/$citywatch-fence", timeout=HANDOVER_S)
            finally:
                if self._loops:
                    self._loops[0].cancel()
                if publisher is not None:
                    publisher.cancel_pending()
                if consumer is not None:
                    await consumer.stop()

    # -- reading and publishing -----------------------------------------------------------------
    async def _deliver(self) -> None:
        consumer, pub = self.consumer, self.publisher
        assert consumer is not None and pub is not None
        delivered = self.metrics.alerts_delivered.labels(CHANNEL)
        failures = self.metrics.alert_delivery_failures.labels(CHANNEL)
        loop = asyncio.get_running_loop()
        ledger = self.ledger
        alerts_topic = self.settings.mqtt.alerts_topic

        def count(fut: asyncio.Future[None]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                delivered.inc()

        while True:
            ledger.settle()
            room = WINDOW - len(ledger.queue)
            if room <= 0:  # keep polling (the group wants it), read nothing, settle PUBACKs
                consumer.pause(*consumer.assignment())
                await consumer.getmany(timeout_ms=PAUSED_MS, max_records=1)
                continue
            if consumer.paused():
                consumer.resume(*consumer.paused())
            batches = await consumer.getmany(timeout_ms=FETCH_MS, max_records=room)
            now = time.monotonic()
            for tp, records in batches.items():
                for r in records:
                    try:
                        alert = orjson.loads(r.value)
                        fut = pub.publish(mqtt_topic(alerts_topic, alert), r.value)
                        fut.add_done_callback(count)
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                        log.error("alert delivery: undeliverable record at %s[%s]@%s: %s", tp.topic, tp.partition,
                                  r.offset, exc)
                        failures.inc()
                        fut = loop.create_future()
                        fut.set_result(None)  # skipped in its place, so later offsets can be committed
                    ledger.add(InFlight(tp, r.offset, fut, now))

    # -- committing -----------------------------------------------------------------------------
    async def _commit(self, tps: set[TopicPartition] | None = None) -> None:
        """Commit the settled offsets (of ``tps``, or all); a failure leaves them for the next try."""
        consumer = self.consumer
        assert consumer is not None
        owned = consumer.assignment()
        due = {tp: o for tp, o in self.ledger.uncommitted.items() if tp in owned and (tps is None or tp in tps)}
        if not due:
            return
        try:
            await consumer.commit(due)
        except (CommitFailedError, IllegalStateError) as exc:  # the group moved on: the next owner delivers these again
            log.info("alert delivery: commit refused after a rebalance (%s); the next owner re-delivers", exc)
            for tp in due:
                self.ledger.uncommitted.pop(tp, None)
            return
        except KafkaError as exc:
            if not self._commit_failing:
                log.warning("alert delivery: committing offsets failed (%s); retrying", exc)
            self._commit_failing = True
            return
        if self._commit_failing:
            log.info("alert delivery: committing offsets again")
        self._commit_failing = False
        for tp, o in due.items():
            if self.ledger.uncommitted.get(tp) == o:
                del self.ledger.uncommitted[tp]

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_S)
            self.ledger.settle()
            await self._commit()

    # -- rebalances -----------------------------------------------------------------------------
    async def hand_over(self, revoked: set[TopicPartition]) -> None:
        pending = self.ledger.futures_of(revoked)
        if pending:
            await asyncio.wait(pending, timeout=HANDOVER_S)
        self.ledger.settle()
        await self._commit(revoked)
        self.ledger.forget(revoked)

    async def seed_offsets(self) -> None:
        """Partitions this group never committed start where the worker's Faust group had got to.

        Done before joining: a consumer fetches a partition from its reset position as soon as it is
        assigned, before a rebalance listener could seek. Workers that start together write the same
        offsets; a partition another worker of this group has committed already is left alone.
        """
        k = self.settings.kafka
        topic = k.topics.alerts
        own = AIOKafkaConsumer(bootstrap_servers=k.servers, group_id=self.group, enable_auto_commit=False)
        legacy = AIOKafkaConsumer(bootstrap_servers=k.servers, group_id=self.settings.worker.app_id,
                                  enable_auto_commit=False)
        try:
            await own.start()
            await legacy.start()
            tps = await partitions_of(own, topic)
            fresh = [tp for tp in tps if await own.committed(tp) is None]
            found = {tp: o for tp in fresh if (o := await legacy.committed(tp)) is not None}
            if found:
                own.assign(list(found))
                await own.commit(found)
                log.info("alert delivery: %d partition(s) of %s continue from the offsets of group %s",
                         len(found), topic, self.settings.worker.app_id)
        except KafkaError as exc:
            log.warning("alert delivery: could not carry over the offsets of group %s (%s); partitions without "
                        "offsets of their own start at the beginning", self.settings.worker.app_id, exc)
        finally:
            await legacy.stop()
            await own.stop()

    # -- metrics --------------------------------------------------------------------------------
    def report(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        total = 0
        for tp in consumer.assignment():
            nxt, hw = self.ledger.next_offset.get(tp), consumer.highwater(tp)
            if nxt is not None and hw is not None:
                total += max(0, hw - nxt)
        self.metrics.alert_delivery_backlog.labels(CHANNEL).set(total)
        oldest = self.ledger.oldest_read()
        self.metrics.alert_delivery_lag.labels(CHANNEL).set(0.0 if oldest is None else time.monotonic() - oldest)

    async def _report_loop(self) -> None:
        while True:
            try:
                self.report()
            except Exception:  # noqa: BLE001 - a metric must not stop delivery
                log.debug("alert delivery: backlog report failed", exc_info=True)
            await asyncio.sleep(REPORT_S)


def register(app: faust.App, settings: AlertsConfig, metrics: WorkerMetrics) -> AlertDelivery:
    """Start an :class:`AlertDelivery` with the worker (and stop it with it)."""
    delivery = AlertDelivery(settings, metrics, f"{settings.worker.app_id}-alerts-{app.conf.web_port}")
    app.service(delivery)  # type: ignore[arg-type]
    return delivery
