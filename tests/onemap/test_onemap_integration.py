"""The one-map on a real worker and bridge with real brokers, read as a browser reads it (SSE), without a browser.

Fixes go in over MQTT; the worker raises the Haicang Tunnel incident and
closes it; citizen tasks are produced to the tasks topic the way the tasks
service publishes them. The stream must carry all of it, in sequence, and a
browser connecting later must get the same state in its snapshot. The data is
read with the operator key of ``config.yaml`` (``dev_operator``), as the page
sends it (the ``citywatch_key`` cookie) and as a script would (a header).
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from engine.geofence.zone_store import records_from_path
from engine.kafka.admin import create_topics
from tests.conftest import ROOT, metric_value, scrape, wait_bridge_subscribed, wait_for
from tests.onemap.sse_client import MapClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

H1, TAXI = "闽DH8001", "闽DT8002"


def operator_key(settings) -> str:  # type: ignore[no-untyped-def]
    return next(k.api_key for k in settings.web.api_keys.values() if k.role == "operator")


def fix(vid: str, vclass: str, ts: float, lon: float, lat: float = 24.4815) -> dict:
    return {"vehicle_id": vid, "class": vclass, "ts": ts, "lat": lat, "lon": lon, "speed_kmh": 50, "heading": 90}


def task(tid: str, status: str = "open", **kw) -> dict:
    return {"service_request_id": tid, "service_code": "road-hazard", "service_name": "Road hazard", "status": status,
            "state": "dispatched", "level": "street", "agency_responsible": "Siming district roads", "lat": 24.455,
            "long": 118.085, "description": "Fallen tree blocking a lane", "requested_datetime": "2026-09-08T09:00:00+08:00",
            "updated_datetime": "2026-09-08T09:05:00+08:00", "expected_datetime": "2026-09-08T13:00:00+08:00",
            "overdue": False, "status_notes": "", **kw}


def produce(bootstrap: str, topic: str, records: list[tuple[str, bytes | None]]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(topic, value, key=key.encode())
        finally:
            await producer.stop()

    asyncio.run(run())


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def connect(base: str, worker, headers: dict[str, str]) -> MapClient:
    def attempt() -> MapClient | None:
        assert worker.proc.poll() is None, worker.log()
        try:
            return MapClient(base, headers)
        except OSError:
            return None

    return wait_for(attempt, 90, "the worker's one-map stream")  # type: ignore[return-value]


def test_vehicles_alerts_incidents_tasks_and_zones_reach_the_browser_in_sequence(make_settings, spawn, mqtt_probe):
    settings = make_settings()
    tasks_topic = settings.kafka.topics.fixes.replace("fixes-", "tasks-")
    settings = settings.replace(onemap={"tasks_topic": tasks_topic, "push_interval_ms": 200, "track_fixes": 3})
    create_topics(settings.kafka.bootstrap, {tasks_topic: (1, {"cleanup.policy": "compact"})})
    worker = spawn("worker", ["worker"], settings)
    bridge = spawn("bridge", ["bridge"], settings)
    base = f"http://127.0.0.1:{settings.web.port}"
    page_cookie, header = {"Cookie": f"citywatch_key={operator_key(settings)}"}, {"X-API-Key": operator_key(settings)}
    wait_bridge_subscribed(settings, bridge, worker)
    browser = connect(base, worker, page_cookie)
    try:
        zone_ids = sorted(records_from_path(ROOT / "zones", tz="Asia/Shanghai", loaded_at=""))
        wait_for(lambda: sorted(z["id"] for z in browser.zones if z["properties"]["rule"] != "grid") == zone_ids, 30,
                 "the zones in the stream")
        grid = orjson.loads((ROOT / "zones" / "grid" / "xiamen-grid.geojson").read_bytes())["features"]
        wait_for(lambda: sum(z["properties"]["rule"] == "grid" for z in browser.zones) == len(grid), 30,
                 "the grid boundaries in the stream")
        tunnel = next(z for z in browser.zones if z["id"] == "haicang-tunnel")
        assert tunnel["properties"]["rule"] == "forbid" and tunnel["geometry"]["type"] == "Polygon"

        gateway = mqtt_probe()
        t0 = time.time() - 150
        for i, lon in enumerate([118.030, 118.045, 118.055, 118.065]):  # into the tunnel ...
            gateway.publish(f"{settings.mqtt.fixes_topic}/{H1}", orjson.dumps(fix(H1, "hazmat", t0 + 30 * i, lon)))
        wait_for(lambda: any(i.get("vehicle_id") == H1 for i in dict(browser.incidents).values()), 90,
                 "the open incident in the stream")
        opened = next(i for i in dict(browser.incidents).values() if i.get("vehicle_id") == H1)
        assert opened["zone_id"] == "haicang-tunnel" and opened["kind"] == "zone.enter"
        gateway.publish(f"{settings.mqtt.fixes_topic}/{H1}", orjson.dumps(fix(H1, "hazmat", t0 + 120, 118.085)))  # ... out
        gateway.publish(f"{settings.mqtt.fixes_topic}/{TAXI}",
                        orjson.dumps([fix(TAXI, "taxi", t0, 118.10, 24.50), fix(TAXI, "taxi", t0 + 30, 118.11, 24.50)]))
        produce(settings.kafka.bootstrap, tasks_topic, [
            ("T-1", orjson.dumps(task("T-1", overdue=True))),
            ("T-2", orjson.dumps(task("T-2", level="district", lat=None, long=None))),
            ("T-3", orjson.dumps(task("T-3", level="city"))),
            ("T-3", orjson.dumps(task("T-3", level="city", status="closed"))),
            ("T-2", None),  # deleted
            ("T-4", orjson.dumps(task("T-4", status="pending"))),  # not a valid status: skipped and counted
        ])

        def done() -> bool:
            with browser.lock:
                kinds = {(a.get("vehicle_id"), a["kind"]) for a in browser.alerts.values()}
                return ((H1, "zone.exit") in kinds and set(browser.tasks) == {"T-1"}
                        and (browser.vehicle(TAXI) or {}).get("lon") == 118.11)

        wait_for(done, 90, "the incident, the taxi and the tasks in the stream")
        assert browser.errors == []
        h1 = browser.vehicle(H1)
        assert h1 == {"id": H1, "class": "hazmat", "lat": 24.4815, "lon": 118.085}
        enter = next(a for a in browser.alerts.values() if a["kind"] == "zone.enter" and a.get("vehicle_id") == H1)
        assert enter["severity"] == "critical" and enter["zone_name"] == "Haicang Tunnel"
        assert enter["incident_id"] == opened["id"]  # it was highlighted while open ...
        assert opened["id"] not in browser.incidents  # ... and closed by the exit alert
        assert browser.tasks["T-1"]["overdue"] is True and browser.tasks["T-1"]["lat"] == 24.455

        status, body = get(f"{base}/api/v1/onemap/vehicles/{urllib.request.quote(H1)}/track", header)
        assert status == 200 and [p[2] for p in orjson.loads(body)["points"]] == [118.055, 118.065, 118.085]

        late = MapClient(base, header)  # a client connecting now sees the same state in its snapshot
        try:
            wait_for(lambda: late.events, 30, "the late browser's snapshot")
            assert late.vehicle(H1) == h1 and set(late.tasks) == {"T-1"} and late.incidents == {}
            assert {a["alert_id"] for a in late.alerts.values()} >= {enter["alert_id"]}
        finally:
            late.close()

        metrics = scrape(settings.web.port)
        assert metric_value(metrics, "citywatch_onemap_records_skipped_total", topic="tasks", reason="bad_status") == 1
        assert metric_value(metrics, "citywatch_onemap_clients") >= 1
        assert metric_value(metrics, "citywatch_onemap_bytes_total") > 0

        status, page = get(f"{base}/")  # the page, not Faust's default index
        assert status == 200 and b"Citywatch one-map" in page
        assert get(f"{base}/onemap/static/vendor/leaflet/leaflet.js")[0] == 200
    finally:
        browser.close()

    # A worker stopping with a browser connected ends the stream itself and exits cleanly (not killed).
    browser2 = MapClient(base, page_cookie)
    wait_for(lambda: browser2.events, 30, "a snapshot")
    assert worker.stop() == 0, worker.log()
    assert browser2.ended.wait(5)
    log = worker.log_path.read_text(encoding="utf-8", errors="replace")
    assert "24.4815" not in log and "118.085" not in log  # positions (GPS tracks) are never logged
    assert operator_key(settings) not in log
