"""MQTT broker restarted while gateways publish at QoS 1: no acknowledged fix is lost, each vehicle stays in order.

mosquitto saves the persistent sessions (the bridge's subscription and the
messages queued for it) on SIGTERM and restores them on start; gateways and
the bridge reconnect by themselves (paho), the gateways re-send what the
broker had not acknowledged, the broker re-sends what the bridge had not.
The bridge is frozen (SIGSTOP) before the restart so that the broker holds a
queue of acknowledged fixes for it when it goes down: those must survive.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.conftest import metric_value, scrape, wait_bridge_subscribed, wait_for
from tests.faults.helpers import Gateway, all_acked, duplicates, kafka_fixes, order_violations, publish_step, report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

GATEWAYS, VEHICLES, STEPS = 4, 5, 150  # 3,000 single-fix messages


def test_broker_restart_loses_no_acknowledged_fix(own_mqtt, kafka_broker, fault_settings, spawn):
    mqtt = own_mqtt()
    settings = fault_settings(kafka=kafka_broker, mqtt=mqtt)
    bridge = spawn("bridge", ["bridge"], settings)
    wait_bridge_subscribed(settings, bridge)
    gateways = [Gateway(mqtt.host, mqtt.port, f"gw-{settings.bridge.client_id}-{g}") for g in range(GATEWAYS)]
    t0 = time.time() - 3600
    frozen_steps, down_steps = range(30, 70), range(50, 70)

    for step in range(STEPS):
        if step == frozen_steps.start:
            os.kill(bridge.proc.pid, signal.SIGSTOP)  # the broker queues (and acknowledges) for the bridge
        if step == down_steps.start:
            mqtt.stop()            # saves that queue; the next 20 steps wait in the gateways (paho)
        if step == down_steps.stop:
            mqtt.start()
            os.kill(bridge.proc.pid, signal.SIGCONT)
        publish_step(gateways, settings, "闽DM", VEHICLES, t0, step)
        time.sleep(0.005)

    acked = all_acked(gateways)
    assert len(acked) == GATEWAYS * VEHICLES * STEPS
    fixes, rejected = kafka_fixes(settings, set(acked))
    lost = set(acked) - set(fixes) - set(rejected)
    assert not lost
    assert not rejected
    assert order_violations(fixes) == []
    assert bridge.proc.poll() is None, bridge.log()
    wait_for(lambda: metric_value(scrape(settings.bridge.metrics_port), "citywatch_bridge_mqtt_connected") == 1,
             30, "the bridge to be subscribed again")
    report("mqtt-restart", sent=len(acked), in_kafka=len(set(fixes)), rejected=len(rejected), lost=len(lost),
           duplicates=duplicates(fixes), queued_for_frozen_bridge=20 * GATEWAYS * VEHICLES,
           published_while_down=len(down_steps) * GATEWAYS * VEHICLES)
    for gw in gateways:
        gw.close()
