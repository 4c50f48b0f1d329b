"""Alert channel: the Kafka ``alerts`` topic, keyed by subject (the log of record)."""

from __future__ import annotations

from typing import Any

import faust
import orjson

from engine.metrics import WorkerMetrics


class KafkaAlertSink:
    def __init__(self, topic: faust.TopicT, metrics: WorkerMetrics, clock):
        self.topic, self.metrics, self.clock = topic, metrics, clock

    async def emit(self, alerts: list[dict[str, Any]], event_ts: dict[str, float]) -> None:
        """Produce each alert; ``event_ts`` maps alert_id -> the fix's epoch time for the latency metric."""
        futures = []
        for a in alerts:
            futures.append(await self.topic.send(key=str(a["subject"]).encode(), value=orjson.dumps(a)))
        for a, fut in zip(alerts, futures):
            await fut
            self.metrics.alerts.labels(a["kind"], a["severity"]).inc()
            ts = event_ts.get(a["alert_id"])
            if ts is not None:
                self.metrics.fix_to_alert.observe(max(0.0, self.clock.now() - ts))
