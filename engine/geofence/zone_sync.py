"""Every worker holds all zones, following the compacted ``zones`` topic.

When the worker starts, :class:`ZoneFeed` reads the whole topic and builds
its index; the ``check_zones`` agent waits for that (:meth:`ZoneFeed.wait`)
before it checks its first fix, so no fix is checked against a half-read
zone set, and building the app stays free of I/O. The same task then
follows the topic from there; when records arrive (``citywatch zones
load/remove``), a new :class:`ZoneIndex` is built off the event loop and
swapped into the checker between batches: no restart, no pause in
processing.

Why not a Faust ``GlobalTable``: on the embedded Tansu broker a worker with a
GlobalTable over this topic never got past the group's partition assignment
(measured). A plain consumer without a group gives every worker the whole
topic, which is what a global table is for.
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


def build(settings: GeofenceConfig, records: dict[str, bytes], metrics: WorkerMetrics) -> ZoneIndex:
    """An index of the valid records; invalid ones are logged and counted (``citywatch_zone_records_invalid``)."""
    index, errors = build_index(records.items(), tz=settings.city.tz, crs=settings.city.crs)
    for err in errors:
        log.error("zones: skipping invalid zone record %s", err)
    metrics.zone_records_invalid.set(len(errors))
    metrics.zones_loaded.set(len(index))
    return index


class ZoneFeed:
    """The zones topic as this worker knows it: its records, and the checker's index built from them."""

    def __init__(self, settings: GeofenceConfig, checker: ZoneChecker, metrics: WorkerMetrics):
        self.settings, self.checker, self.metrics = settings, checker, metrics
        self.records: dict[str, bytes] = {}
        self.loaded = asyncio.Event()
        self.dirty = False

    async def wait(self) -> None:
        """Return once the whole topic has been read into the checker's index."""
        await self.loaded.wait()

    async def load(self) -> int:
        """Read the topic to its end into the checker; the offset to follow it from."""
        self.records, offset = await read_zone_records_at(self.settings.kafka)
        self.checker.set_index(build(self.settings, self.records, self.metrics))
        log.info("zones: %d zones from topic %s", len(self.checker.index), self.settings.kafka.topics.zones)
        self.loaded.set()
        return offset

    def fold(self, batch: list[Any]) -> None:
        self.dirty = apply_records(self.records, batch) > 0 or self.dirty

    async def rebuild(self) -> None:
        """On a quiet fetch after changes: rebuild once for the whole burst."""
        if not self.dirty:
            return
        self.dirty = False
        try:
            index = await asyncio.to_thread(build, self.settings, dict(self.records), self.metrics)
        except Exception:  # noqa: BLE001 - keep serving the old index
            log.exception("zones: rebuilding the index failed; the previous index stays in use")
            return
        self.checker.set_index(index)
        log.info("zones: index rebuilt: %d zones", len(index))

    async def run(self) -> None:
        """Load the topic, then follow it for good."""
        offset = await self.load()
        source = Source(self.settings.kafka.topics.zones, At(offset), self.fold, partitions=(ZONES_PARTITION,))
        await follow(self.settings.kafka.servers, [source], name="zones", on_idle=self.rebuild)


def register(app: faust.App, settings: GeofenceConfig, checker: ZoneChecker, metrics: WorkerMetrics) -> ZoneFeed:
    feed = ZoneFeed(settings, checker, metrics)
    app.task(feed.run)
    return feed
