"""Kafka unavailable for a while: the bridge holds back within its bound, says so once, and catches up.

Tansu here stores in memory only (a restart would empty it), so the outage
is a pause: SIGSTOP leaves its sockets open but answers nothing, like a hung
or partitioned broker; produce requests time out (``bridge.kafka_timeout_s``).
The bridge holds at most ``bridge.max_in_flight`` messages (100 here) and
then stops reading from the MQTT broker; every other fix waits, acknowledged
to the gateway, in the broker's queue for the bridge's session. The MQTT
keepalive is 1 s: the bridge keeps pinging while it does not read, so
mosquitto keeps its connection (``mqtt_reconnects`` in the summary; a
reconnect with redelivery is what ``test_mqtt_restart.py`` goes through).
No fix may be lost or reordered.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import metric_value, scrape, wait_bridge_subscribed, wait_for
from tests.faults.helpers import Gateway, all_acked, duplicates, kafka_fixes, order_violations, report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

BOUND, VEHICLES, STEPS = 100, 20, 100  # 2,000 fixes published during the outage


def test_bridge_holds_back_within_its_bound_and_catches_up(own_kafka, mqtt_broker, fault_settings, spawn):
    settings = fault_settings(kafka=own_kafka, mqtt=mqtt_broker,
                              bridge={"max_in_flight": BOUND, "kafka_timeout_s": 2}).replace(mqtt={"keepalive_s": 1})
    bridge = spawn("bridge", ["bridge"], settings)
    wait_bridge_subscribed(settings, bridge)
    gw = Gateway(mqtt_broker.host, mqtt_broker.port, f"gw-{settings.bridge.client_id}")
    t0 = time.time() - 3600

    def publish(steps: range) -> None:
        for step in steps:
            for v in range(VEHICLES):
                vid = f"闽DQ{v:03d}"
                gw.send(f"{settings.mqtt.fixes_topic}/{vid}",
                        {"vehicle_id": vid, "ts": t0 + step, "lat": 24.5, "lon": 118.1 + step * 1e-5})

    publish(range(5))
    kafka_fixes(settings, set(all_acked([gw])))  # flowing before the outage

    # A just-created topic on a loaded broker can time out a first produce: let any such episode end (its
    # "takes records again" line) before the outage, whose lines alone are counted below.
    def episodes_closed() -> bool:
        text = bridge.log_path.read_text(encoding="utf-8")
        return text.count("Kafka does not take records") == text.count("Kafka takes records again")

    wait_for(episodes_closed, 30, "an earlier produce timeout to end")
    before_outage = len(bridge.log_path.read_text(encoding="utf-8"))
    own_kafka.pause()
    paused_at = time.monotonic()
    publish(range(5, 5 + STEPS))
    all_acked([gw])  # the MQTT broker took every fix: from here on they are its (and the bridge's) to keep
    seen: list[float] = []

    def metrics() -> str:
        assert bridge.proc.poll() is None, bridge.log()
        text = scrape(settings.bridge.metrics_port)
        seen.append(metric_value(text, "citywatch_bridge_in_flight"))
        return text

    def holding_back() -> bool:
        text = metrics()
        return (metric_value(text, "citywatch_bridge_kafka_up") == 0
                and metric_value(text, "citywatch_bridge_backpressure_total") >= 1)

    wait_for(holding_back, 30, "the bridge to report Kafka down and hold back")
    for _ in range(15):  # a few more looks during the outage (past mosquitto's 1.5 x keepalive)
        metrics()
        time.sleep(0.2)
    errors = metric_value(metrics(), "citywatch_bridge_kafka_errors_total")
    own_kafka.resume()
    outage_s = time.monotonic() - paused_at

    acked = all_acked([gw])
    fixes, rejected = kafka_fixes(settings, set(acked), timeout=120)
    lost = set(acked) - set(fixes) - set(rejected)
    assert not lost
    assert order_violations(fixes) == []
    wait_for(lambda: (t := metrics()) and metric_value(t, "citywatch_bridge_kafka_up") == 1
             and metric_value(t, "citywatch_bridge_in_flight") == 0, 30, "the bridge to report Kafka up, all acked")
    assert max(seen) <= BOUND  # bounded memory: never held more than bridge.max_in_flight
    log = bridge.log_path.read_text(encoding="utf-8")
    report("kafka-outage", sent=len(acked), in_kafka=len(set(fixes)), rejected=len(rejected), lost=len(lost),
           duplicates=duplicates(fixes), outage_s=round(outage_s, 1), bound=BOUND, max_held=int(max(seen)),
           failed_produce_attempts=int(errors), mqtt_reconnects=log.count("MQTT connection lost"))
    gw.close()
    assert log[before_outage:].count("Kafka does not take records") == 1  # one line per outage, not one per record
    assert log.count("Kafka takes records again") == 1
