"""SIGTERM: the bridge flushes the fixes waiting in its partition batches to Kafka and acknowledges them.

With a linger far longer than the test, every fix sits in the bridge's
batches (received, not in Kafka, not acknowledged) when SIGTERM arrives. On
the way out the bridge must produce them, acknowledge them to the broker and
only then disconnect. Proof that the acknowledgements reached the broker:
a bridge started afterwards on the same session gets none of them again.
MQTT delivers a session's messages in order (redeliveries first), so once a
marker fix published after the restart is in Kafka, any redelivery would be
there before it.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import metric_value, scrape, wait_bridge_subscribed, wait_for
from tests.faults.helpers import Gateway, all_acked, duplicates, kafka_fixes, report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

N = 300


def test_sigterm_flushes_the_lingering_batches_and_acknowledges_them(make_settings, mqtt_broker, spawn):
    settings = make_settings(bridge={"batch_linger_ms": 600_000, "batch_max_fixes": 100_000})
    bridge = spawn("bridge-1", ["bridge"], settings)
    wait_bridge_subscribed(settings, bridge)
    gw = Gateway(mqtt_broker.host, mqtt_broker.port, f"gw-{settings.bridge.client_id}")
    t0 = time.time() - 3600
    for k in range(N):
        vid = f"闽DT{k % 10:03d}"
        gw.send(f"{settings.mqtt.fixes_topic}/{vid}", {"vehicle_id": vid, "ts": t0 + k, "lat": 24.5, "lon": 118.1})
    acked = all_acked([gw])

    def lingering() -> bool:
        text = scrape(settings.bridge.metrics_port)
        return (metric_value(text, "citywatch_bridge_in_flight") == N
                and metric_value(text, "citywatch_bridge_fixes_produced_total") == 0)

    wait_for(lingering, 30, f"the bridge to hold all {N} fixes in its batches")
    assert bridge.stop() == 0  # SIGTERM
    log = bridge.log_path.read_text(encoding="utf-8")
    assert f"flushed and acknowledged the {N} messages it held" in log
    flushed, _ = kafka_fixes(settings, set(acked))  # in Kafka with no bridge running: flushed on the way out
    assert len(set(flushed)) == N

    marker = ("闽DT999", t0 + N + 1)
    again = spawn("bridge-2", ["bridge"], settings.replace(bridge={"batch_linger_ms": 20}))  # same session
    wait_bridge_subscribed(settings, again)
    gw.send(f"{settings.mqtt.fixes_topic}/{marker[0]}", {"vehicle_id": marker[0], "ts": marker[1], "lat": 24.5,
                                                        "lon": 118.1})
    all_acked([gw])
    fixes, rejected = kafka_fixes(settings, set(acked) | {marker})
    lost = set(acked) - set(fixes) - set(rejected)
    assert not lost
    assert duplicates(fixes) == 0  # nothing was redelivered: the acknowledgements reached the broker
    report("sigterm-flush", sent=len(acked), held_at_sigterm=N, flushed_at_exit=len(set(flushed)),
           in_kafka=len(set(fixes) - {marker}), lost=len(lost), duplicates=duplicates(fixes))
    gw.close()
