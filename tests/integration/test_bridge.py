"""The bridge alone: every fix reaches Kafka once, in each vehicle's order, keyed by vehicle."""

from __future__ import annotations

import time
from collections import defaultdict

import orjson
import pytest

from tests.conftest import metric_value, read_topic, scrape, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_a_burst_keeps_each_vehicles_order_and_loses_nothing(make_settings, spawn, mqtt_probe):
    settings = make_settings()
    bridge = spawn("bridge", ["bridge"], settings)

    def subscribed() -> bool:
        assert bridge.proc.poll() is None, bridge.log()
        try:
            return metric_value(scrape(settings.bridge.metrics_port), "citywatch_bridge_mqtt_connected") == 1
        except OSError:
            return False

    wait_for(subscribed, 60, "the bridge to subscribe")
    gateway = mqtt_probe()
    t0, vehicles, per_vehicle = time.time() - 3600, [f"闽DO{i:03d}" for i in range(10)], 300
    infos = []
    for k in range(per_vehicle):
        for v in vehicles:
            payload = orjson.dumps({"vehicle_id": v, "ts": t0 + k, "lat": 24.5, "lon": 118.1 + k * 1e-5})
            infos.append(gateway.client.publish(f"{settings.mqtt.fixes_topic}/{v}", payload, qos=1))
    for info in infos:
        info.wait_for_publish(30)
    total = len(vehicles) * per_vehicle
    records = read_topic(settings.kafka.bootstrap, settings.kafka.topics.fixes, min_count=total, timeout=90)
    assert len(records) == total
    seen: dict[str, list[float]] = defaultdict(list)
    for key, value in records:
        fix = orjson.loads(value)
        assert key == fix["vehicle_id"].encode()
        seen[fix["vehicle_id"]].append(fix["ts"])
    for v in vehicles:  # read_topic reads partitions one after another; within a vehicle order must hold
        assert seen[v] == [t0 + k for k in range(per_vehicle)], v
    text = wait_for(lambda: (t := scrape(settings.bridge.metrics_port)) and
                    metric_value(t, "citywatch_bridge_fixes_produced_total") == total and t, 30, "the produced count")
    assert metric_value(text, "citywatch_bridge_in_flight") == 0
