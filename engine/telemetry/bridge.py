"""MQTT-to-Kafka bridge: gateways' fixes in, the ``fixes`` topic (or ``fixes.rejected``) out.

The bridge subscribes with a persistent session (QoS 1) and acknowledges an
MQTT message only once Kafka has every record made from it (paho's manual
acks), so a bridge that dies loses nothing: the broker redelivers what was
not acknowledged. Valid fixes are grouped by the partition their vehicle
hashes to and produced as one message per partition batch (bounded by
``bridge.batch_max_fixes`` and ``bridge.batch_linger_ms``), so a vehicle's
fixes and state stay on one partition and one worker. One coroutine does all
appending, so each vehicle's fixes reach Kafka in arrival order.

Several bridges can share the subscription (``bridge.shared_group``: MQTT
``$share/<group>/...``); each needs its own ``bridge.client_id``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, start_http_server

from engine import mqtt as mqttc
from engine.clock import Clock, SystemClock
from engine.kafka.topics import ensure_topics
from engine.metrics import BridgeMetrics
from engine.settings import Settings
from engine.telemetry.batching import Batch, PartitionBatcher
from engine.telemetry.validation import Parsed, Rejection, parse_payload

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0


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
        self._slots = asyncio.Semaphore(settings.bridge.max_in_flight)
        self._tasks: set[asyncio.Task] = set()
        self._accepting = True

    # -- MQTT side (paho's network thread) ---------------------------------
    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if self._accepting:  # after stop, leave it unacknowledged: the broker redelivers it
            self._loop.call_soon_threadsafe(self._queue.put_nowait, msg)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.metrics.mqtt_connected.set(0)
        if self._accepting:
            log.warning("bridge: MQTT connection lost (%s); reconnecting", reason_code)

    def _done(self, ticket: Ticket, n: int = 1) -> None:
        ticket.remaining -= n
        if ticket.remaining > 0:
            return
        for r in ticket.rejections:
            self.metrics.rejections_produced.labels(r.reason).inc()
            log.info("bridge: rejected fix on %s: %s (%s)", ticket.msg.topic, r.reason, r.detail)
        if ticket.msg.qos > 0:
            self._client.ack(ticket.msg.mid, ticket.msg.qos)
        self._slots.release()
        self.metrics.in_flight.dec()

    # -- Kafka side ---------------------------------------------------------
    async def _send(self, topic: str, value: bytes, key: bytes | None, partition: int | None = None) -> object:
        """Append one record to the producer; its delivery future, or the exception raised."""
        try:
            return await self._producer.send(topic, value, key=key, partition=partition)
        except Exception as exc:  # noqa: BLE001 - buffer full / not connected: retried by _deliver
            return exc

    def _track(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, fut: object, resend, on_success) -> None:  # type: ignore[no-untyped-def]
        """Wait for a record's delivery, re-sending until Kafka has it; then ``on_success()``."""
        while True:
            try:
                if isinstance(fut, BaseException):
                    raise fut
                await fut  # type: ignore[misc]
                break
            except Exception as exc:  # noqa: BLE001
                self.metrics.kafka_errors.inc()
                log.warning("bridge: Kafka did not take a record (%s); retrying in %.0f s", exc, RETRY_DELAY_S)
                await asyncio.sleep(RETRY_DELAY_S)
                fut = await resend()
        on_success()

    async def _send_batch(self, batch: Batch[Ticket]) -> None:
        topic, payload = self.settings.kafka.topics.fixes, batch.payload()

        def resend():  # type: ignore[no-untyped-def]
            return self._send(topic, payload, batch.key, batch.partition)

        def success() -> None:
            self.metrics.fixes_produced.inc(len(batch.values))
            self.metrics.batches_produced.inc()
            for ticket in batch.tags:
                self._done(ticket)

        self._track(self._deliver(await resend(), resend, success))

    async def _handle(self, msg: mqtt.MQTTMessage) -> None:
        """Validate one MQTT message; buffer its fixes, send its rejections."""
        await self._slots.acquire()
        self.metrics.messages.inc()
        self.metrics.in_flight.inc()
        now = self.clock.now()
        try:
            parsed = parse_payload(msg.payload, topic=msg.topic, settings=self.settings, now=now)
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the bridge nor lose the message
            log.exception("bridge: validating a message on %s failed", msg.topic)
            parsed = Parsed([], [Rejection("internal_error", f"validation raised {type(exc).__name__}", msg.payload,
                                           topic=msg.topic, received_at=now)])
        ticket = Ticket(msg, len(parsed.fixes) + len(parsed.rejections), parsed.rejections)
        rejected_topic = self.settings.kafka.topics.fixes_rejected
        for r in parsed.rejections:
            key, value = (r.vehicle_id.encode() if r.vehicle_id else None), r.to_json()

            def resend(key=key, value=value):  # type: ignore[no-untyped-def]
                return self._send(rejected_topic, value, key)

            self._track(self._deliver(await resend(), resend, lambda t=ticket: self._done(t)))
        mono = time.monotonic()
        for f in parsed.fixes:
            full = self._batcher.add(f.vehicle_id.encode(), f.to_json(), ticket, mono)
            if full is not None:
                await self._send_batch(full)

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
                await self._handle(msg)
            for batch in self._batcher.due(time.monotonic()):
                await self._send_batch(batch)

    # -- lifecycle ------------------------------------------------------------
    async def run(self, stop: asyncio.Event, *, serve_metrics: bool = True) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(ensure_topics, s)
        if serve_metrics:
            start_http_server(s.bridge.metrics_port, addr=s.web.host, registry=self.registry)
        self._producer = AIOKafkaProducer(bootstrap_servers=s.kafka.servers, acks="all", linger_ms=5,
                                          client_id=s.bridge.client_id, max_request_size=4 * 1024 * 1024)
        await self._producer.start()
        partitions = len(await self._producer.partitions_for(s.kafka.topics.fixes))
        self._batcher: PartitionBatcher[Ticket] = PartitionBatcher(
            partitions, max_fixes=s.bridge.batch_max_fixes, linger_s=s.bridge.batch_linger_ms / 1000.0)
        self._client = mqttc.make_client(s.mqtt, s.bridge.client_id, clean_session=False, manual_ack=True)
        mqttc.subscribe_on_connect(self._client, subscriptions(s), lambda: self.metrics.mqtt_connected.set(1))
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        mqttc.start(self._client, s.mqtt)
        log.info("bridge: %s:%s %s -> kafka %s topic %s (%d partitions)", s.mqtt.host, s.mqtt.port,
                 [t for t, _ in subscriptions(s)], s.kafka.bootstrap, s.kafka.topics.fixes, partitions)
        pump = asyncio.create_task(self._pump())
        try:
            await stop.wait()
        finally:
            await self._shutdown(pump)

    async def _shutdown(self, pump: asyncio.Task) -> None:
        """Stop taking messages, flush what is buffered to Kafka and ack it, then disconnect."""
        self._accepting = False
        pump.cancel()
        try:
            await pump
        except asyncio.CancelledError:
            pass
        while not self._queue.empty():  # queued but not started: process them too
            await self._handle(self._queue.get_nowait())
        for batch in self._batcher.drain():
            await self._send_batch(batch)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self._producer.stop()
        self._client.disconnect()
        self._client.loop_stop()
        log.info("bridge: stopped")
