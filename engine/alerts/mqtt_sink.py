"""Alert channel: MQTT ``{alerts_topic}/{kind}/{subject}`` at QoS 1, fed from the Kafka ``alerts`` topic.

The ``deliver_alerts`` agent reads alerts in Kafka order and publishes them
through one paho client with up to ``WINDOW`` alerts awaiting the broker's
PUBACK at once. The stream is read with manual acks: a Kafka offset is
acknowledged (and so committed) only once the broker has acknowledged that
alert and every one before it. A worker that stops or dies with alerts in
flight leaves them uncommitted, and whoever reads the partition next delivers
them again (same ``alert_id``).

While the broker is down paho keeps the publishes queued, in order, and
sends them when it reconnects (it re-sends every unacknowledged QoS 1
message after a reconnect), so each vehicle's alerts (one partition: the
topic is keyed by subject) are delivered in order and nothing is skipped; a
duplicate can follow a reconnect. The backlog stays in Kafka:
``citywatch_alert_delivery_backlog`` counts the alerts on this worker's
partitions not yet delivered, ``citywatch_alert_delivery_lag_seconds`` is
how long the oldest one in flight has waited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import faust
import orjson
import paho.mqtt.client as mqtt

from engine import mqtt as mqttc
from engine.alerts.models import mqtt_topic
from engine.metrics import WorkerMetrics
from engine.settings import Settings

log = logging.getLogger(__name__)

WINDOW = 500          # alerts published and awaiting PUBACK (paho's in-flight limit is 1000)
REPORT_S = 0.5        # how often the backlog metrics are refreshed
CHANNEL = "mqtt"
RETRY_DELAY_S = 1.0


class AckPublisher:
    """QoS 1 publishes whose futures resolve on PUBACK, however long the broker is away."""

    def __init__(self, client: mqtt.Client, loop: asyncio.AbstractEventLoop):
        self.client, self.loop = client, loop
        self._pending: dict[int, asyncio.Future[None]] = {}
        client.on_publish = self._on_publish

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None) -> None:  # paho's thread
        self.loop.call_soon_threadsafe(self._resolve, mid)

    def _resolve(self, mid: int) -> None:
        # Runs on the loop, so after publish() registered the future (publish() does not yield).
        fut = self._pending.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def publish(self, topic: str, payload: bytes) -> asyncio.Future[None]:
        """Queue one publish (sent now, or after the reconnect if the broker is away)."""
        info = self.client.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise ConnectionError(f"MQTT publish refused: {mqtt.error_string(info.rc)}")
        fut = self.loop.create_future()
        self._pending[info.mid] = fut
        return fut


class Backlog:
    """Per partition: the next offset to deliver; reported against the consumer's high watermark."""

    def __init__(self, app: faust.App, metrics: WorkerMetrics):
        self.app, self.metrics = app, metrics
        self.next_offset: dict[Any, int] = {}
        self.oldest_read: float | None = None

    def read(self, tp: Any, offset: int) -> None:
        self.next_offset.setdefault(tp, offset)

    def delivered(self, tp: Any, offset: int) -> None:
        self.next_offset[tp] = offset + 1

    def report(self) -> None:
        consumer = self.app.consumer
        owned = consumer.assignment()
        total = 0
        for tp, nxt in list(self.next_offset.items()):
            if tp not in owned:
                del self.next_offset[tp]
                continue
            hw = consumer.highwater(tp)
            if hw is not None:
                total += max(0, hw - nxt)
        self.metrics.alert_delivery_backlog.labels(CHANNEL).set(total)
        age = 0.0 if self.oldest_read is None else time.monotonic() - self.oldest_read
        self.metrics.alert_delivery_lag.labels(CHANNEL).set(age)


def _log_disconnect(client, userdata, flags, reason_code, properties=None) -> None:  # paho's thread
    if reason_code.is_failure:
        log.warning("deliver_alerts: MQTT connection lost (%s); alerts wait in Kafka until the broker is back "
                    "(citywatch_alert_delivery_backlog)", reason_code)


def _log_connect(client, userdata, flags, reason_code, properties=None) -> None:
    if reason_code.is_failure:
        log.warning("deliver_alerts: MQTT broker refused the connection: %s", reason_code)
    else:
        log.info("deliver_alerts: connected to the MQTT broker; delivering")


def register(app: faust.App, alerts_topic: faust.TopicT, settings: Settings, metrics: WorkerMetrics) -> None:
    @app.agent(alerts_topic, name="deliver_alerts")
    async def deliver_alerts(stream):
        client = mqttc.make_client(settings.mqtt, f"{settings.worker.app_id}-alerts-{app.conf.web_port}")
        pub = AckPublisher(client, asyncio.get_running_loop())
        client.on_disconnect = _log_disconnect
        client.on_connect = _log_connect
        mqttc.start(client, settings.mqtt)
        events = stream.noack()
        backlog = Backlog(app, metrics)
        window = asyncio.Semaphore(WINDOW)
        in_flight: deque[tuple[Any, asyncio.Future[None], float]] = deque()
        wake = asyncio.Event()

        async def acknowledge() -> None:
            """Ack Kafka events in order as their PUBACKs arrive."""
            while True:
                while not in_flight:
                    backlog.oldest_read = None
                    wake.clear()
                    await wake.wait()
                event, fut, read_at = in_flight[0]
                backlog.oldest_read = read_at
                await fut
                in_flight.popleft()
                window.release()
                m = event.message
                try:
                    await events.ack(event)
                except Exception:  # noqa: BLE001 - not committed: delivered again after a restart (same id)
                    log.exception("deliver_alerts: acking %s[%s]@%s failed", m.topic, m.partition, m.offset)
                backlog.delivered(m.tp, m.offset)

        async def report() -> None:
            while True:
                try:
                    backlog.report()
                except Exception:  # noqa: BLE001 - a metric must not stop delivery
                    log.debug("deliver_alerts: backlog report failed", exc_info=True)
                await asyncio.sleep(REPORT_S)

        async def publish(topic: str, payload: bytes) -> asyncio.Future[None]:
            while True:
                try:
                    return pub.publish(topic, payload)
                except ConnectionError as exc:  # paho refused to queue it (not expected with an unbounded queue)
                    metrics.alert_delivery_failures.labels(CHANNEL).inc()
                    log.warning("deliver_alerts: %s; retrying in %.0f s", exc, RETRY_DELAY_S)
                    await asyncio.sleep(RETRY_DELAY_S)

        helpers = [asyncio.create_task(acknowledge()), asyncio.create_task(report())]
        try:
            async for event in events.events():
                await window.acquire()
                m = event.message
                backlog.read(m.tp, m.offset)
                try:
                    alert = orjson.loads(event.value)
                    topic = mqtt_topic(settings.mqtt.alerts_topic, alert)
                    fut = await publish(topic, event.value)
                    fut.add_done_callback(lambda f: f.cancelled() or metrics.alerts_delivered.labels(CHANNEL).inc())
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    log.error("deliver_alerts: undeliverable record at %s[%s]@%s: %s", m.topic, m.partition,
                              m.offset, exc)
                    metrics.alert_delivery_failures.labels(CHANNEL).inc()
                    fut = asyncio.get_running_loop().create_future()
                    fut.set_result(None)  # skipped in its place, so later offsets can be committed
                in_flight.append((event, fut, time.monotonic()))
                wake.set()
        finally:
            for h in helpers:
                h.cancel()
            client.disconnect()
            client.loop_stop()
