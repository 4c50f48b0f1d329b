"""Alert channel: MQTT ``{alerts_topic}/{kind}/{subject}`` at QoS 1, fed from the Kafka ``alerts`` topic.

The ``deliver_alerts`` agent reads alerts in Kafka order and publishes them
through one asyncio MQTT client (:class:`engine.mqtt_bulk.Publisher`: the
publishes of one turn of the event loop go out in one write, PUBACKs are read
in bulk) with up to ``WINDOW`` alerts awaiting the broker's PUBACK at once.
The stream is read with manual acks: a Kafka offset is acknowledged (and so
committed) only once the broker has acknowledged that alert and every one
before it. A worker that stops or dies with alerts in flight leaves them
uncommitted, and whoever reads the partition next delivers them again (same
``alert_id``).

While the broker is down the publishes wait, in order, and go out when the
client has reconnected (every unacknowledged one is sent again after a
reconnect), so each vehicle's alerts (one partition: the topic is keyed by
subject) are delivered in order and nothing is skipped; a duplicate can
follow a reconnect. The backlog stays in Kafka:
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

from engine.alerts.models import mqtt_topic
from engine.metrics import WorkerMetrics
from engine.mqtt_bulk import Publisher
from engine.settings import Settings

log = logging.getLogger(__name__)

WINDOW = 500          # alerts published and awaiting PUBACK
REPORT_S = 0.5        # how often the backlog metrics are refreshed
CHANNEL = "mqtt"


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


def register(app: faust.App, alerts_topic: faust.TopicT, settings: Settings, metrics: WorkerMetrics) -> None:
    @app.agent(alerts_topic, name="deliver_alerts")
    async def deliver_alerts(stream):
        def lost(reason: str) -> None:
            log.warning("deliver_alerts: MQTT connection lost (%s); alerts wait in Kafka until the broker is back "
                        "(citywatch_alert_delivery_backlog)", reason)

        pub = Publisher(settings.mqtt, f"{settings.worker.app_id}-alerts-{app.conf.web_port}", on_lost=lost,
                        on_connected=lambda: log.info("deliver_alerts: connected to the MQTT broker; delivering"))
        delivered = metrics.alerts_delivered.labels(CHANNEL)
        failures = metrics.alert_delivery_failures.labels(CHANNEL)
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

        def count(fut: asyncio.Future[None]) -> None:
            if not fut.cancelled():
                delivered.inc()

        helpers = [asyncio.create_task(pub.run()), asyncio.create_task(acknowledge()),
                   asyncio.create_task(report())]
        try:
            async for event in events.events():
                await window.acquire()
                m = event.message
                backlog.read(m.tp, m.offset)
                try:
                    alert = orjson.loads(event.value)
                    fut = pub.publish(mqtt_topic(settings.mqtt.alerts_topic, alert), event.value)
                    fut.add_done_callback(count)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    log.error("deliver_alerts: undeliverable record at %s[%s]@%s: %s", m.topic, m.partition,
                              m.offset, exc)
                    failures.inc()
                    fut = asyncio.get_running_loop().create_future()
                    fut.set_result(None)  # skipped in its place, so later offsets can be committed
                in_flight.append((event, fut, time.monotonic()))
                wake.set()
        finally:
            for h in helpers[1:]:
                h.cancel()
            try:  # what is not acknowledged stays uncommitted in Kafka: the next reader delivers it
                await pub.stop(f"{settings.mqtt.alerts_topic}/$citywatch-fence", timeout=2.0)
            finally:
                helpers[0].cancel()
                pub.cancel_pending()
