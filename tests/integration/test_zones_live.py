"""Zones change while the system runs: load, list and remove a temporary event zone, no restart."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import orjson
import pytest

from tests.conftest import ROOT, env_for, metric_value, scrape, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

EVENT_ZONE = {"type": "FeatureCollection", "features": [{
    "type": "Feature",
    "properties": {"id": "fair-2026-test", "name": "Fair security zone", "rule": "forbid", "radius_m": 500,
                   "exempt": ["police", "fire", "ambulance"], "severity": "critical",
                   "schedule": [{"start": "2026-01-01T00:00:00+08:00", "end": "2099-01-01T00:00:00+08:00"}]},
    "geometry": {"type": "Point", "coordinates": [118.185, 24.478]}}]}


def citywatch(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], env=env_for(settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_event_zone_added_and_removed_live(make_settings, spawn, mqtt_probe, tmp_path):
    settings = make_settings()
    worker = spawn("worker", ["worker"], settings)
    bridge = spawn("bridge", ["bridge"], settings)
    alerts = mqtt_probe([f"{settings.mqtt.alerts_topic}/#"])
    gateway = mqtt_probe()

    def metric(port: int, name: str) -> float:
        assert worker.proc.poll() is None, worker.log()
        try:
            return metric_value(scrape(port), name)
        except OSError:
            return -1

    wait_for(lambda: metric(settings.web.port, "citywatch_zones_loaded") == 6, 90, "the seeded sample zones")
    wait_for(lambda: metric(settings.bridge.metrics_port, "citywatch_bridge_mqtt_connected") == 1, 60, "the bridge")

    # A bad file changes nothing and names file, feature and field.
    bad = tmp_path / "bad.geojson"
    broken = json.loads(json.dumps(EVENT_ZONE))
    broken["features"][0]["properties"]["rule"] = "forbidd"
    bad.write_text(json.dumps(broken))
    r = citywatch(settings, "zones", "load", str(bad))
    assert r.returncode == 2 and "bad.geojson" in r.stderr and "fair-2026-test" in r.stderr and "rule" in r.stderr
    listed = json.loads(citywatch(settings, "zones", "list", "--json").stdout)
    assert len(listed) == 6 and "fair-2026-test" not in {z["id"] for z in listed}

    t0 = time.time() - 120
    taxi = "闽DT7777"

    def send(ts: float, lon: float, lat: float) -> None:
        gateway.publish(f"{settings.mqtt.fixes_topic}/{taxi}",
                        orjson.dumps({"vehicle_id": taxi, "class": "taxi", "ts": ts, "lat": lat, "lon": lon}))

    def fair_alerts() -> list[dict]:
        return [a for a in (orjson.loads(p) for _, p in alerts.received()) if a.get("zone_id") == "fair-2026-test"]

    send(t0, 118.185, 24.478)  # inside the future zone: nothing yet
    wait_for(lambda: metric(settings.web.port, "citywatch_zone_checks_total") >= 1, 60, "the first fix checked")

    good = tmp_path / "fair.geojson"
    good.write_text(json.dumps(EVENT_ZONE))
    r = citywatch(settings, "zones", "load", str(good))
    assert r.returncode == 0, r.stderr
    wait_for(lambda: metric(settings.web.port, "citywatch_zones_loaded") == 7, 60, "the event zone to reach the worker")
    listed = {z["id"]: z for z in json.loads(citywatch(settings, "zones", "list", "--json").stdout)}
    assert listed["fair-2026-test"]["active_now"] is True and len(listed) == 7

    send(t0 + 10, 118.1851, 24.4781)
    wait_for(lambda: [a["kind"] for a in fair_alerts()] == ["zone.enter"], 60, "the enter alert")

    r = citywatch(settings, "zones", "remove", "fair-2026-test")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: metric(settings.web.port, "citywatch_zones_loaded") == 6, 60, "the removal to reach the worker")
    send(t0 + 20, 118.1852, 24.4782)
    wait_for(lambda: [a["kind"] for a in fair_alerts()] == ["zone.enter", "zone.exit"], 60, "the closing exit")
    assert fair_alerts()[1]["reason"] == "zone_removed"
    assert citywatch(settings, "zones", "remove", "no-such-zone").returncode == 1
    assert worker.proc.poll() is None and bridge.proc.poll() is None  # never restarted
