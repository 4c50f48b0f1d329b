"""Alert delivery while the MQTT broker is down: nothing lost or skipped, in order per vehicle, backlog visible.

Alerts are produced straight to the Kafka ``alerts`` topic (keyed by subject,
as the worker's Kafka sink writes them), each vehicle's with a rising
``seq``. With the broker stopped, the worker's ``deliver_alerts`` must keep
them (the backlog metric shows how many), deliver every one in order per
vehicle when the broker returns, and commit a Kafka offset only after the
broker acknowledged the alert: a worker stopped (SIGTERM) with alerts still
undelivered leaves them to the next worker instead of losing them.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.conftest import metric_value, scrape, wait_for
from tests.faults.helpers import AlertProbe, first_delivery_order, report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

VEHICLES = 5


def produce_alerts(bootstrap: str, topic: str, seqs: range) -> list[str]:
    ids: list[str] = []
    now = time.time()

    async def run() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await p.start()
        try:
            for seq in seqs:
                for v in range(VEHICLES):
                    vid = f"闽DA{v:03d}"
                    alert = {"alert_id": f"{vid}-{seq}", "kind": "zone.enter", "severity": "critical",
                             "subject": vid, "vehicle_id": vid, "seq": seq, "ts": now, "detected_at": now}
                    ids.append(alert["alert_id"])
                    await p.send(topic, orjson.dumps(alert), key=vid.encode())
            await p.flush()
        finally:
            await p.stop()

    asyncio.run(run())
    return ids


def test_alerts_wait_in_kafka_while_mqtt_is_down_and_arrive_in_order(own_mqtt, kafka_broker, fault_settings,
                                                                    spawn):
    mqtt = own_mqtt()
    settings = fault_settings(kafka=kafka_broker, mqtt=mqtt)
    k, port = settings.kafka, settings.web.port
    probe = AlertProbe(mqtt.host, mqtt.port, f"probe-{settings.worker.app_id}", settings.mqtt.alerts_topic)
    worker = spawn("worker-1", ["worker"], settings)

    def worker_metric(name: str) -> float:
        assert worker.proc.poll() is None, worker.log()
        try:
            return metric_value(scrape(port), name)
        except OSError:
            return -1

    sent = produce_alerts(k.bootstrap, k.topics.alerts, range(0, 10))
    wait_for(lambda: probe.ids() >= set(sent), 90, "the first alerts (broker up)")

    mqtt.stop()
    sent += produce_alerts(k.bootstrap, k.topics.alerts, range(10, 60))
    wait_for(lambda: worker_metric("citywatch_alert_delivery_backlog") == 50 * VEHICLES, 60,
             "the backlog metric to count the undelivered alerts")
    lag = wait_for(lambda: (s := worker_metric("citywatch_alert_delivery_lag_seconds")) >= 1 and s, 30,
                   "the delivery lag to rise while the broker is down")
    mqtt.start()
    wait_for(lambda: probe.ids() >= set(sent), 60, "every alert after the broker came back")
    wait_for(lambda: worker_metric("citywatch_alert_delivery_backlog") == 0, 30, "the backlog to drain")

    # Stopped with alerts in flight: they are not committed, the next worker delivers them.
    mqtt.stop()
    sent += produce_alerts(k.bootstrap, k.topics.alerts, range(60, 70))
    wait_for(lambda: worker_metric("citywatch_alert_delivery_backlog") == 10 * VEHICLES, 60,
             "the undelivered alerts before SIGTERM")
    assert worker.stop() == 0
    mqtt.start()
    port = int(settings.web.port)
    worker = spawn("worker-2", ["worker"], settings)
    wait_for(lambda: probe.ids() >= set(sent), 90, "the next worker to deliver what the stopped one held")

    received = probe.received()
    order = first_delivery_order(received)
    assert all(seqs == sorted(seqs) for seqs in order.values()), order
    assert probe.ids() == set(sent)  # nothing invented
    report("alert-delivery", sent=len(sent), delivered=len(probe.ids()), lost=len(set(sent) - probe.ids()),
           duplicates=len(received) - len(probe.ids()), backlog_seen=50 * VEHICLES, lag_s_seen=round(lag, 1),
           held_at_sigterm=10 * VEHICLES)
    probe.close()
