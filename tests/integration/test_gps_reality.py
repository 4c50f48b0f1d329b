"""On real brokers: the offline timer, late fixes and GPS filters end to end (worker process, MQTT in and out)."""

from __future__ import annotations

import time

import orjson
import pytest

from engine.brokers.ports import free_port
from tests.conftest import metric_value, read_topic, scrape, wait_bridge_subscribed, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

V = "闽DH7001"


def fix(ts: float, lon: float, lat: float = 24.4815, **extra: object) -> dict:
    return {"vehicle_id": V, "class": "hazmat", "ts": ts, "lat": lat, "lon": lon, "speed_kmh": 50, **extra}


def test_offline_online_late_and_filtered_fixes(make_settings, spawn, mqtt_probe):
    # Hazmat terminals "report every second" here, so silence is noticed within seconds.
    settings = make_settings(geofence={"report_interval_s": {"hazmat": 1}, "offline_factor": 3,
                                       "offline_scan_s": 0.5})
    worker = spawn("worker", ["worker"], settings)
    bridge = spawn("bridge", ["bridge"], settings)

    wait_bridge_subscribed(settings, worker)
    alerts = mqtt_probe([f"{settings.mqtt.alerts_topic}/#"])
    gateway = mqtt_probe()
    topic = f"{settings.mqtt.fixes_topic}/{V}"
    now = time.time()
    # Moving west of the Haicang Tunnel, then in it: one violation.
    gateway.publish(topic, orjson.dumps([fix(now - 62, 118.030), fix(now - 2, 118.045)]))

    def got(kind: str) -> list[dict]:
        return [a for a in (orjson.loads(p) for _, p in alerts.received()) if a["kind"] == kind]

    wait_for(lambda: got("zone.enter"), 60, "the enter alert")
    # A late fix from the tunnel (re-uploaded), an invalid fix, a teleport: none of them moves the truck.
    gateway.publish(topic, orjson.dumps([fix(now - 30, 118.042), fix(now - 1, 118.05, valid=False),
                                         fix(now - 0.5, 118.40, lat=24.80)]))
    [late] = wait_for(lambda: got("zone.enter")[1:], 30, "the late audit alert")
    assert late["late"] is True and late["zone_id"] == "haicang-tunnel" and late["late_fixes"] == 1
    # Silent since now - 2 while moving: offline after 3 x 1 s.
    [off] = wait_for(lambda: got("vehicle.offline"), 30, "vehicle.offline")
    assert off["vehicle_id"] == V and off["severity"] == "warning" and off["class"] == "hazmat"
    assert got("zone.exit") == []  # none of the bad fixes took it out of the tunnel
    gateway.publish(topic, orjson.dumps(fix(time.time(), 118.0455)))
    [on] = wait_for(lambda: got("vehicle.online"), 30, "vehicle.online")
    assert on["incident_id"] == off["alert_id"] and on["gap_s"] > 2
    time.sleep(1.5)
    assert len(got("vehicle.offline")) == 1  # raised once, not at every scan

    text = scrape(settings.web.port)
    assert metric_value(text, "citywatch_fixes_late_total") == 1
    assert metric_value(text, "citywatch_fixes_rejected_total", reason="invalid_fix") == 1
    assert metric_value(text, "citywatch_fixes_rejected_total", reason="implausible_jump") == 1
    assert metric_value(text, "citywatch_alerts_total", kind="vehicle.offline", severity="warning") == 1
    rejected = [orjson.loads(v) for _, v in read_topic(settings.kafka.bootstrap, settings.kafka.topics.fixes_rejected,
                                                        min_count=2)]
    assert {r["reason"] for r in rejected} == {"invalid_fix", "implausible_jump"}
    assert worker.proc.poll() is None and bridge.proc.poll() is None


def test_two_workers_each_flag_only_their_own_vehicles(make_settings, spawn, mqtt_probe, tmp_path):
    """Two workers, 1000 vehicles, 4000 table updates: every vehicle goes offline exactly once, from one worker.

    Each worker's local tracks store also holds the other's partitions (standby replicas, applied in batches of
    ``standby_buffer_size`` = 1000 changelog records), so the scan is limited to owned partitions. And the table's
    changelog must be keyed like the fixes: with JSON-quoted keys a worker replayed its own older writes from its
    standby partitions over newer state, and raised offline alerts twice.
    """
    settings = make_settings(geofence={"report_interval_s": {"taxi": 2}, "offline_factor": 3, "offline_scan_s": 0.5})
    second = settings.replace(web={"port": free_port()}, worker={"data_dir": str(tmp_path / "worker-2")})
    workers = [spawn("worker-1", ["worker"], settings), spawn("worker-2", ["worker"], second)]
    spawn("bridge", ["bridge"], settings)

    def assigned() -> bool:
        for w in workers:
            assert w.proc.poll() is None, w.log()
        try:
            return all(metric_value(scrape(s.web.port), "citywatch_zones_loaded") > 0 for s in (settings, second)) \
                and metric_value(scrape(settings.bridge.metrics_port), "citywatch_bridge_mqtt_connected") == 1
        except OSError:
            return False

    wait_for(assigned, 90, "two workers and the bridge")
    time.sleep(8)  # the group settles: partitions split 2/2, standbys replicated
    alerts = mqtt_probe([f"{settings.mqtt.alerts_topic}/vehicle.offline/#"])
    gateway = mqtt_probe()
    vids = [f"闽DT{i:04d}" for i in range(1000)]
    now = time.time()
    for k in range(4):   # 4000 table updates: enough for each worker to apply a standby batch
        gateway.publish(settings.mqtt.fixes_topic, orjson.dumps([
            {"vehicle_id": v, "class": "taxi", "ts": now - 4 + k, "lat": 24.60 + i * 0.0001 + k * 0.0001,
             "lon": 118.10, "speed_kmh": 40} for i, v in enumerate(vids)]))
    wait_for(lambda: len(alerts.received()) >= len(vids), 90, "an offline alert per vehicle")
    time.sleep(3)
    got = [orjson.loads(p)["vehicle_id"] for _, p in alerts.received()]
    assert sorted(got) == sorted(vids)  # each exactly once
    per_worker = [metric_value(scrape(s.web.port), "citywatch_alerts_total", kind="vehicle.offline")
                  for s in (settings, second)]
    assert sum(per_worker) == len(vids) and all(per_worker), per_worker  # both had vehicles, none doubled
    assert all(w.proc.poll() is None for w in workers)
