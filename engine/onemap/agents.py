"""Wiring of the one-map into a worker: the topic followers, the push tick and the routes.

Each follower decodes its topic's records into the view. A record the view
cannot use is skipped (never fatal): logged with topic, partition and offset
(never its content: fixes are GPS tracks) and counted in
``citywatch_onemap_records_skipped_total{topic,reason}``. It is not written
to a ``*.rejected`` topic: the records were accepted by their producers, and
every worker reads them, so each would write the same rejection again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

import faust
import orjson

from engine.core.clock import Clock
from engine.core.metrics import WorkerMetrics
from engine.kafka.follow import Source, follow
from engine.onemap import api
from engine.onemap.models import LEVELS, InvalidRecord
from engine.onemap.push import Hub
from engine.onemap.settings import OneMapConfig
from engine.onemap.view import OneMapView
from engine.onemap.zones import display_zones, grid_zones
from engine.telemetry.wire import decode_fixes
from engine.web.guard import app_guard

log = logging.getLogger(__name__)

DECODE_ERRORS = (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError)


def tasks_topic(settings: OneMapConfig) -> str:
    """``onemap.tasks_topic``, else the tasks service's topic (``tasks.topics.tasks``), else ``tasks``."""
    tasks = getattr(settings, "tasks", None)  # a build without the tasks service has no such settings
    return settings.onemap.tasks_topic or getattr(getattr(tasks, "topics", None), "tasks", "tasks")


def grid_dir(settings: OneMapConfig) -> str:
    """The grid files the reports service routes by (``reports.grid_dir``), else ``zones/grid``."""
    return getattr(getattr(settings, "reports", None), "grid_dir", "zones/grid")


def page_config(settings: OneMapConfig) -> dict[str, Any]:
    m = settings.onemap
    return {"city": {"name": settings.city.name, "tz": settings.city.tz, "bounds": asdict(settings.city.bounds)},
            "tile_url": m.tile_url, "tile_attribution": m.tile_attribution, "tile_max_zoom": m.tile_max_zoom,
            "push_interval_ms": m.push_interval_ms, "levels": list(LEVELS)}


class Feeds:
    """Record batches of each topic -> the view."""

    def __init__(self, view: OneMapView, settings: OneMapConfig, metrics: WorkerMetrics | None = None):
        self.view, self.settings, self.metrics = view, settings, metrics
        self.zone_records: dict[str, bytes] = {}

    def fixes(self, records: list[Any]) -> None:
        for r in records:
            try:
                self.view.apply_fixes(decode_fixes(r.value))
            except DECODE_ERRORS as exc:  # the bridge wrote it, so this is a bug or a foreign producer
                self._skipped("fixes", "bad_record", r, exc)

    def alerts(self, records: list[Any]) -> None:
        for r in records:
            try:
                self.view.apply_alert(orjson.loads(r.value))
            except InvalidRecord as exc:
                self._skipped("alerts", exc.reason, r, exc)
            except DECODE_ERRORS as exc:
                self._skipped("alerts", "bad_json", r, exc)

    def tasks(self, records: list[Any]) -> None:
        for r in records:
            key = r.key.decode("utf-8", "replace") if r.key else None
            try:
                self.view.apply_task(key, None if r.value is None else orjson.loads(r.value))
            except InvalidRecord as exc:
                self._skipped("tasks", exc.reason, r, exc)
            except DECODE_ERRORS as exc:
                self._skipped("tasks", "bad_json", r, exc)

    async def zones(self, records: list[Any]) -> None:
        for r in records:
            key = r.key.decode("utf-8", "replace") if r.key else ""
            if r.value is None:
                self.zone_records.pop(key, None)
            else:
                self.zone_records[key] = r.value
        c = self.settings.city
        zones, errors = await asyncio.to_thread(display_zones, sorted(self.zone_records.items()), tz=c.tz, crs=c.crs)
        for err in errors:
            log.warning("onemap: zone record not drawn: %s", err)
        self.view.set_zones(zones)

    async def grid(self, path: str) -> None:
        zones, errors = await asyncio.to_thread(grid_zones, path)
        for err in errors:
            log.warning("onemap: grid boundary not drawn: %s", err)
        log.info("onemap: %d grid boundaries from %s", len(zones), path)
        self.view.set_grid(zones)

    def _skipped(self, topic: str, reason: str, r: Any, exc: Exception) -> None:
        if self.metrics is not None:
            self.metrics.onemap_records_skipped.labels(topic, reason).inc()
        detail = exc if isinstance(exc, InvalidRecord) else type(exc).__name__  # a message could quote a position
        log.warning("onemap: skipped a record of %s partition %s offset %s (%s): %s",
                    r.topic, r.partition, r.offset, reason, detail)


def register(app: faust.App, settings: OneMapConfig, metrics: WorkerMetrics, clock: Clock) -> OneMapView | None:
    """The one-map on this worker (nothing when ``onemap.enabled`` is false); returns its view."""
    m = settings.onemap
    if not m.enabled:
        return None
    view = OneMapView(m, clock=clock, filters=settings.filters, page_config=page_config(settings))
    hub = Hub(view, metrics)
    feeds = Feeds(view, settings, metrics)
    servers, topics = settings.kafka.servers, settings.kafka.topics

    def follower(topic: str, handle: Any, start: str | float) -> None:
        async def run() -> None:
            await follow(servers, [Source(topic, start, handle)], name="onemap", clock=clock, max_records=5000,
                         topic_wait_s=5.0, retry_fetch_errors=True)
        run.__name__ = run.__qualname__ = f"onemap_follow_{topic}"  # one Faust task name per topic
        app.task(run)

    follower(topics.zones, feeds.zones, "beginning")
    follower(tasks_topic(settings), feeds.tasks, "beginning")
    follower(topics.alerts, feeds.alerts, m.alerts_history_s)
    follower(topics.fixes, feeds.fixes, m.fixes_history_s)
    path = grid_dir(settings)

    async def onemap_load_grid() -> None:
        await feeds.grid(path)

    app.task(onemap_load_grid)
    app.task(hub.run)
    api.register(app, api.Handlers(hub), app_guard(app, settings.web,
                                                   lambda reason: metrics.http_refused.labels(reason).inc()))
    return view
