"""The worker's alert delivery on real brokers: its own consumer group, offsets behind the PUBACKs.

One vehicle's alerts sit on one ``alerts`` partition. The worker's Faust group
(``worker.app_id``, which delivered alerts in earlier versions) has committed
part of it; the delivery group has committed nothing. The delivery must start
where the Faust group got to (an upgrade does not re-deliver history), skip an
undeliverable record in its place (counted), deliver the rest in order, and
commit its own group's offset past the last alert once the broker acknowledged
it.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from engine.alerts.mqtt_sink import AlertDelivery
from engine.core.metrics import WorkerMetrics
from engine.topology import ensure_all_topics
from tests.faults.helpers import AlertProbe

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

VID = "闽DG001"
ALERTS = 10
LEGACY_OFFSET = 6      # the Faust group had delivered alerts 0..5
GARBAGE_AT = 8         # offset of a record that is not an alert


async def put_alerts(bootstrap: str, topic: str) -> int:
    """Alerts seq 0..ALERTS-1 of one vehicle with a non-alert record at GARBAGE_AT; returns the partition."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await p.start()
    try:
        partition = -1
        for seq in range(ALERTS + 1):
            if seq == GARBAGE_AT:
                value = b"not an alert"
            else:
                n = seq if seq < GARBAGE_AT else seq - 1
                now = time.time()
                value = orjson.dumps({"alert_id": f"{VID}-{n}", "kind": "zone.enter", "severity": "critical",
                                      "subject": VID, "vehicle_id": VID, "seq": n, "ts": now, "detected_at": now})
            meta = await (await p.send(topic, value, key=VID.encode()))
            partition = meta.partition
        return partition
    finally:
        await p.stop()


async def commit(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        c.assign([tp])
        await c.commit({tp: offset})
    finally:
        await c.stop()


async def committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        return await c.committed(tp)
    finally:
        await c.stop()


def test_delivery_starts_where_the_worker_group_stopped_and_commits_behind_pubacks(make_settings):
    settings = make_settings()
    k = settings.kafka
    ensure_all_topics(settings)
    probe = AlertProbe(settings.mqtt.host, settings.mqtt.port, f"probe-{settings.worker.app_id}",
                       settings.mqtt.alerts_topic)
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)

    async def run() -> tuple[TopicPartition, int | None]:
        partition = await put_alerts(k.bootstrap, k.topics.alerts)
        tp = TopicPartition(k.topics.alerts, partition)
        await commit(k.bootstrap, settings.worker.app_id, tp, LEGACY_OFFSET)
        delivery = AlertDelivery(settings, metrics, f"{settings.worker.app_id}-delivery-test")
        await delivery.start()
        try:
            deadline = time.monotonic() + 60
            while not any(a["seq"] == ALERTS - 1 for a in probe.received()):
                assert time.monotonic() < deadline, f"alerts delivered so far: {probe.received()}"
                await asyncio.sleep(0.1)
            end = ALERTS + 1
            while (got := await committed(k.bootstrap, delivery.group, tp)) != end:
                assert time.monotonic() < deadline, f"delivery group committed {got}, not {end}"
                await asyncio.sleep(0.2)
        finally:
            await delivery.stop()
        return tp, got

    try:
        tp, got = asyncio.run(run())
    finally:
        probe.close()
    seqs = [a["seq"] for a in probe.received()]
    assert seqs == list(range(LEGACY_OFFSET, ALERTS)), seqs  # in order, from the Faust group's offset, once
    assert got == ALERTS + 1
    assert registry.get_sample_value("citywatch_alert_delivery_failures_total", {"channel": "mqtt"}) == 1
    assert registry.get_sample_value("citywatch_alerts_delivered_total", {"channel": "mqtt"}) == ALERTS - LEGACY_OFFSET
