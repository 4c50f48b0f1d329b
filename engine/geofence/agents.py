"""The ``check_zones`` agent: batches of fixes -> tracks table + alerts.

Fixes arrive keyed by vehicle id, so a vehicle's fixes and its entry in the
``tracks`` table live on one partition and one worker. The agent takes
batches (``take_events``) so the geometry runs vectorised; offsets are
committed only after the batch's alerts and state are written (at least
once). Processing is idempotent: a replayed fix is not newer than the stored
one (or its log position says it was processed) and is dropped as a
duplicate, and alert ids are stable. A batch's alerts are produced before its
state is written, so a worker killed in between repeats them (same ids)
rather than losing them behind state that already moved on.

The vehicles' states live as arrays, one fleet per partition, kept durable
in the ``tracks`` table as checkpoint blocks and vehicle records
(engine.geofence.fleet_store). A batch is checked partition by partition
against that partition's fleet. The ``flag_offline_vehicles`` timer scans
the fleets of the partitions this worker owns for moving vehicles gone
silent (engine.geofence.offline). With standby replicas
(``table_standby_replicas``, 1 by default) the local store also holds other
workers' partitions, so table keys are sorted by the partition the
producer's partitioner gives them (the table is written with
``use_partitioner=True``, so its key -> partition mapping is the producer's,
the same as the bridge's for the fixes topic), against the worker's assigned
actives. The scan's "now"
lags the clock by how far the worker is behind in each partition (see
:class:`engine.geofence.offline.Progress`), so catching up after a restart
does not raise a flood of false offline alerts.

The agent, the timers and the signal handlers are methods of one
:class:`ZoneWorker`, built from what it needs; :func:`register` binds them to
the app (a test drives them under Faust's ``test_context()``).

The ``report_lag`` timer turns each batch's Kafka timestamps into ``citywatch_worker_lag_seconds`` and raises
``system.overloaded`` / ``system.overload_cleared`` when it passes ``worker.max_lag_s``
(engine.geofence.overload).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

import faust
import numpy as np
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP

from engine.alerts.kafka_sink import KafkaAlertSink
from engine.core.clock import Clock
from engine.core.metrics import WorkerMetrics
from engine.geofence import overload
from engine.geofence.checker import ZoneChecker
from engine.geofence.fleet_store import FleetStore, is_durable
from engine.geofence.intake import log_position
from engine.geofence.offline import Progress, scan_offline, silent_rows
from engine.geofence.settings import GeofenceConfig
from engine.kafka.topics import Topics
from engine.telemetry.columns import FixColumns, concat
from engine.telemetry.rejection import Rejection
from engine.telemetry.wire import decode_columns

log = logging.getLogger(__name__)


class ZoneWorker:
    """What the agent, the timers and the signal handlers of one worker share; each is a method here.

    Everything it needs is passed in, so a test can build one over a Faust app's ``test_context()`` (or
    without any app) and call its methods; :func:`register` binds them to the app.
    """

    def __init__(self, *, settings: GeofenceConfig, metrics: WorkerMetrics, clock: Clock, checker: ZoneChecker,
                 tracks: faust.Table, owned: _Ownership, sink: KafkaAlertSink, rejected: faust.TopicT,
                 highwater: Callable[[int], int | None], wait_for_zones: Callable[[], Awaitable[None]]):
        self.settings, self.metrics, self.clock, self.checker = settings, metrics, clock, checker
        self.wait_for_zones = wait_for_zones
        self.tracks, self.owned, self.sink, self.rejected, self.highwater = tracks, owned, sink, rejected, highwater
        self.states = FleetStore(tracks, owned.partition_of)
        self.progress = Progress()
        self.lag = overload.PartitionLag()
        host = socket.gethostname()
        self.episode = overload.Overload(settings.worker.max_lag_s, worker_id=f"{host}:{settings.web.port}",
                                         host=host, tz=checker.tz)
        self.table_lock = asyncio.Lock()

    async def reject(self, recs: list[Rejection]) -> None:
        for r in recs:
            await self.rejected.send(key=r.vehicle_id.encode() if r.vehicle_id else None, value=r.to_json())

    async def check_zones(self, stream: faust.StreamT) -> None:
        """The agent: batches of fixes records, checked per partition against that partition's fleet."""
        w = self.settings.worker
        await self.wait_for_zones()   # no fix is checked against a zone set still being read
        async for events in cast(faust.Stream, stream).take_events(w.batch_size, within=w.batch_window_s):
            await self.check_events(events)

    async def check_events(self, events: Sequence[Any]) -> None:
        """One batch of Faust events (records of many fixes each): decode, check, write back, reject."""
        # Per partition: its records' columns and log_position(offset, index in record) of every row
        # (tells replays from late fixes).
        by_part: dict[int, tuple[list[FixColumns], list[np.ndarray]]] = {}
        bad: list[Rejection] = []
        for ev in events:
            m = ev.message
            try:
                decoded = decode_columns(ev.value)
            except Exception as exc:  # noqa: BLE001 - a foreign producer's record
                log.error("check_zones: undecodable record at %s[%s]@%s: %s", m.topic, m.partition, m.offset, exc)
                bad.append(Rejection("bad_record", f"undecodable record at {m.topic}[{m.partition}]@{m.offset}: "
                                     f"{exc}"[:300], bytes(ev.value or b""), topic=m.topic, source="kafka"))
                continue
            if len(decoded):
                parts, bases = by_part.setdefault(m.partition, ([], []))
                parts.append(decoded)
                bases.append(log_position(m.offset, 0) + np.arange(len(decoded), dtype=np.int64))
        batches = [(p, concat(parts), np.concatenate(bases)) for p, (parts, bases) in sorted(by_part.items())]
        try:
            await self.check_batch(batches, bad)
        except Exception:  # noqa: BLE001 - keep the agent alive; the batch is kept on fixes.rejected
            first = events[0].message
            log.exception("check_zones: batch of %d fixes from %s[%s]@%s failed",
                          sum(len(c) for _, c, _ in batches), first.topic, first.partition, first.offset)
            self.metrics.processing_errors.labels("check_zones").inc()
            await self.reject([Rejection("processing_error", "the worker failed on this fix; see its log",
                                         f.to_json(), topic=first.topic, vehicle_id=f.vehicle_id, source="worker")
                               for _, cols, _ in batches for f in cols.fixes()])
        self.lag.read(self.clock.now(),
                      ((ev.message.partition, ev.message.offset, ev.message.timestamp) for ev in events))

    async def check_batch(self, batches: list[tuple[int, FixColumns, np.ndarray]], bad: list[Rejection]) -> None:
        """Check each partition's fixes against its fleet; alerts out, then the states written back."""
        metrics, states = self.metrics, self.states
        for _, cols, _ in batches:
            counts = np.bincount(cols.source_code, minlength=len(cols.sources))
            for source, n in zip(cols.sources, counts.tolist()):  # one increment per source, not per fix
                if n:
                    metrics.fixes_received.labels(source).inc(n)
        async with self.table_lock:
            results = []
            for p, cols, positions in batches:
                result = self.checker.check_columns(cols, states.fleet(p), positions)
                results.append((p, cols, result))
                metrics.zone_checks.inc(result.checked)
                metrics.fixes_late.inc(result.late)
                self.progress.update(p, self.clock.now(), float(cols.ts.max()))
                metrics.batch_size.observe(len(cols))
            alerts = [a for _, _, r in results for a in r.alerts]
            # Alerts before state: a worker killed in between replays the batch and repeats the
            # alerts (same ids) instead of losing them behind a state that already moved on.
            await self.sink.emit(alerts, {a["alert_id"]: f_ts(a) for a in alerts if not a.get("late")})
            alerted = {a.get("vehicle_id") for a in alerts}
            for p, cols, result in results:
                states.put_many(p, [(vid, st, is_durable(result.before.get(vid), st, vid in alerted))
                                    for vid, st in result.states.items()])
                states.moved(p, result.moves.apply(states.fleet(p), cols))
            states.commit()
        await self.reject(bad + [x for _, _, r in results for x in r.rejections])

    async def checkpoint_positions(self) -> None:
        """Position-only updates reach the table at least this often (what a kill -9 can lose)."""
        self.metrics.checkpointed.inc(self.states.flush())

    async def report_lag(self) -> None:
        """The lag gauge, and the overload episode's alerts (engine.geofence.overload)."""
        try:
            now = self.clock.now()
            value = self.lag.value(now, self.owned.partitions(), self.highwater)
            self.metrics.worker_lag.set(value)
            alerts = self.episode.update(now, value)
            for a in alerts:
                log.warning("%s on %s: fixes wait %.1f s before this worker checks them (worker.max_lag_s %s)",
                            a["kind"], a["worker_id"], a["lag_s"], a["max_lag_s"])
            await self.sink.emit(alerts, {})
            self.episode.sent(alerts)
        except Exception:  # noqa: BLE001 - unsent alerts stay in the episode's outbox for the next report
            log.exception("report_lag: failed")
            self.metrics.processing_errors.labels("report_lag").inc()

    async def release_states(self) -> None:
        """Partitions are leaving (a rebalance, a graceful stop): write what is only in memory, then forget it."""
        self.metrics.checkpointed.inc(self.states.release())
        await self.sink.flush()

    async def update_active_vehicles(self) -> None:
        cutoff = self.clock.now() - self.settings.worker.active_window_s
        counts: Counter[str] = Counter()
        for fleet in self.states.fleets():
            counts.update(fleet.active_by_class(cutoff))
        self.metrics.vehicles_active.clear()
        for vclass, n in counts.items():
            self.metrics.vehicles_active.labels(vclass).set(n)
        self.metrics.vehicles_in_memory.set(len(self.states))

    async def flag_offline_vehicles(self) -> None:
        """Moving vehicles gone silent on the partitions this worker owns (engine.geofence.offline)."""
        g = self.settings.geofence
        try:
            async with self.table_lock:   # not between an agent batch's read and write of the same vehicles
                alerts, changed = [], []
                for p, fleet in self.states.owned(self.owned.partitions()):
                    now = self.progress.stream_now(p, self.clock.now())
                    if now is None:  # nothing read from this partition yet: no evidence of silence
                        continue
                    a, c = scan_offline(silent_rows(fleet, now, g), now, g, self.checker.tz)
                    alerts += a
                    changed += [(p, vid, st) for vid, st in c.items()]
                await self.sink.emit(alerts, {})
                for p, vid, st in changed:
                    self.states.put(p, vid, st, durable=True)
                self.states.commit()
        except Exception:  # noqa: BLE001 - the next scan tries again
            log.exception("flag_offline_vehicles: scan failed")
            self.metrics.processing_errors.labels("flag_offline_vehicles").inc()


def tracks_table(app: faust.App, settings: GeofenceConfig) -> faust.Table:
    """The ``tracks`` table: fleet blocks and JSON vehicle records (engine.geofence.fleet_store)."""
    return cast(faust.Table, app.tables.add(_RawKeyTable(
        app, name="tracks", default=None, partitions=settings.kafka.partitions, use_partitioner=True,
        key_type=str, value_type=bytes,
        schema=faust.Schema(key_type=str, value_type=bytes, key_serializer="raw", value_serializer="raw"),
        extra_topic_configs=settings.kafka.table_topic_configs)))


def register(app: faust.App, topics: Topics, settings: GeofenceConfig, metrics: WorkerMetrics, clock: Clock,
             checker: ZoneChecker, *, wait_for_zones: Callable[[], Awaitable[None]]) -> ZoneWorker:
    """Build the worker's :class:`ZoneWorker` and bind its methods to ``app`` as agent, timers and handlers."""
    checker.configure(settings)
    tracks = tracks_table(app, settings)
    owned = _Ownership(app, topics.fixes.get_topic_name(), settings.kafka.partitions)
    zw = ZoneWorker(settings=settings, metrics=metrics, clock=clock, checker=checker, tracks=tracks, owned=owned,
                    sink=KafkaAlertSink(app, topics.alerts, metrics, clock), rejected=topics.fixes_rejected,
                    highwater=lambda p: app.consumer.highwater(TP(owned.topic, p)), wait_for_zones=wait_for_zones)
    app.agent(topics.fixes, name="check_zones")(zw.check_zones)
    app.timer(interval=settings.worker.checkpoint_s, name="checkpoint_positions")(zw.checkpoint_positions)
    app.timer(interval=overload.REPORT_S, name="report_lag")(zw.report_lag)
    app.timer(interval=10.0, name="update_active_vehicles")(zw.update_active_vehicles)
    if settings.geofence.offline_scan_s > 0:
        app.timer(interval=settings.geofence.offline_scan_s, name="flag_offline_vehicles")(zw.flag_offline_vehicles)

    async def release(sender: Any, *args: Any, **kwargs: Any) -> None:
        await zw.release_states()

    # faust types a handler with mypy_extensions argument kinds that no plain async def matches
    app.on_partitions_revoked.connect(cast(Any, release))
    app.on_before_shutdown.connect(cast(Any, release))
    return zw


class _RawKeyTable(faust.Table):
    """A table keyed by vehicle id whose changelog keys are the id's UTF-8 bytes, like the fixes' keys.

    Faust derives a table's key serializer from ``key_type`` (``"json"`` for ``str``) and lets it override the
    schema's. Keys then went out JSON-quoted, so a vehicle's state hashed to another partition than its fixes
    (3 vehicles in 4 with 4 partitions): a worker restored the wrong vehicles' state after a rebalance, and a
    worker standby for that partition replayed its own older writes over newer state.
    """

    def _serializer_from_type(self, typ: Any) -> Any:
        return "raw" if typ is str else super()._serializer_from_type(typ)


class _Ownership:
    """Which ``tracks`` keys belong to the partitions this worker owns (not its standbys)."""

    def __init__(self, app: faust.App, topic: str, partitions: int):
        self.app, self.topic, self.all = app, topic, list(range(partitions))
        self.partitioner: Callable[[bytes, list[int], list[int]], int] = (
            cast(Any, app.conf).producer_partitioner or DefaultPartitioner())

    def partitions(self) -> set[int]:
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == self.topic}

    def partition_of(self, key: str) -> int:
        return self.partitioner(key.encode(), self.all, self.all)


def f_ts(alert: dict[str, Any]) -> float:
    """Event time (epoch seconds) of an alert's fix, from its ISO ``ts``."""
    return datetime.fromisoformat(alert["ts"]).timestamp()

