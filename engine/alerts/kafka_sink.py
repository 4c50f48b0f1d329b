"""Alert channel: the Kafka ``alerts`` topic, keyed by subject (the log of record)."""

from __future__ import annotations

from typing import Any

import faust
import orjson

from engine.core.metrics import WorkerMetrics


class KafkaAlertSink:
    """Produces alerts straight through the app's producer (one call each, no per-alert Faust message object)."""

    def __init__(self, app: faust.App, topic: faust.TopicT, metrics: WorkerMetrics, clock):
        self.app, self.topic, self.metrics, self.clock = app, topic, metrics, clock

    async def emit(self, alerts: list[dict[str, Any]], event_ts: dict[str, float]) -> None:
        """Produce each alert and wait until the broker has them all; ``event_ts`` maps alert_id -> the fix's
        epoch time for the latency metric."""
        if not alerts:
            return
        producer, name = self.app.producer, self.topic.get_topic_name()
        futures = [await producer.send(name, str(a["subject"]).encode(), orjson.dumps(a), None, None, None)
                   for a in alerts]
        counted: dict[tuple[str, str], int] = {}
        for a, fut in zip(alerts, futures, strict=True):
            await fut
            labels = (a["kind"], a["severity"])
            counted[labels] = counted.get(labels, 0) + 1
        for (kind, severity), n in counted.items():
            self.metrics.alerts.labels(kind, severity).inc(n)
        now = self.clock.now()
        for a in alerts:
            ts = event_ts.get(a["alert_id"])
            if ts is not None:
                self.metrics.fix_to_alert.observe(max(0.0, now - ts))

    async def flush(self) -> None:
        """Wait until everything produced so far has reached the broker."""
        await self.app.producer.flush()
