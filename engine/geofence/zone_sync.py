"""Every worker holds all zones, following the compacted ``zones`` topic.

At start the worker reads the whole topic and builds its index before any
fix is processed (:func:`initial_index`). A background task then follows the
topic from there; when records arrive (``citywatch zones load/remove``), a
new :class:`ZoneIndex` is built off the event loop and swapped into the
checker between batches: no restart, no pause in processing.

Why not a Faust ``GlobalTable``: on the embedded Tansu broker a worker with a
GlobalTable over this topic never got past the group's partition assignment
(measured; see the issue note). A plain consumer without a group gives every
worker the whole topic, which is what a global table is for.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from engine.geofence.checker import ZoneChecker
from engine.geofence.index import ZoneIndex
from engine.geofence.zone_store import apply_records, build_index
from engine.core.metrics import WorkerMetrics
from engine.settings import Settings
from engine.zones_cli import read_zone_records_at

log = logging.getLogger(__name__)


def _build(settings: Settings, records: dict[str, bytes], metrics: WorkerMetrics) -> ZoneIndex:
    index, errors = build_index(records.items(), tz=settings.city.tz, crs=settings.city.crs)
    for err in errors:
        log.error("zones: skipping invalid zone record %s", err)
    metrics.zone_records_invalid.set(len(errors))
    metrics.zones_loaded.set(len(index))
    return index


def initial_index(settings: Settings, metrics: WorkerMetrics) -> tuple[ZoneIndex, dict[str, bytes], int]:
    """Read the zones topic to its end: the index, the records and the offset to follow from."""
    records, offset = asyncio.run(read_zone_records_at(settings))
    index = _build(settings, records, metrics)
    log.info("zones: %d zones from topic %s", len(index), settings.kafka.topics.zones)
    return index, records, offset


def register(app: faust.App, settings: Settings, checker: ZoneChecker, metrics: WorkerMetrics,
             records: dict[str, bytes], offset: int) -> None:
    @app.task
    async def follow_zones() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.servers, group_id=None,
                                    enable_auto_commit=False, fetch_max_wait_ms=200)
        await consumer.start()
        tp = TopicPartition(settings.kafka.topics.zones, 0)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        dirty = False
        try:
            while True:
                got = apply_records(records, (await consumer.getmany(tp, timeout_ms=300)).get(tp, []))
                dirty = dirty or got > 0
                if dirty and not got:  # a quiet fetch after changes: rebuild once for the whole burst
                    dirty = False
                    try:
                        index = await asyncio.to_thread(_build, settings, dict(records), metrics)
                    except Exception:  # noqa: BLE001 - keep serving the old index
                        log.exception("zones: rebuilding the index failed; the previous index stays in use")
                        continue
                    checker.set_index(index)
                    log.info("zones: index rebuilt: %d zones", len(index))
        finally:
            await consumer.stop()
