"""Telemetry agents: count what was rejected, wherever it was rejected.

Every rejection (the bridge's and the worker's) is written to
``fixes.rejected``; this agent counts them from there, so
``citywatch_fixes_rejected_total{reason}`` is complete on the workers and
adds up across them.
"""

from __future__ import annotations

import logging

import faust
import orjson

from engine.core.metrics import WorkerMetrics

log = logging.getLogger(__name__)


def register(app: faust.App, rejected_topic: faust.TopicT, metrics: WorkerMetrics) -> None:
    @app.agent(rejected_topic, name="count_rejections")
    async def count_rejections(stream):
        async for event in stream.events():
            try:
                rec = orjson.loads(event.value)
                reason, source = str(rec.get("reason", "unknown")), str(rec.get("source", "unknown"))
            except (orjson.JSONDecodeError, AttributeError):
                m = event.message
                log.error("count_rejections: unreadable record at %s[%s]@%s", m.topic, m.partition, m.offset)
                reason, source = "unreadable_rejection", "unknown"
            metrics.fixes_rejected.labels(reason).inc()
            if source != "worker":  # the worker's own rejections were already counted as received
                metrics.fixes_received.labels(source).inc()
