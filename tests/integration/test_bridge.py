"""The bridge alone: every fix reaches Kafka once, in each vehicle's order, on its vehicle's partition."""

from __future__ import annotations

import time
from collections import defaultdict

import orjson
import pytest

from engine.brokers.ports import free_port
from engine.telemetry.batching import partition_for
from engine.telemetry.wire import decode_fixes
from tests.conftest import LAST_PARTITIONS, metric_value, read_topic, scrape, wait_bridge_subscribed, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_a_burst_keeps_each_vehicles_order_and_loses_nothing(make_settings, spawn, mqtt_probe):
    settings = make_settings()
    bridge = spawn("bridge", ["bridge"], settings)

    wait_bridge_subscribed(settings, bridge)
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
    def n_fixes(recs) -> int:
        return sum(len(decode_fixes(v)) for _, v in recs)

    records = read_topic(settings.kafka.bootstrap, settings.kafka.topics.fixes, min_count=total, timeout=90,
                         count=n_fixes)
    partitions = list(LAST_PARTITIONS)
    assert n_fixes(records) == total
    assert len(records) < total / 5  # micro-batched: many fixes per Kafka message
    assert all(value[:4] == b"CWF\x01" for _, value in records)  # binary columns (engine.telemetry.wire)
    seen: dict[str, list[float]] = defaultdict(list)
    for (key, value), partition in zip(records, partitions, strict=True):
        assert partition_for(key, settings.kafka.partitions) == partition
        for fix in decode_fixes(value):
            assert partition_for(fix.vehicle_id.encode(), settings.kafka.partitions) == partition
            seen[fix.vehicle_id].append(fix.ts)
    for v in vehicles:  # read_topic reads partitions one after another; within a vehicle order must hold
        assert seen[v] == [t0 + k for k in range(per_vehicle)], v
    text = wait_for(lambda: (t := scrape(settings.bridge.metrics_port)) and
                    metric_value(t, "citywatch_bridge_fixes_produced_total") == total and t, 30, "the produced count")
    assert metric_value(text, "citywatch_bridge_in_flight") == 0


def test_mixed_arrays_split_across_partitions_and_batches_are_acknowledged_once_all_is_in_kafka(
        make_settings, spawn, mqtt_probe):
    settings = make_settings(bridge={"batch_max_fixes": 7})  # chunks of one message split over batches
    bridge = spawn("bridge", ["bridge"], settings)
    wait_bridge_subscribed(settings, bridge)
    gateway = mqtt_probe()
    t0, vehicles, messages = time.time() - 3600, [f"闽DM{i:03d}" for i in range(12)], 40
    for k in range(messages):  # each message: every vehicle twice, so 24 fixes over several partitions
        fixes = [{"vehicle_id": v, "ts": t0 + 2 * k + j, "lat": 24.5, "lon": 118.1, "class": "taxi"}
                 for j in range(2) for v in vehicles]
        gateway.publish(settings.mqtt.fixes_topic, orjson.dumps(fixes))
    total = messages * 2 * len(vehicles)
    records = read_topic(settings.kafka.bootstrap, settings.kafka.topics.fixes, min_count=total, timeout=90,
                         count=lambda recs: sum(len(decode_fixes(v)) for _, v in recs))
    partitions = list(LAST_PARTITIONS)
    seen: dict[str, list[float]] = defaultdict(list)
    for (key, value), partition in zip(records, partitions, strict=True):
        got = decode_fixes(value)
        assert 0 < len(got) <= 7 and partition_for(key, settings.kafka.partitions) == partition
        for fix in got:
            assert partition_for(fix.vehicle_id.encode(), settings.kafka.partitions) == partition
            seen[fix.vehicle_id].append(fix.ts)
    assert {v: seen[v] for v in vehicles} == {v: [t0 + t for t in range(2 * messages)] for v in vehicles}

    def settled() -> str | None:
        t = scrape(settings.bridge.metrics_port)
        return t if metric_value(t, "citywatch_bridge_fixes_produced_total") == total else None

    text = wait_for(settled, 30, "the produced count")
    assert metric_value(text, "citywatch_bridge_in_flight") == 0  # every message acknowledged


def test_bridges_sharing_the_subscription_split_the_load_without_duplicates(make_settings, spawn, mqtt_probe,
                                                                            mqtt_broker):
    if mqtt_broker.name != "mosquitto":
        pytest.skip("shared subscriptions need mosquitto; this run uses " + mqtt_broker.name)
    settings = make_settings(bridge={"shared_group": "bridges"})
    first = spawn("bridge-1", ["bridge"], settings)
    second = spawn("bridge-2", ["bridge"], settings.replace(bridge={"client_id": settings.bridge.client_id + "-2",
                                                                    "metrics_port": free_port()}))
    ports = [settings.bridge.metrics_port, second_port(second)]

    def produced(port: int) -> float:
        try:
            return metric_value(scrape(port), "citywatch_bridge_fixes_produced_total")
        except OSError:
            return -1

    def subscribed() -> bool:
        assert first.proc.poll() is None and second.proc.poll() is None, first.log() + second.log()
        try:
            return all(metric_value(scrape(p), "citywatch_bridge_mqtt_connected") == 1 for p in ports)
        except OSError:
            return False

    wait_for(subscribed, 60, "both bridges to subscribe")
    gateway = mqtt_probe()
    t0, total = time.time() - 3600, 400
    for k in range(total):
        v = f"闽DS{k % 20:03d}"
        gateway.publish(f"{settings.mqtt.fixes_topic}/{v}",
                        orjson.dumps({"vehicle_id": v, "ts": t0 + k, "lat": 24.5, "lon": 118.1}))
    wait_for(lambda: sum(produced(p) for p in ports) >= total, 60, "both bridges to produce everything")
    records = read_topic(settings.kafka.bootstrap, settings.kafka.topics.fixes, min_count=total, timeout=30,
                         count=lambda recs: sum(len(decode_fixes(v)) for _, v in recs))
    fixes = [(f.vehicle_id, f.ts) for _, v in records for f in decode_fixes(v)]
    assert len(fixes) == total and len(set(fixes)) == total  # each fix once
    assert all(produced(p) > 0 for p in ports)  # the load was shared


def second_port(proc) -> int:
    return int(proc.env["CITYWATCH_BRIDGE__METRICS_PORT"])
