"""Alert channel: MQTT ``{alerts_topic}/{kind}/{subject}`` at QoS 1, fed from the Kafka ``alerts`` topic.

The ``deliver_alerts`` agent publishes each alert and waits for the broker's
acknowledgement before the Kafka offset is committed. While the broker is
down it retries the same alert (so a partition's alerts stay in order) and
the backlog stays in Kafka; ``citywatch_alert_delivery_failures_total``
shows the attempts.
"""

from __future__ import annotations

import asyncio
import logging

import faust
import orjson

from engine import mqtt as mqttc
from engine.alerts.models import mqtt_topic
from engine.metrics import WorkerMetrics
from engine.settings import Settings

log = logging.getLogger(__name__)

RETRY_DELAY_S = 1.0


def register(app: faust.App, alerts_topic: faust.TopicT, settings: Settings, metrics: WorkerMetrics) -> None:
    state: dict[str, mqttc.AsyncPublisher] = {}

    async def publisher() -> mqttc.AsyncPublisher:
        if "pub" not in state:
            client = mqttc.make_client(settings.mqtt, f"{settings.worker.app_id}-alerts-{app.conf.web_port}")
            mqttc.start(client, settings.mqtt)
            state["pub"] = mqttc.AsyncPublisher(client, asyncio.get_running_loop())
        return state["pub"]

    @app.agent(alerts_topic, name="deliver_alerts")
    async def deliver_alerts(stream):
        pub = await publisher()
        async for event in stream.events():
            try:
                alert = orjson.loads(event.value)
                topic = mqtt_topic(settings.mqtt.alerts_topic, alert)
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                m = event.message
                log.error("deliver_alerts: undeliverable record at %s[%s]@%s: %s", m.topic, m.partition, m.offset, exc)
                metrics.alert_delivery_failures.labels("mqtt").inc()
                continue
            while True:
                try:
                    await pub.publish(topic, event.value, qos=1)
                    metrics.alerts_delivered.labels("mqtt").inc()
                    break
                except ConnectionError as exc:
                    metrics.alert_delivery_failures.labels("mqtt").inc()
                    log.warning("deliver_alerts: %s; retrying alert %s", exc, alert.get("alert_id"))
                    await asyncio.sleep(RETRY_DELAY_S)
