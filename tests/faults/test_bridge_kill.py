"""The bridge killed -9 mid-stream and started again: no acknowledged fix is lost.

The bridge acknowledges an MQTT message only once Kafka has it, so what it
held when it died (partition batches lingering, records on their way to
Kafka) is still in its persistent session at the broker and comes back to the
restarted bridge. A long batch linger makes sure it holds plenty at the kill.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.conftest import metric_value, scrape, wait_bridge_subscribed, wait_for
from tests.faults.helpers import Gateway, all_acked, duplicates, kafka_fixes, order_violations, publish_step, report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

GATEWAYS, VEHICLES, STEPS = 4, 5, 150  # 3,000 single-fix messages


def test_bridge_killed_mid_stream_loses_nothing(make_settings, mqtt_broker, spawn):
    settings = make_settings(bridge={"batch_linger_ms": 400})
    bridge = spawn("bridge-1", ["bridge"], settings)
    wait_bridge_subscribed(settings, bridge)
    gateways = [Gateway(mqtt_broker.host, mqtt_broker.port, f"gw-{settings.bridge.client_id}-{g}")
                for g in range(GATEWAYS)]
    t0 = time.time() - 3600
    held_at_kill = produced_at_kill = -1.0
    for step in range(STEPS):
        if step == STEPS // 2:
            wait_for(lambda: metric_value(scrape(settings.bridge.metrics_port),  # noqa: B023
                                          "citywatch_bridge_fixes_produced_total") > 0, 30, "a first batch in Kafka")
            text = scrape(settings.bridge.metrics_port)
            held_at_kill = metric_value(text, "citywatch_bridge_in_flight")
            produced_at_kill = metric_value(text, "citywatch_bridge_fixes_produced_total")
            bridge.proc.send_signal(signal.SIGKILL)
            bridge.proc.wait(10)
        if step == STEPS // 2 + 20:  # 20 steps published while no bridge runs: queued in its session
            bridge = spawn("bridge-2", ["bridge"], settings)
        publish_step(gateways, settings, "闽DK", VEHICLES, t0, step)
        time.sleep(0.005)

    acked = all_acked(gateways)
    assert held_at_kill > 0  # the kill did catch messages in the bridge's hands
    fixes, rejected = kafka_fixes(settings, set(acked))
    lost = set(acked) - set(fixes) - set(rejected)
    assert not lost
    assert order_violations(fixes) == []
    assert bridge.proc.poll() is None, bridge.log()
    wait_for(lambda: metric_value(scrape(settings.bridge.metrics_port), "citywatch_bridge_in_flight") == 0, 30,
             "the restarted bridge to acknowledge everything")
    report("bridge-kill-9", sent=len(acked), in_kafka=len(set(fixes)), rejected=len(rejected), lost=len(lost),
           duplicates=duplicates(fixes), held_at_kill=int(held_at_kill), produced_before_kill=int(produced_at_kill))
    for gw in gateways:
        gw.close()
