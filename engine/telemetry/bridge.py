"""MQTT-to-Kafka bridge: gateways' fixes in, the ``fixes`` topic (or ``fixes.rejected``) out.

The bridge subscribes with a persistent session (QoS 1) and acknowledges an
MQTT message only once Kafka has every record made from it (paho's manual
acks), so a bridge that dies, even by SIGKILL, loses nothing: the broker
redelivers what was not acknowledged. Valid fixes are grouped by the
partition their vehicle hashes to and produced as one message per partition
batch (bounded by ``bridge.batch_max_fixes`` and ``bridge.batch_linger_ms``),
so a vehicle's fixes and state stay on one partition and one worker. One
coroutine does all appending and each partition has one batch in flight
(:mod:`engine.telemetry.delivery`), so each vehicle's fixes reach Kafka in
arrival order, also when Kafka fails and batches are retried.

Flow control: the bridge holds at most ``bridge.max_in_flight`` MQTT
messages (received, not yet acknowledged). While Kafka is down it keeps
retrying what it holds, acknowledges nothing and, once full, stops reading
from the broker: the rest waits, acknowledged to the gateways, in the
bridge's session queue at the broker (bounded there by mosquitto's
``max_queued_messages``; see :mod:`engine.telemetry.broker_drops`). If the
broker drops the connection meanwhile (keepalive), the bridge reconnects and
the broker redelivers what was not acknowledged. On SIGTERM the bridge
flushes its partition batches and acknowledges what Kafka took before
disconnecting.

Several bridges can share the subscription (``bridge.shared_group``: MQTT
``$share/<group>/...``); each needs its own ``bridge.client_id``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from engine import mqtt as mqttc
from engine.clock import Clock, SystemClock
from engine.kafka.topics import ensure_topics
from engine.metrics import BridgeMetrics
from engine.settings import Settings
from engine.telemetry.batching import Batch, PartitionBatcher
from engine.telemetry.bridge_http import BridgeHttp
from engine.telemetry.broker_drops import BrokerDropWatch
from engine.telemetry.columns import FixColumns, from_fixes
from engine.telemetry.delivery import KafkaHealth, OrderedLanes, Record, deliver
from engine.telemetry.validation import Parsed, Rejection, parse_payload

log = logging.getLogger(__name__)

FULL_LOG_S = 10.0


@dataclass(eq=False)
class Ticket:
    """One MQTT message: acknowledged once all ``remaining`` records are in Kafka."""

    msg: mqtt.MQTTMessage
    remaining: int
    rejections: list[Rejection] = field(default_factory=list)


def subscriptions(settings: Settings) -> list[tuple[str, int]]:
    prefix, qos, group = settings.mqtt.fixes_topic, settings.mqtt.qos, settings.bridge.shared_group
    topics = [f"{prefix}/#", prefix]
    return [(f"$share/{group}/{t}" if group else t, qos) for t in topics]


class Bridge:
    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 registry: CollectorRegistry | None = None):
        self.settings = settings
        self.clock = clock or SystemClock()
        self.registry = registry or CollectorRegistry()
        self.metrics = BridgeMetrics(self.registry)
        self._queue: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue()
        self._held = 0             # MQTT messages received and not yet acknowledged (the loop's count)
        self._slots = threading.BoundedSemaphore(settings.bridge.max_in_flight)  # the same, for paho's thread
        self._next_full_log = 0.0
        self._accepting = True
        self._tasks: set[asyncio.Task] = set()
        self._disconnected = threading.Event()
        self._unsubacks: set[int] = set()
        self._unsuback = threading.Condition()
        self._health = KafkaHealth(self.metrics, lambda: self._held)
        self._kafka_started = False
        self._mqtt = "connecting"  # "subscribed" once the broker confirms; "lost" after a disconnect

    # -- MQTT side -------------------------------------------------------------
    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:  # paho's network thread
        """Hand the message to the loop; while ``max_in_flight`` are held, wait first.

        Waiting here stops paho reading the socket, so the broker's TCP writes
        back up and the rest stays queued in the bridge's session at the
        broker (mosquitto 2.0.11 ignores its own ``max_inflight_messages``
        once acknowledgements flow: measured, it then sends its whole queue).
        """
        if not self._slots.acquire(blocking=False):
            self._loop.call_soon_threadsafe(self._full)
            while not self._slots.acquire(timeout=0.2):
                if not self._accepting:
                    return  # stopping: left unacknowledged, the broker redelivers it
        self._loop.call_soon_threadsafe(self._receive, msg)

    def _full(self) -> None:
        self.metrics.backpressure.inc()
        now = time.monotonic()
        if now >= self._next_full_log:  # at most one line per FULL_LOG_S
            self._next_full_log = now + FULL_LOG_S
            log.warning("bridge: holding %d MQTT messages (bridge.max_in_flight) not yet in Kafka; not reading "
                        "from the broker until Kafka takes some (the broker keeps the rest in the bridge's session; "
                        "see citywatch_bridge_backpressure_total)", self._held)

    def _on_subscribed(self) -> None:  # paho's network thread
        self._mqtt = "subscribed"
        self.metrics.mqtt_connected.set(1)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self._mqtt = "lost"
        self.metrics.mqtt_connected.set(0)
        self._disconnected.set()
        if self._accepting:
            log.warning("bridge: MQTT connection lost (%s); reconnecting", reason_code)

    def _on_unsubscribe(self, client, userdata, mid, reason_codes=None, properties=None) -> None:
        with self._unsuback:
            self._unsubacks.add(mid)
            self._unsuback.notify_all()

    def _receive(self, msg: mqtt.MQTTMessage) -> None:
        if not self._accepting:  # stopping: left unacknowledged, the broker redelivers it
            self._slots.release()
            return
        self._held += 1
        self.metrics.in_flight.set(self._held)
        self._queue.put_nowait(msg)

    def _release(self) -> None:
        self._held -= 1
        self.metrics.in_flight.set(self._held)
        self._slots.release()

    def _disconnect(self) -> None:
        """Disconnect once the broker has read every acknowledgement sent (blocking: run it in a thread).

        mosquitto drops the packets still unread when a client closes right
        after sending them (measured: of 100 PUBACKs sent just before
        DISCONNECT, one counted), so the acknowledgements are fenced first: an
        UNSUBSCRIBE of a filter never subscribed is answered only after the
        broker has read everything before it.
        """
        rc, mid = self._client.unsubscribe(f"{self.settings.mqtt.fixes_topic}/$citywatch-ack-fence")
        if rc == mqtt.MQTT_ERR_SUCCESS:
            with self._unsuback:
                self._unsuback.wait_for(lambda: mid in self._unsubacks, timeout=5)
                self._unsubacks.discard(mid)
        self._disconnected.clear()
        if self._client.disconnect() == mqtt.MQTT_ERR_SUCCESS:
            self._disconnected.wait(5)
        self._client.loop_stop()

    def _done(self, ticket: Ticket, n: int = 1) -> None:
        ticket.remaining -= n
        if ticket.remaining > 0:
            return
        for r in ticket.rejections:
            self.metrics.rejections_produced.labels(r.reason).inc()
            log.info("bridge: rejected fix on %s: %s (%s)", ticket.msg.topic, r.reason, r.detail)
        if ticket.msg.qos > 0:
            self._client.ack(ticket.msg.mid, ticket.msg.qos)
        self._release()

    # -- Kafka side -------------------------------------------------------------
    async def _attempt(self, record: Record) -> None:
        fut = await self._producer.send(record.topic, record.value, key=record.key, partition=record.partition)
        await fut

    def _track(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_batch(self, batch: Batch[Ticket]) -> None:
        fixes, acks = batch.fixes, [(ticket, len(chunk)) for ticket, chunk in zip(batch.tags, batch.chunks)]
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
            for ticket, n in acks:
                self._done(ticket, n)

        self._lanes.put(batch.partition, Record(self.settings.kafka.topics.fixes, value, batch.key, batch.partition,
                                                delivered))

    def _reject_unencoded(self, ticket: Ticket, n: int, exc: ValueError) -> None:
        """The message whose ``n`` fixes were in a batch that did not encode, whole, to ``fixes.rejected``."""
        msg = ticket.msg
        r = Rejection("internal_error", f"{n} of its fixes were in a batch the bridge could not encode: {exc}"[:300],
                      msg.payload, topic=msg.topic, received_at=self.clock.now())
        ticket.rejections.append(r)
        self._track(deliver(self._attempt, Record(self.settings.kafka.topics.fixes_rejected, r.to_json(), None, None,
                                                  lambda: self._done(ticket, n)), self._health))

    def _handle(self, msg: mqtt.MQTTMessage) -> None:
        """Validate one MQTT message; buffer its fixes, send its rejections."""
        self.metrics.messages.inc()
        now = self.clock.now()
        try:
            parsed = parse_payload(msg.payload, topic=msg.topic, settings=self.settings, now=now)
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the bridge nor lose the message
            log.exception("bridge: validating a message on %s failed", msg.topic)
            parsed = Parsed(FixColumns.empty(), [Rejection("internal_error", f"validation raised {type(exc).__name__}",
                                                           msg.payload, topic=msg.topic, received_at=now)])
        fixes = parsed.fixes
        cols = fixes if isinstance(fixes, FixColumns) else from_fixes(fixes)
        ticket = Ticket(msg, len(cols) + len(parsed.rejections), parsed.rejections)  # one per fix and rejection
        if ticket.remaining == 0:  # nothing in it (an empty array): nothing to wait for
            ticket.remaining = 1
            self._done(ticket)
            return
        rejected_topic = self.settings.kafka.topics.fixes_rejected
        for r in parsed.rejections:
            record = Record(rejected_topic, r.to_json(), r.vehicle_id.encode() if r.vehicle_id else None, None,
                            lambda t=ticket: self._done(t))
            self._track(deliver(self._attempt, record, self._health))
        for full in self._batcher.add(cols, ticket, time.monotonic()):
            self._send_batch(full)

    async def _pump(self) -> None:
        linger = self.settings.bridge.batch_linger_ms / 1000.0
        while True:
            if not self._queue.empty():
                msg: mqtt.MQTTMessage | None = self._queue.get_nowait()
            elif len(self._batcher):
                try:
                    msg = await asyncio.wait_for(self._queue.get(), linger)
                except TimeoutError:
                    msg = None
            else:
                msg = await self._queue.get()
            if msg is not None:
                self._handle(msg)
            for batch in self._batcher.due(time.monotonic()):
                self._send_batch(batch)
            await asyncio.sleep(0)  # let deliveries complete (and acknowledge) during a long backlog

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
        http = BridgeHttp(self.registry, self.readiness, s.web.host, s.bridge.metrics_port)
        await http.start()
        try:
            await self._bridge(stop)
        finally:
            await http.stop()

    async def _bridge(self, stop: asyncio.Event) -> None:
        s = self.settings
        await asyncio.to_thread(ensure_topics, s)
        timeout_ms = max(1000, int(s.bridge.kafka_timeout_s * 1000))
        self._producer = AIOKafkaProducer(bootstrap_servers=s.kafka.servers, acks="all", linger_ms=5,
                                          client_id=s.bridge.client_id, max_request_size=4 * 1024 * 1024,
                                          request_timeout_ms=timeout_ms)
        await self._producer.start()
        partitions = len(await self._producer.partitions_for(s.kafka.topics.fixes))
        self._kafka_started = True
        self._batcher: PartitionBatcher[Ticket] = PartitionBatcher(
            partitions, max_fixes=s.bridge.batch_max_fixes, linger_s=s.bridge.batch_linger_ms / 1000.0)
        self._lanes = OrderedLanes(self._attempt, self._health)
        self._client = mqttc.make_client(s.mqtt, s.bridge.client_id, clean_session=False, manual_ack=True)
        mqttc.subscribe_on_connect(self._client, subscriptions(s), self._on_subscribed)
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.on_unsubscribe = self._on_unsubscribe
        mqttc.start(self._client, s.mqtt)
        drops = BrokerDropWatch(s.mqtt, f"{s.bridge.client_id}-sys", self.metrics)
        drops.start()
        log.info("bridge: %s:%s %s -> kafka %s topic %s (%d partitions), holding at most %d messages",
                 s.mqtt.host, s.mqtt.port, [t for t, _ in subscriptions(s)], s.kafka.bootstrap,
                 s.kafka.topics.fixes, partitions, s.bridge.max_in_flight)
        pump = asyncio.create_task(self._pump())
        try:
            await stop.wait()
        finally:
            drops.stop()
            await self._shutdown(pump)

    async def _shutdown(self, pump: asyncio.Task) -> None:
        """Stop taking messages, flush what is held to Kafka and acknowledge it, then disconnect."""
        self._accepting = False
        pump.cancel()
        try:
            await pump
        except asyncio.CancelledError:
            pass
        while not self._queue.empty():  # queued but not started: process them too
            self._handle(self._queue.get_nowait())
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
        await asyncio.to_thread(self._disconnect)
        if left:
            log.warning("bridge: stopped; %d of %d held messages were not taken by Kafka and stay "
                        "unacknowledged (the broker redelivers them)", left, held)
        else:
            log.info("bridge: stopped; flushed and acknowledged the %d messages it held", held)
