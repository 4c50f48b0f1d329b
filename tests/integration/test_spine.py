"""End to end on real brokers: gateway fixes over MQTT -> bridge -> Kafka -> worker -> alerts on MQTT and Kafka."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.conftest import metric_value, read_topic, scrape, wait_bridge_subscribed, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

H1, H2, TAXI = "闽DH1001", "闽DH1002", "闽DT2001"


def fix(vid: str, vclass: str, ts: float, lon: float, lat: float = 24.4815, **extra: object) -> dict:
    return {"vehicle_id": vid, "class": vclass, "ts": ts, "lat": lat, "lon": lon, "speed_kmh": 50, **extra}


def alerts_by(received: list[tuple[str, bytes]]) -> list[dict]:
    return [orjson.loads(p) for _, p in received]


@pytest.fixture
def system(make_settings, spawn, mqtt_probe):
    settings = make_settings()
    worker = spawn("worker", ["worker"], settings)
    bridge = spawn("bridge", ["bridge"], settings)

    wait_bridge_subscribed(settings, bridge, worker)
    alerts = mqtt_probe([f"{settings.mqtt.alerts_topic}/#"])
    gateway = mqtt_probe()
    return settings, worker, bridge, alerts, gateway


def test_fixes_in_alerts_out_and_bad_input_rejected(system):
    settings, worker, bridge, alerts, gateway = system
    prefix = settings.mqtt.fixes_topic
    t0 = time.time() - 600
    # H1 drives into the Haicang Tunnel (hazmat forbidden) and out again, one fix per message.
    for i, lon in enumerate([118.030, 118.045, 118.055, 118.065, 118.085]):
        gateway.publish(f"{prefix}/{H1}", orjson.dumps(fix(H1, "hazmat", t0 + 30 * i, lon)))
    # H2 reports sparsely: both fixes outside, the segment between them crosses the tunnel (array payload).
    gateway.publish(f"{prefix}/{H2}", orjson.dumps([fix(H2, "hazmat", t0, 118.030), fix(H2, "hazmat", t0 + 240, 118.085)]))
    # A taxi may use the tunnel.
    gateway.publish(f"{prefix}/{TAXI}", orjson.dumps([fix(TAXI, "taxi", t0, 118.030), fix(TAXI, "taxi", t0 + 30, 118.050)]))
    # Bad input of several kinds; the good element of the mixed array must still count.
    gateway.publish(f"{prefix}/BAD1", b"{not json")
    gateway.publish(f"{prefix}/BAD2", orjson.dumps({"vehicle_id": "BAD2", "ts": t0, "lon": 118.1}))
    gateway.publish(f"{prefix}/BAD3", orjson.dumps([fix("BAD3", "taxi", t0, 118.1, lat=95.0),
                                                    fix("BAD3", "taxi", t0 + 5, 118.1, lat=24.5)]))

    def tunnel_alerts() -> list[dict]:
        return [a for a in alerts_by(alerts.received()) if a.get("zone_id") == "haicang-tunnel"]

    wait_for(lambda: len(tunnel_alerts()) >= 3, 90, "enter, exit and cross alerts over MQTT")
    time.sleep(1.0)  # let any wrongly duplicated alert arrive too
    got = tunnel_alerts()
    kinds = sorted((a["vehicle_id"], a["kind"]) for a in got)
    assert kinds == [(H1, "zone.enter"), (H1, "zone.exit"), (H2, "zone.cross")]
    enter = next(a for a in got if a["kind"] == "zone.enter")
    exit_ = next(a for a in got if a["kind"] == "zone.exit")
    for key in ("alert_id", "kind", "severity", "ts", "detected_at", "vehicle_id", "class", "zone_id",
                "zone_name", "lat", "lon"):
        assert key in enter, key
    assert enter["severity"] == "critical" and enter["class"] == "hazmat"
    assert enter["zone_name"] == "Haicang Tunnel"
    assert (enter["lat"], enter["lon"]) == (24.4815, 118.045)
    assert enter["ts"].endswith("+08:00")
    assert exit_["incident_id"] == enter["alert_id"] and exit_["duration_s"] == pytest.approx(90.0)  # inside from t0+30 to the exit fix at t0+120
    topics = {t for t, p in alerts.received() if orjson.loads(p).get("zone_id") == "haicang-tunnel"}
    assert f"{settings.mqtt.alerts_topic}/zone.enter/{H1}" in topics

    # The same alerts are in the Kafka alerts topic, with the same ids.
    kafka_alerts = [orjson.loads(v) for _, v in read_topic(settings.kafka.bootstrap, settings.kafka.topics.alerts,
                                                            min_count=3)]
    assert {a["alert_id"] for a in got} <= {a["alert_id"] for a in kafka_alerts}

    # Bad input landed in fixes.rejected with the reason and the raw payload.
    rejected = [orjson.loads(v) for _, v in read_topic(settings.kafka.bootstrap, settings.kafka.topics.fixes_rejected,
                                                        min_count=3)]
    reasons = {(r["vehicle_id"], r["reason"]) for r in rejected}
    assert {("BAD1", "bad_json"), ("BAD2", "missing_field"), ("BAD3", "bad_coordinates")} <= reasons
    assert next(r for r in rejected if r["reason"] == "bad_json")["raw"] == "{not json"

    # Ops see it all on the worker's /metrics.
    def metrics_settled() -> str | None:
        text = scrape(settings.web.port)
        return text if metric_value(text, "citywatch_vehicles_active", **{"class": "hazmat"}) >= 2 else None

    text = wait_for(metrics_settled, 30, "the active-vehicles gauge")
    assert metric_value(text, "citywatch_fixes_rejected_total", reason="bad_json") == 1
    assert metric_value(text, "citywatch_fixes_rejected_total", reason="bad_coordinates") == 1
    assert metric_value(text, "citywatch_fixes_received_total", source="mqtt") == 13  # 10 accepted + 3 rejected (BAD1 counts as one)
    assert metric_value(text, "citywatch_zone_checks_total") == 10
    assert metric_value(text, "citywatch_alerts_total", kind="zone.enter", severity="critical") == 1
    assert metric_value(text, "citywatch_fix_to_alert_seconds_count") >= 3
    assert metric_value(text, "citywatch_zones_loaded") == 6
    assert worker.proc.poll() is None and bridge.proc.poll() is None
