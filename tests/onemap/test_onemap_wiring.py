"""Without brokers: records that cannot be used are skipped and counted (never logged with their content),
the routes exist only when the one-map is on, and its settings are checked."""

from __future__ import annotations

import logging

import faust
import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry, generate_latest

from engine.core.clock import FakeClock
from engine.core.errors import ConfigError
from engine.core.metrics import WorkerMetrics
from engine.onemap import agents
from engine.onemap.agents import Feeds, tasks_topic
from engine.onemap.settings import OneMapSettings
from engine.onemap.view import OneMapView
from engine.settings import Settings
from engine.telemetry import wire
from engine.telemetry.columns import from_fixes
from engine.telemetry.models import Fix
from tests.conftest import metric_value

T0 = 1_788_832_800.0


def rec(topic: str, value: bytes | None, key: bytes | None = None, offset: int = 7) -> ConsumerRecord:
    return ConsumerRecord(topic=topic, partition=2, offset=offset, timestamp=int(T0 * 1000), timestamp_type=0,
                          key=key, value=value, checksum=None, serialized_key_size=0, serialized_value_size=0,
                          headers=())


def feeds() -> tuple[Feeds, OneMapView, WorkerMetrics]:
    metrics = WorkerMetrics(CollectorRegistry())
    view = OneMapView(OneMapSettings(), clock=FakeClock(T0))
    return Feeds(view, Settings(), metrics), view, metrics


def skipped(metrics: WorkerMetrics, **labels: str) -> float:
    return metric_value(generate_latest(metrics.registry).decode(), "citywatch_onemap_records_skipped_total", **labels)


def test_good_records_reach_the_view_and_bad_ones_are_skipped_counted_and_logged_without_content(caplog):
    f, view, metrics = feeds()
    good = {"vehicle_id": "闽DH0001", "ts": T0, "lat": 24.4815, "lon": 118.0441, "class": "hazmat"}
    with caplog.at_level(logging.WARNING, logger="engine.onemap.agents"):
        binary = wire.encode(from_fixes([Fix("闽DH0002", T0, 24.4815, 118.0441, "hazmat")]))
        f.fixes([rec("fixes", orjson.dumps([good])), rec("fixes", b'{"lat": 24.4999, "lon": 118.1}'),
                 rec("fixes", b"not json"), rec("fixes", orjson.dumps({**good, "ts": "yesterday"})),
                 rec("fixes", binary), rec("fixes", binary[:-1])])
        f.alerts([rec("alerts", b'{"kind": "zone.enter"}'), rec("alerts", b"[")])
        f.tasks([rec("tasks", orjson.dumps({"service_request_id": "T-1", "status": "maybe"}), key=b"T-1"),
                 rec("tasks", None, key=b"T-1")])
    assert view.vehicle_count() == 2  # the old JSON form and the binary one
    assert skipped(metrics, topic="fixes", reason="bad_record") == 4
    assert skipped(metrics, topic="alerts", reason="missing_field") == 1
    assert skipped(metrics, topic="alerts", reason="bad_json") == 1
    assert skipped(metrics, topic="tasks", reason="bad_status") == 1
    assert all("partition 2 offset 7" in r.getMessage() for r in caplog.records) and len(caplog.records) == 7
    assert "24.4999" not in caplog.text and "118.1" not in caplog.text


def test_the_zones_topic_fold_applies_tombstones():
    import asyncio

    f, view, _ = feeds()
    feature = {"type": "Feature", "properties": {"id": "w", "name": "W", "rule": "watch", "radius_m": 50},
               "geometry": {"type": "Point", "coordinates": [118.1, 24.5]}}
    value = orjson.dumps({"feature": feature, "source": "t", "loaded_at": ""})
    asyncio.run(f.zones([rec("zones", value, key=b"w")]))
    assert [z["id"] for z in view.snapshot()["zones"]] == ["w"]
    asyncio.run(f.zones([rec("zones", None, key=b"w")]))
    assert view.snapshot()["zones"] == []


def routes(app: faust.App) -> set[str]:
    return set(app.web.views)


def test_the_page_and_its_stream_are_routes_only_when_the_one_map_is_on():
    on, off = faust.App("onemap-on", autodiscover=False), faust.App("onemap-off", autodiscover=False)
    metrics = WorkerMetrics(CollectorRegistry())
    assert agents.register(on, Settings(), metrics, FakeClock(T0)) is not None
    assert {"/", "/onemap", "/api/v1/onemap/stream", "/api/v1/onemap/snapshot",
            "/api/v1/onemap/vehicles/{vehicle_id}/track"} <= routes(on)
    assert agents.register(off, Settings().replace(onemap={"enabled": False}), metrics, FakeClock(T0)) is None
    assert not any("onemap" in r or r == "/" for r in routes(off))


def test_the_tasks_topic_is_the_tasks_services_unless_set():
    s = Settings()
    default = getattr(getattr(s, "tasks", None), "topics", None)
    assert tasks_topic(s) == (default.tasks if default else "tasks")
    assert tasks_topic(s.replace(onemap={"tasks_topic": "other-tasks"})) == "other-tasks"


@pytest.mark.parametrize(("change", "message"), [
    ({"push_interval_ms": 10}, "onemap.push_interval_ms"),
    ({"track_fixes": 0}, "onemap.track_fixes"),
    ({"tile_url": "tiles.example/{z}/{x}/{y}.png"}, "onemap.tile_url"),
    ({"tile_url": "https://tiles.example/{z}/{x}.png"}, "onemap.tile_url"),
])
def test_bad_one_map_settings_are_refused_naming_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        Settings().replace(onemap=change)


def test_a_tile_url_template_is_accepted():
    s = Settings().replace(onemap={"tile_url": "https://tiles.example/{z}/{x}/{y}.png"})
    assert agents.page_config(s)["tile_url"] == "https://tiles.example/{z}/{x}/{y}.png"
