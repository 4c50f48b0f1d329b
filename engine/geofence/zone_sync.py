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
from typing import Any

import faust

from engine.core.metrics import WorkerMetrics
from engine.geofence.checker import ZoneChecker
from engine.geofence.index import ZoneIndex
from engine.geofence.settings import GeofenceConfig
from engine.geofence.zone_store import apply_records, build_index
from engine.geofence.zone_topic import ZONES_PARTITION, read_zone_records_at
from engine.kafka.follow import At, Source, follow

log = logging.getLogger(__name__)


def _build(settings: GeofenceConfig, records: dict[str, bytes], metrics: WorkerMetrics) -> ZoneIndex:
    index, errors = build_index(records.items(), tz=settings.city.tz, crs=settings.city.crs)
    for err in errors:
        log.error("zones: skipping invalid zone record %s", err)
    metrics.zone_records_invalid.set(len(errors))
    metrics.zones_loaded.set(len(index))
    return index


def initial_index(settings: GeofenceConfig, metrics: WorkerMetrics) -> tuple[ZoneIndex, dict[str, bytes], int]:
    """Read the zones topic to its end: the index, the records and the offset to follow from."""
    records, offset = asyncio.run(read_zone_records_at(settings.kafka))
    index = _build(settings, records, metrics)
    log.info("zones: %d zones from topic %s", len(index), settings.kafka.topics.zones)
    return index, records, offset


def register(app: faust.App, settings: GeofenceConfig, checker: ZoneChecker, metrics: WorkerMetrics,
             records: dict[str, bytes], offset: int) -> None:
    dirty = False

    def fold(batch: list[Any]) -> None:
        nonlocal dirty
        dirty = apply_records(records, batch) > 0 or dirty

    async def rebuild() -> None:
        """On a quiet fetch after changes: rebuild once for the whole burst."""
        nonlocal dirty
        if not dirty:
            return
        dirty = False
        try:
            index = await asyncio.to_thread(_build, settings, dict(records), metrics)
        except Exception:  # noqa: BLE001 - keep serving the old index
            log.exception("zones: rebuilding the index failed; the previous index stays in use")
            return
        checker.set_index(index)
        log.info("zones: index rebuilt: %d zones", len(index))

    @app.task
    async def follow_zones() -> None:
        source = Source(settings.kafka.topics.zones, At(offset), fold, partitions=(ZONES_PARTITION,))
        await follow(settings.kafka.servers, [source], name="zones", on_idle=rebuild)
