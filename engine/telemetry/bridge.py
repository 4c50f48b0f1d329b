"""MQTT-to-Kafka bridge: gateways' fixes in, the ``fixes`` topic (or ``fixes.rejected``) out.

The bridge subscribes with a persistent session (QoS 1) and acknowledges an
MQTT message only once Kafka has every record made from it (paho's manual
acks), so a bridge that dies loses nothing: the broker redelivers what was
not acknowledged. Valid fixes are keyed by vehicle id, so a vehicle's fixes
stay on one partition and its state on one worker.
"""

from __future__ import annotations

import asyncio
import logging

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, start_http_server

from engine import mqtt as mqttc
from engine.clock import Clock, SystemClock
from engine.kafka.topics import ensure_topics
from engine.metrics import BridgeMetrics
from engine.settings import Settings
from engine.telemetry.validation import Parsed, Rejection, parse_payload

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0


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

    # -- Kafka side ---------------------------------------------------------
    async def _append(self, records: list[tuple[str, bytes | None, bytes]]) -> list[object]:
        """Hand records to the producer in order; a future per record, or the exception it raised."""
        out: list[object] = []
        for topic, key, value in records:
            try:
                out.append(await self._producer.send(topic, value, key=key))
            except Exception as exc:  # noqa: BLE001 - buffer full / not connected: retried by _confirm
                out.append(exc)
        return out

    async def _confirm(self, msg: mqtt.MQTTMessage, records: list[tuple[str, bytes | None, bytes]],
                       futures: list[object], rejections: list) -> None:
        """Wait until Kafka has every record of ``msg`` (re-sending failures), then ack the MQTT message."""
        try:
            pending = list(zip(records, futures))
            while pending:
                failed = []
                for rec, fut in pending:
                    if isinstance(fut, BaseException):
                        failed.append((rec, fut))
                        continue
                    try:
                        await fut  # type: ignore[misc]
                    except Exception as exc:  # noqa: BLE001
                        failed.append((rec, exc))
                if not failed:
                    break
                self.metrics.kafka_errors.inc(len(failed))
                log.warning("bridge: %d record(s) not accepted by Kafka (%s); retrying in %.0f s",
                            len(failed), failed[0][1], RETRY_DELAY_S)
                await asyncio.sleep(RETRY_DELAY_S)
                recs = [rec for rec, _ in failed]
                pending = list(zip(recs, await self._append(recs)))
            n_fixes = len(records) - len(rejections)
            self.metrics.fixes_produced.inc(n_fixes)
            for r in rejections:
                self.metrics.rejections_produced.labels(r.reason).inc()
                log.info("bridge: rejected fix on %s: %s (%s)", msg.topic, r.reason, r.detail)
            if msg.qos > 0:
                self._client.ack(msg.mid, msg.qos)
        finally:
            self._slots.release()
            self.metrics.in_flight.dec()

    async def _handle(self, msg: mqtt.MQTTMessage) -> None:
        """Validate one MQTT message and append its records to the producer, in arrival order."""
        await self._slots.acquire()
        self.metrics.messages.inc()
        self.metrics.in_flight.inc()
        topics = self.settings.kafka.topics
        now = self.clock.now()
        try:
            parsed = parse_payload(msg.payload, topic=msg.topic, settings=self.settings, now=now)
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the bridge nor lose the message
            log.exception("bridge: validating a message on %s failed", msg.topic)
            parsed = Parsed([], [Rejection("internal_error", f"validation raised {type(exc).__name__}", msg.payload,
                                           topic=msg.topic, received_at=now)])
        records = [(topics.fixes, f.vehicle_id.encode(), f.to_json()) for f in parsed.fixes]
        records += [(topics.fixes_rejected, r.vehicle_id.encode() if r.vehicle_id else None, r.to_json())
                    for r in parsed.rejections]
        futures = await self._append(records)
        task = asyncio.create_task(self._confirm(msg, records, futures, parsed.rejections))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self) -> None:
        while True:
            await self._handle(await self._queue.get())

    # -- lifecycle ------------------------------------------------------------
    async def run(self, stop: asyncio.Event, *, serve_metrics: bool = True) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(ensure_topics, s)
        if serve_metrics:
            start_http_server(s.bridge.metrics_port, addr=s.web.host, registry=self.registry)
        self._producer = AIOKafkaProducer(bootstrap_servers=s.kafka.servers, acks="all", linger_ms=5,
                                          client_id=s.bridge.client_id)
        await self._producer.start()
        self._client = mqttc.make_client(s.mqtt, s.bridge.client_id, clean_session=False, manual_ack=True)
        mqttc.subscribe_on_connect(self._client, [(f"{s.mqtt.fixes_topic}/#", s.mqtt.qos),
                                                  (s.mqtt.fixes_topic, s.mqtt.qos)],
                                   lambda: self.metrics.mqtt_connected.set(1))
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        mqttc.start(self._client, s.mqtt)
        log.info("bridge: %s:%s/%s/# -> kafka %s topic %s", s.mqtt.host, s.mqtt.port, s.mqtt.fixes_topic,
                 s.kafka.bootstrap, s.kafka.topics.fixes)
        pump = asyncio.create_task(self._pump())
        try:
            await stop.wait()
        finally:
            await self._shutdown(pump)

    async def _shutdown(self, pump: asyncio.Task) -> None:
        """Stop taking messages, flush what is in flight to Kafka and ack it, then disconnect."""
        self._accepting = False
        pump.cancel()
        while not self._queue.empty():  # queued but not started: process them too
            await self._handle(self._queue.get_nowait())
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self._producer.stop()
        self._client.disconnect()
        self._client.loop_stop()
        log.info("bridge: stopped")
