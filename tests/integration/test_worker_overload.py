"""A worker that falls behind says so (``system.overloaded``, ``citywatch_worker_lag_seconds``), and says when it
has caught up (``system.overload_cleared``, the gauge back to 0), on real brokers.

Fixes pile up in Kafka while no worker reads them - the backlog a worker finds after an outage, or one that
builds while it cannot keep up - and stay there longer than ``worker.max_lag_s``. The worker that then
starts reads them late: it must raise one overload alert, show the lag on its gauge while it catches up,
and once it is idle report 0 and clear the alert, once, with the same episode id. The records are old-JSON
fix objects (the mixed-version form the worker still reads), produced straight to the ``fixes`` topic.
"""

from __future__ import annotations

import asyncio
import socket
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from engine.kafka.admin import create_topics
from tests.conftest import metric_value, read_topic, scrape, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

VEHICLES, STEPS = 40, 60   # 2,400 records of one fix each
MAX_LAG_S = 2.0


def backlog(t0: float) -> list[tuple[str, bytes]]:
    out = []
    for step in range(STEPS):
        for v in range(VEHICLES):
            vid = f"闽DL{v:03d}"
            fix = {"vehicle_id": vid, "class": "taxi", "ts": t0 + 10 * step, "lat": 24.50 + v * 0.001,
                   "lon": 118.10 + step * 0.0002, "speed_kmh": 30}
            out.append((vid, orjson.dumps(fix)))
    return out


def produce(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    async def run() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await p.start()
        try:
            for vid, value in records:
                await p.send(topic, value, key=vid.encode())
            await p.flush()
        finally:
            await p.stop()

    asyncio.run(run())


def test_a_worker_behind_raises_one_overload_alert_shows_its_lag_and_clears_when_idle(make_settings, spawn,
                                                                                       mqtt_probe):
    settings = make_settings(worker={"max_lag_s": MAX_LAG_S, "batch_size": 20})
    k = settings.kafka
    worker_id = f"{socket.gethostname()}:{settings.web.port}"
    alerts = mqtt_probe([f"{settings.mqtt.alerts_topic}/#"])
    create_topics(k.bootstrap, {k.topics.fixes: (k.partitions, {})})
    records = backlog(time.time() - 3600)
    produce(k.bootstrap, k.topics.fixes, records)
    time.sleep(MAX_LAG_S + 1.0)  # the fixes wait in Kafka longer than the limit: no worker reads them yet
    worker = spawn("worker", ["worker"], settings)

    def system_alerts() -> list[tuple[str, dict]]:
        assert worker.proc.poll() is None, worker.log()
        return [(t, a) for t, a in ((t, orjson.loads(p)) for t, p in alerts.received())
                if a["kind"].startswith("system.")]

    lags: list[float] = []

    def lag_and_alert_seen() -> bool:
        try:
            lags.append(metric_value(scrape(settings.web.port), "citywatch_worker_lag_seconds"))
        except OSError:
            pass
        raised = any(a["kind"] == "system.overloaded" for _, a in system_alerts())
        return bool(lags) and max(lags) > MAX_LAG_S and raised

    wait_for(lag_and_alert_seen, 120, "the lag on the gauge and system.overloaded over MQTT", interval=0.1)
    wait_for(lambda: metric_value(scrape(settings.web.port), "citywatch_fixes_received_total") >= len(records), 60,
             "the backlog to be processed")
    wait_for(lambda: any(a["kind"] == "system.overload_cleared" for _, a in system_alerts()), 60,
             "system.overload_cleared once the worker is idle")
    assert metric_value(scrape(settings.web.port), "citywatch_worker_lag_seconds") == 0.0  # idle: 0, not the last age
    time.sleep(2 * MAX_LAG_S)  # let a wrongly repeated alert arrive too

    got = system_alerts()
    assert [a["kind"] for _, a in got] == ["system.overloaded", "system.overload_cleared"], got
    (raised_topic, raised), (cleared_topic, cleared) = got
    prefix = settings.mqtt.alerts_topic
    assert raised_topic == f"{prefix}/system.overloaded/{worker_id}"
    assert cleared_topic == f"{prefix}/system.overload_cleared/{worker_id}"
    assert raised["severity"] == "warning" and cleared["severity"] == "info"
    assert raised["lag_s"] > MAX_LAG_S + 1.0 and raised["max_lag_s"] == MAX_LAG_S  # waited at least the sleep
    assert raised["worker_id"] == cleared["worker_id"] == raised["subject"] == worker_id
    assert raised["host"] == socket.gethostname() and "vehicle_id" not in raised
    assert cleared["incident_id"] == raised["alert_id"] != cleared["alert_id"]
    assert cleared["duration_s"] > 0 and cleared["peak_lag_s"] >= raised["lag_s"]
    assert raised["ts"].endswith("+08:00") and raised["detected_at"]

    def system(recs: list) -> list[dict]:
        return [a for a in (orjson.loads(v) for _, v in recs) if a["kind"].startswith("system.")]

    on_kafka = system(read_topic(k.bootstrap, k.topics.alerts, min_count=2, count=lambda recs: len(system(recs))))
    assert [a["alert_id"] for a in on_kafka] == [raised["alert_id"], cleared["alert_id"]]
