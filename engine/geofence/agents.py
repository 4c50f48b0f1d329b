"""The ``check_zones`` agent: batches of fixes -> tracks table + alerts.

Fixes arrive keyed by vehicle id, so a vehicle's fixes and its entry in the
``tracks`` table live on one partition and one worker. The agent takes
batches (``take_events``) so the geometry runs vectorised; offsets are
committed only after the batch's alerts and state are written (at least
once). Processing is idempotent: a replayed fix is not newer than the stored
one and is dropped as a duplicate, and alert ids are stable.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import faust

from engine.alerts.kafka_sink import KafkaAlertSink
from engine.clock import Clock
from engine.geofence.checker import ZoneChecker
from engine.metrics import WorkerMetrics
from engine.settings import Settings
from engine.telemetry.models import Fix, decode_fixes
from engine.telemetry.validation import Rejection
from engine.topics import Topics

log = logging.getLogger(__name__)


def register(app: faust.App, topics: Topics, settings: Settings, metrics: WorkerMetrics, clock: Clock,
             checker: ZoneChecker) -> faust.Table:
    tracks = app.Table("tracks", default=None, partitions=settings.kafka.partitions, use_partitioner=True,
                       schema=faust.Schema(key_type=str, key_serializer="raw", value_serializer="json"))
    sink = KafkaAlertSink(topics.alerts, metrics, clock)
    last_seen: dict[str, tuple[str, float]] = {}

    async def reject(recs: list[Rejection]) -> None:
        for r in recs:
            await topics.fixes_rejected.send(key=r.vehicle_id.encode() if r.vehicle_id else None,
                                             value=r.to_json())

    @app.agent(topics.fixes, name="check_zones")
    async def check_zones(stream):
        w = settings.worker
        async for events in stream.take_events(w.batch_size, within=w.batch_window_s):
            fixes: list[Fix] = []
            bad: list[Rejection] = []
            for ev in events:
                try:
                    fixes.extend(decode_fixes(ev.value))
                except Exception as exc:  # noqa: BLE001 - a foreign producer's record
                    m = ev.message
                    log.error("check_zones: undecodable record at %s[%s]@%s: %s", m.topic, m.partition, m.offset, exc)
                    bad.append(Rejection("bad_record", f"undecodable record at {m.topic}[{m.partition}]@{m.offset}: "
                                         f"{exc}"[:300], bytes(ev.value or b""), topic=m.topic, source="kafka"))
            try:
                for f in fixes:
                    metrics.fixes_received.labels(f.source).inc()
                states = {f.vehicle_id: tracks.get(f.vehicle_id) for f in fixes}
                result = checker.check(fixes, states)
                metrics.zone_checks.inc(result.checked)
                metrics.batch_size.observe(len(fixes))
                for vid, st in result.states.items():
                    tracks[vid] = st
                    last_seen[vid] = (st["class"], st["ts"])
                event_ts = {a["alert_id"]: f_ts(a) for a in result.alerts}
                await sink.emit(result.alerts, event_ts)
                await reject(bad + result.rejections)
            except Exception:  # noqa: BLE001 - keep the agent alive; the batch is kept on fixes.rejected
                first = events[0].message
                log.exception("check_zones: batch of %d fixes from %s[%s]@%s failed", len(fixes), first.topic,
                              first.partition, first.offset)
                metrics.processing_errors.labels("check_zones").inc()
                await reject([Rejection("processing_error", "the worker failed on this fix; see its log",
                                        f.to_json(), topic=first.topic, vehicle_id=f.vehicle_id, source="worker")
                              for f in fixes])

    @app.timer(interval=10.0)
    async def update_active_vehicles() -> None:
        cutoff = clock.now() - settings.worker.active_window_s
        counts: dict[str, int] = {}
        for vid, (vclass, ts) in list(last_seen.items()):
            if ts < cutoff:
                del last_seen[vid]
            else:
                counts[vclass] = counts.get(vclass, 0) + 1
        metrics.vehicles_active.clear()
        for vclass, n in counts.items():
            metrics.vehicles_active.labels(vclass).set(n)

    return tracks


def f_ts(alert: dict[str, Any]) -> float:
    """Event time (epoch seconds) of an alert's fix, from its ISO ``ts``."""
    return datetime.fromisoformat(alert["ts"]).timestamp()

