"""``GET /health`` without a key: a worker is ready with partitions and zones; the bridge while MQTT and Kafka are.

The bridge's port serves ``/metrics`` (Prometheus text) and ``/health`` only, and is closed when it stops.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.brokers.mqtt import start_mqtt_broker
from engine.brokers.ports import free_port
from engine.geofence.zone_store import records_from_path
from engine.zones_cli import load_zones
from tests.access.http_calls import call, call_raw
from tests.conftest import ROOT, isolated_settings, metric_value, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WORKER_STATES = {"starting", "rebalancing", "stopping"}
BRIDGE_STATES = {"starting", "mqtt_disconnected", "kafka_down", "stopping"}


def poll_health(port: int, seen: list[tuple[int, dict]], proc) -> tuple[int, dict] | None:  # type: ignore[no-untyped-def]
    """One look at ``/health`` (None while nothing listens), kept in ``seen``."""
    assert proc.proc.poll() is None, proc.log()
    try:
        status, doc, _ = call(port, "GET", "/health")
    except OSError:
        return None
    seen.append((status, doc))
    return status, doc


def test_worker_is_ready_once_it_has_partitions_and_counts_its_zones(make_settings, spawn, tmp_path: Path):
    no_zones = tmp_path / "no-zones"
    no_zones.mkdir()
    settings = make_settings(zones={"dir": str(no_zones)})  # the zones topic stays empty: nothing to seed
    proc = spawn("worker", ["worker"], settings)
    port, seen = settings.web.port, []

    def health_is(status: str):  # type: ignore[no-untyped-def]
        return lambda: (got := poll_health(port, seen, proc)) and got[1].get("status") == status and got

    code, doc = wait_for(health_is("ready"), 120, "the worker to own partitions, with no zones")
    assert code == 200 and doc == {"status": "ready", "partitions": list(range(settings.kafka.partitions)),
                                   "zones": 0}  # the only worker owns every partition

    wanted = len(records_from_path(ROOT / "zones", tz=settings.city.tz, loaded_at="", limits=settings.zones))
    load_zones(settings, str(ROOT / "zones"))
    code, doc = wait_for(lambda: (got := health_is("ready")()) and got[1]["zones"] == wanted and got, 60,
                         "the worker to load the zones")
    assert code == 200 and doc == {"status": "ready", "partitions": list(range(settings.kafka.partitions)),
                                   "zones": wanted}
    assert metric_value(call_raw(port, "GET", "/metrics")[1], "citywatch_zones_loaded") == wanted
    for code, doc in seen:  # every answer on the way: 200 only when ready, else 503 saying why
        if doc["status"] == "ready":
            assert code == 200, doc
        else:
            assert code == 503 and doc["status"] in WORKER_STATES and doc["why"], doc


def test_bridge_health_follows_mqtt_and_metrics_stay_prometheus(kafka_broker, spawn, tmp_path: Path):
    mqtt = start_mqtt_broker("127.0.0.1", free_port(), workdir=tmp_path / "mqtt")
    try:
        settings = isolated_settings(tmp_path, kafka_broker, mqtt)
        bridge = spawn("bridge", ["bridge"], settings)
        port, seen = settings.bridge.metrics_port, []

        def health_is(status: str):  # type: ignore[no-untyped-def]
            return lambda: (got := poll_health(port, seen, bridge)) and got[1].get("status") == status and got

        assert wait_for(health_is("ready"), 60, "the bridge to be ready") == (200, {"status": "ready"})
        status, text, headers = call_raw(port, "GET", "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"citywatch_bridge_mqtt_connected", "citywatch_bridge_kafka_up", "citywatch_bridge_messages"} <= names
        assert metric_value(text, "citywatch_bridge_mqtt_connected") == 1
        assert metric_value(text, "citywatch_bridge_kafka_up") == 1
        status, text, headers = call_raw(port, "GET", "/metrics", headers={"Accept": "application/openmetrics-text"})
        assert headers["Content-Type"].startswith("application/openmetrics-text") and text.endswith("# EOF\n")
        for path in ("/", "/table/", "/metrics/x"):
            assert call_raw(port, "GET", path)[0] == 404, path

        mqtt.stop()
        code, doc = wait_for(health_is("mqtt_disconnected"), 60, "the bridge to report the MQTT broker lost")
        assert code == 503 and f"{mqtt.host}:{mqtt.port}" in doc["why"]
        assert metric_value(call_raw(port, "GET", "/metrics")[1], "citywatch_bridge_mqtt_connected") == 0
    finally:
        mqtt.stop()
    for code, doc in seen:
        assert (code, doc) == (200, {"status": "ready"}) or (code == 503 and doc["status"] in BRIDGE_STATES
                                                             and doc["why"]), doc

    assert bridge.stop() == 0, bridge.log()
    with pytest.raises(OSError):  # the server went with the bridge
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_bridge_names_the_setting_when_its_port_is_taken(make_settings, spawn):
    settings = make_settings()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", settings.bridge.metrics_port))
        taken.listen()
        bridge = spawn("bridge", ["bridge"], settings)
        assert bridge.proc.wait(60) == 2, bridge.log()
    assert f"bridge.metrics_port: cannot listen on 127.0.0.1:{settings.bridge.metrics_port}" in bridge.log()
