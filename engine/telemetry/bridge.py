"""MQTT-to-Kafka bridge: gateways' fixes in, the ``fixes`` topic (or ``fixes.rejected``) out.

The bridge subscribes with a persistent session (QoS 1) and acknowledges an
MQTT message only once Kafka has every record made from it, so a bridge that
dies, even by SIGKILL, loses nothing: the broker redelivers what was not
acknowledged. Valid fixes are grouped by the partition their vehicle hashes
to and produced as one message per partition batch (bounded by
``bridge.batch_max_fixes`` and ``bridge.batch_linger_ms``), so a vehicle's
fixes and state stay on one partition and one worker. Everything runs on one
event loop, in arrival order, and each partition has one batch in flight
(:mod:`engine.telemetry.delivery`), so each vehicle's fixes reach Kafka in
arrival order, also when Kafka fails and batches are retried. What validation
rejects goes to ``fixes.rejected``, one record per rejection with its reason
(:class:`~engine.telemetry.rejection.Rejection`), counted in
``citywatch_bridge_rejections_total{reason}`` once its message is acknowledged.

Per MQTT message the bridge does the least it can: the subscriber
(:mod:`engine.mqtt.subscriber`) hands over every message one socket read
brought, as one list; they are validated at once (single-fix messages as one
array, :mod:`engine.telemetry.bulk_validation`), counted once per list, and
acknowledged in one write per Kafka delivery (the PUBACKs of every message
whose records that delivery completed).

Flow control: the bridge holds at most ``bridge.max_in_flight`` MQTT
messages (received, not yet acknowledged). While Kafka is down it keeps
retrying what it holds, acknowledges nothing and, once full, stops reading
from the broker: the rest waits, acknowledged to the gateways, in the
bridge's session queue at the broker (bounded there by mosquitto's
``max_queued_messages``; see :mod:`engine.telemetry.broker_drops`). It keeps
its MQTT connection alive meanwhile (PINGREQ); if the connection drops
anyway, it reconnects and the broker redelivers what was not acknowledged.
On SIGTERM the bridge flushes its partition batches and acknowledges what
Kafka took before disconnecting.

Several bridges can share the subscription (``bridge.shared_group``: MQTT
``$share/<group>/...``); each needs its own ``bridge.client_id``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from engine.core.clock import Clock, SystemClock
from engine.core.metrics import BridgeMetrics
from engine.kafka.admin import TopicSpecs
from engine.kafka.producers import producer_options
from engine.kafka.topics import ensure_topics
from engine.mqtt.packets import Message
from engine.mqtt.subscriber import Subscriber
from engine.telemetry.batching import Batch, PartitionBatcher
from engine.telemetry.broker_drops import BrokerDropWatch
from engine.telemetry.bulk_validation import parse_messages
from engine.telemetry.columns import FixColumns
from engine.telemetry.delivery import KafkaHealth, OrderedLanes, Record, batch_producer, deliver, producer_attempt
from engine.telemetry.rejection import Parsed, Rejection
from engine.telemetry.settings import TelemetryConfig
from engine.telemetry.validation import parse_payload
from engine.web.metrics_server import MetricsServer

log = logging.getLogger(__name__)

FULL_LOG_S = 10.0


@dataclass(eq=False, slots=True)
class Ticket:
    """One MQTT message: acknowledged once all ``remaining`` records are in Kafka."""

    msg: Message
    remaining: int
    rejections: list[Rejection] = field(default_factory=list)


def subscriptions(settings: TelemetryConfig) -> list[tuple[str, int]]:
    prefix, qos, group = settings.mqtt.fixes_topic, settings.mqtt.qos, settings.bridge.shared_group
    topics = [f"{prefix}/#", prefix]
    return [(f"$share/{group}/{t}" if group else t, qos) for t in topics]


class Bridge:
    def __init__(self, settings: TelemetryConfig, *, topic_specs: TopicSpecs, clock: Clock | None = None,
                 registry: CollectorRegistry | None = None):
        self.settings = settings
        self.topic_specs = topic_specs  # it may start before any worker: it creates every topic, as they do
        self.clock = clock or SystemClock()
        self.registry = registry or CollectorRegistry()
        self.metrics = BridgeMetrics(self.registry)
        self._held = 0             # MQTT messages received and not yet acknowledged
        self._next_full_log = 0.0
        self._accepting = True
        self._tasks: set[asyncio.Task] = set()
        self._linger: asyncio.TimerHandle | None = None
        self._resume: asyncio.Handle | None = None
        self._health = KafkaHealth(self.metrics, lambda: self._held)
        self._idempotent = bool(producer_options(settings.kafka)["enable_idempotence"])
        self._kafka_started = False
        self._mqtt = "connecting"  # "subscribed" once the broker confirms; "lost" after a disconnect

    # -- MQTT side -------------------------------------------------------------
    def _room(self) -> int:
        """How many more messages the bridge takes now (``bridge.max_in_flight`` minus those it holds)."""
        return self.settings.bridge.max_in_flight - self._held

    def _full(self) -> None:
        """The subscriber stopped reading: the bridge holds ``bridge.max_in_flight`` messages."""
        self.metrics.backpressure.inc()
        now = time.monotonic()
        if now >= self._next_full_log:  # at most one line per FULL_LOG_S
            self._next_full_log = now + FULL_LOG_S
            log.warning("bridge: holding %d MQTT messages (bridge.max_in_flight) not yet in Kafka; not reading "
                        "from the broker until Kafka takes some (the broker keeps the rest in the bridge's session; "
                        "see citywatch_bridge_backpressure_total)", self._held)

    def _on_subscribed(self) -> None:
        self._mqtt = "subscribed"
        self.metrics.mqtt_connected.set(1)

    def _on_lost(self, reason: str) -> None:
        self._mqtt = "lost"
        self.metrics.mqtt_connected.set(0)
        if self._accepting:
            log.warning("bridge: MQTT connection lost (%s); reconnecting", reason)

    def _on_messages(self, msgs: list[Message]) -> None:
        """Validate the messages one socket read brought, at once; buffer their fixes, send their rejections."""
        if not self._accepting:  # stopping: left unacknowledged, the broker redelivers them
            return
        n = len(msgs)
        self._held += n
        self.metrics.messages.inc(n)
        self.metrics.in_flight.set(self._held)
        now, at = self.clock.now(), self._loop.time()
        try:
            many = parse_messages([(m.topic, m.payload) for m in msgs], settings=self.settings, now=now)
        except Exception:  # noqa: BLE001 - a bug must not stop the bridge nor lose the messages
            log.exception("bridge: validating %d messages at once failed; validating them one by one", n)
            return self._one_by_one(msgs, now, at)
        tickets, empty = [], []
        for msg, rows, rejections in zip(msgs, many.rows, many.rejections, strict=True):
            ticket = Ticket(msg, rows + len(rejections), rejections)
            tickets.append(ticket)
            for r in rejections:
                self._reject(r, ticket)
            if not ticket.remaining:  # nothing in it: nothing to wait for
                empty.append(ticket)
        full = self._batcher.add_rows(many.fixes, [tickets[i] for i in many.owner], at) if many.owner else []
        self._queued(full, empty)

    def _one_by_one(self, msgs: list[Message], now: float, at: float) -> None:
        full, empty = [], []
        for msg in msgs:
            try:
                parsed = parse_payload(msg.payload, topic=msg.topic, settings=self.settings, now=now)
            except Exception as exc:  # noqa: BLE001 - a bug must not stop the bridge nor lose the message
                log.exception("bridge: validating a message on %s failed", msg.topic)
                parsed = Parsed(FixColumns.empty(), [Rejection("internal_error", f"validation raised "
                                                               f"{type(exc).__name__}", msg.payload, topic=msg.topic,
                                                               received_at=now)])
            ticket = Ticket(msg, len(parsed.fixes) + len(parsed.rejections), parsed.rejections)
            for r in parsed.rejections:
                self._reject(r, ticket)
            if not ticket.remaining:
                empty.append(ticket)
            full += self._batcher.add(parsed.fixes, ticket, at)
        self._queued(full, empty)

    def _queued(self, full: list[Batch[Ticket]], empty: list[Ticket]) -> None:
        for batch in full:
            self._send_batch(batch)
        if empty:
            self._finished(empty)
        self._schedule_linger()

    def _finished(self, tickets: list[Ticket]) -> None:
        """Acknowledge the messages whose records are all in Kafka (one write), count their rejections."""
        reasons = Counter(r.reason for t in tickets for r in t.rejections)
        for reason, k in reasons.items():
            self.metrics.rejections_produced.labels(reason).inc(k)
        self._subscriber.ack([t.msg for t in tickets])
        self._held -= len(tickets)
        self.metrics.in_flight.set(self._held)
        if self._subscriber.paused and self._resume is None and self._accepting:
            self._resume = self._loop.call_soon(self._read_on)

    def _read_on(self) -> None:
        self._resume = None
        if self._room() > 0:
            self._subscriber.resume()

    # -- Kafka side -------------------------------------------------------------
    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_linger(self) -> None:
        """A timer for the oldest open batch's linger (one at a time)."""
        if self._linger is None and self._accepting:
            due = self._batcher.next_due()
            if due is not None:
                self._linger = self._loop.call_at(due, self._flush_due)

    def _flush_due(self) -> None:
        self._linger = None
        for batch in self._batcher.due(self._loop.time()):
            self._send_batch(batch)
        self._schedule_linger()

    def _send_batch(self, batch: Batch[Ticket]) -> None:
        fixes, acks = batch.fixes, batch.owners()
        try:
            value = batch.payload()
        except ValueError as exc:  # validated fixes always encode: a bug must not stop the bridge nor lose messages
            log.exception("bridge: could not encode a batch of %d fixes for partition %d", fixes, batch.partition)
            for ticket, n in acks:
                self._reject_unencoded(ticket, n, exc)
            return

        def delivered() -> None:
            self.metrics.fixes_produced.inc(fixes)
            self.metrics.batches_produced.inc()
            done = []
            for ticket, n in acks:
                ticket.remaining -= n
                if ticket.remaining == 0:
                    done.append(ticket)
            if done:
                self._finished(done)

        self._lanes.put(batch.partition, Record(self.settings.kafka.topics.fixes, value, batch.key, batch.partition,
                                                delivered))

    def _reject(self, r: Rejection, ticket: Ticket) -> None:
        """One rejection to ``fixes.rejected`` (no order needed: concurrently)."""
        log.debug("bridge: rejected fix on %s: %s (%s)", r.topic, r.reason, r.detail)
        self._track(deliver(self._attempt, Record(self.settings.kafka.topics.fixes_rejected, r.to_json(),
                                                  r.vehicle_id.encode() if r.vehicle_id else None, None,
                                                  lambda: self._done(ticket, 1)), self._health))

    def _done(self, ticket: Ticket, n: int) -> None:
        ticket.remaining -= n
        if ticket.remaining == 0:
            self._finished([ticket])

    def _reject_unencoded(self, ticket: Ticket, n: int, exc: ValueError) -> None:
        """The message whose ``n`` fixes were in a batch that did not encode, whole, to ``fixes.rejected``."""
        msg = ticket.msg
        r = Rejection("internal_error", f"{n} of its fixes were in a batch the bridge could not encode: {exc}"[:300],
                      msg.payload, topic=msg.topic, received_at=self.clock.now())
        ticket.rejections.append(r)
        self._track(deliver(self._attempt, Record(self.settings.kafka.topics.fixes_rejected, r.to_json(), None, None,
                                                  lambda: self._done(ticket, n)), self._health))

    # -- lifecycle ----------------------------------------------------------------
    def readiness(self) -> tuple[str, str]:
        """``("ready", "")`` while MQTT fixes reach Kafka, else a status and why not (``GET /health``)."""
        s = self.settings
        mqtt_at, kafka_at = f"{s.mqtt.host}:{s.mqtt.port}", s.kafka.bootstrap
        if not self._accepting:
            return "stopping", "the bridge is shutting down"
        if not self._kafka_started:
            return "starting", f"connecting to Kafka at {kafka_at}"
        if self._mqtt == "connecting":
            return "starting", f"subscribing on the MQTT broker at {mqtt_at}"
        if self._mqtt == "lost":
            return "mqtt_disconnected", f"lost the MQTT broker at {mqtt_at}; reconnecting"
        if not self._health.up:
            return "kafka_down", f"Kafka at {kafka_at} does not take records; holding {self._held} MQTT messages"
        return "ready", ""

    async def run(self, stop: asyncio.Event, *, serve_metrics: bool = True) -> None:
        """Bridge until ``stop`` is set; with ``serve_metrics``, ``/metrics`` and ``/health`` meanwhile."""
        self._loop = asyncio.get_running_loop()
        if not serve_metrics:
            return await self._bridge(stop)
        s = self.settings
        http = MetricsServer(self.registry, self.readiness, s.web.host, s.bridge.metrics_port, who="bridge",
                             setting="bridge.metrics_port")
        await http.start()
        try:
            await self._bridge(stop)
        finally:
            await http.stop()

    async def _bridge(self, stop: asyncio.Event) -> None:
        s = self.settings
        await asyncio.to_thread(ensure_topics, s.kafka, self.topic_specs)
        self._producer = batch_producer(s.kafka, s.bridge.client_id, s.bridge.kafka_timeout_s)
        self._attempt = producer_attempt(self._producer, idempotent=self._idempotent,
                                         timeout_s=s.bridge.kafka_timeout_s, health=self._health)
        await self._producer.start()
        partitions = len(await self._producer.partitions_for(s.kafka.topics.fixes))
        self._kafka_started = True
        self._batcher: PartitionBatcher[Ticket] = PartitionBatcher(
            partitions, max_fixes=s.bridge.batch_max_fixes, linger_s=s.bridge.batch_linger_ms / 1000.0)
        self._lanes = OrderedLanes(self._attempt, self._health)
        self._subscriber = Subscriber(s.mqtt, s.bridge.client_id, subscriptions(s), self._on_messages,
                                      room=self._room, clean_session=False, on_full=self._full,
                                      on_subscribed=self._on_subscribed, on_lost=self._on_lost)
        reader = asyncio.create_task(self._subscriber.run())
        drops = BrokerDropWatch(s.mqtt, f"{s.bridge.client_id}-sys", self.metrics)
        drops.start()
        log.info("bridge: %s:%s %s -> kafka %s topic %s (%d partitions), holding at most %d messages",
                 s.mqtt.host, s.mqtt.port, [t for t, _ in subscriptions(s)], s.kafka.bootstrap,
                 s.kafka.topics.fixes, partitions, s.bridge.max_in_flight)
        try:
            await stop.wait()
        finally:
            drops.stop()
            await self._shutdown(reader)

    async def _shutdown(self, reader: asyncio.Task) -> None:
        """Stop taking messages, flush what is held to Kafka and acknowledge it, then disconnect."""
        self._accepting = False
        if self._linger is not None:
            self._linger.cancel()
        for batch in self._batcher.drain():
            self._send_batch(batch)
        held = self._held
        pending = [*self._lanes.tasks(), *self._tasks]
        if pending:
            await asyncio.wait(pending, timeout=self.settings.bridge.shutdown_timeout_s)
        left = self._held
        for task in [*self._lanes.tasks(), *self._tasks]:
            task.cancel()
        try:
            await asyncio.wait_for(self._producer.stop(), self.settings.bridge.shutdown_timeout_s)
        except TimeoutError:
            log.warning("bridge: the Kafka producer did not stop in time")
        await self._subscriber.stop(f"{self.settings.mqtt.fixes_topic}/$citywatch-ack-fence")
        reader.cancel()
        try:
            await reader
        except asyncio.CancelledError:
            pass
        if left:
            log.warning("bridge: stopped; %d of %d held messages were not taken by Kafka and stay "
                        "unacknowledged (the broker redelivers them)", left, held)
        else:
            log.info("bridge: stopped; flushed and acknowledged the %d messages it held", held)
