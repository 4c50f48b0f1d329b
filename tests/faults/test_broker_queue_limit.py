"""Past the MQTT broker's queue limit for the bridge: what mosquitto does, and that it is not silent.

Measured (mosquitto 2.0.11): a QoS 1 publish beyond ``max_queued_messages``
for the bridge's session is still acknowledged to the gateway and then
dropped (mosquitto issue #3687, open); the gateway cannot know, so it cannot
retry. No broker setting refuses instead. What Citywatch can do is size the
queue (``engine/brokers/mqtt.py``: 1,000,000 messages) and make any drop
visible: the bridge mirrors ``$SYS/broker/publish/messages/dropped`` into
``citywatch_bridge_broker_dropped_messages_total`` and logs it. This test shrinks
the limit to 100, leaves the bridge's session offline and checks that every
fix lost is counted there.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import metric_value, scrape, wait_bridge_subscribed, wait_for
from tests.faults.helpers import Gateway, all_acked, report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

LIMIT, SENT = 100, 300


def test_fixes_over_the_broker_queue_limit_are_counted_not_silent(own_mqtt, kafka_broker, fault_settings, spawn):
    mqtt = own_mqtt(max_queued_messages=LIMIT, sys_interval=1)
    settings = fault_settings(kafka=kafka_broker, mqtt=mqtt)
    first = spawn("bridge-1", ["bridge"], settings)
    wait_bridge_subscribed(settings, first)
    assert first.stop() == 0  # its persistent session stays at the broker, offline

    gw = Gateway(mqtt.host, mqtt.port, f"gw-{settings.bridge.client_id}")
    t0 = time.time() - 3600
    for k in range(SENT):
        vid = f"闽DL{k % 10:03d}"
        gw.send(f"{settings.mqtt.fixes_topic}/{vid}", {"vehicle_id": vid, "ts": t0 + k, "lat": 24.5, "lon": 118.1})
    acked = all_acked([gw])
    assert len(acked) == SENT  # mosquitto acknowledged every one, queue limit or not

    bridge = spawn("bridge-2", ["bridge"], settings)
    wait_bridge_subscribed(settings, bridge)

    def settled() -> tuple[float, float] | None:
        text = scrape(settings.bridge.metrics_port)
        produced = metric_value(text, "citywatch_bridge_fixes_produced_total")
        dropped = metric_value(text, "citywatch_bridge_broker_dropped_messages_total")
        return (produced, dropped) if dropped > 0 and produced + dropped >= SENT else None

    produced, dropped = wait_for(settled, 30, "the bridge to drain the queue and report the broker's drops")
    lost = SENT - produced
    assert produced >= LIMIT
    assert lost == dropped  # every fix lost is counted by the broker and shown by the bridge
    assert "dropped messages" in bridge.log_path.read_text(encoding="utf-8")
    report("broker-queue-limit", sent=SENT, acked_by_broker=len(acked), queue_limit=LIMIT, in_kafka=int(produced),
           lost=int(lost), counted_in_metric=int(dropped))
    gw.close()
