"""``citywatch up`` as a newcomer runs it: brokers spawned or reused, alerts printed, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time

import orjson
import pytest

from engine.brokers.ports import free_port
from tests.conftest import ROOT, TEST_KAFKA, env_for, wait_bridge_subscribed, wait_for
from tests.integration.up_process import Up, alive
from tests.jt808.terminal import drive

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_up_spawns_everything_shows_the_scripted_violation_and_stops_clean(make_settings, tmp_path):
    settings = make_settings(mqtt={"port": free_port(), "fixes_topic": "citywatch/fixes",
                                   "alerts_topic": "citywatch/alerts"},
                             kafka={"bootstrap": f"127.0.0.1:{free_port()}"},
                             simulator={"speedup": 2.0})  # the scripted truck reaches the tunnel in ~18 s
    up = Up(["--kafka", TEST_KAFKA], env_for(settings))  # the Apache Kafka pass runs `citywatch up --kafka apache`
    try:
        wait_for(lambda: "Citywatch is up." in up.output() or up.proc.poll() is not None, 120, "the banner")
        assert up.proc.poll() is None, up.output()
        out = up.output()
        assert "simulator (pid" in out and "reports (pid" in out
        assert re.search(r"MQTT .* (mosquitto|amqtt) \(spawned, pid \d+\)", out), out  # the broker that runs, by name
        if TEST_KAFKA == "apache":
            assert re.search(r"Kafka .* apache-kafka-1 \(spawned, pid \d+\); Apache Kafka \(kafka.broker: kafka\)", out), out
        else:
            assert re.search(r"Kafka .* tansu \(spawned, pid \d+\); Tansu, in memory \(kafka.broker: tansu\)", out), out
        assert f"127.0.0.1:{settings.mqtt.port}" in out and settings.kafka.bootstrap in out
        pids = up.pids()
        # mqtt broker, kafka broker, worker, bridge, JT/T 808 gateway, fleet, report and JT/T 808 terminal simulators
        assert len(pids) == 8
        wait_for(lambda: re.search(r"CRITICAL\s+zone\.enter\s+闽DH0001 \(hazmat\) entered Haicang Tunnel", up.output()),
                 150, f"the scripted violation line; output so far:\n{up.output()}")
        # Demo SLAs of seconds and departments that sometimes answer late: citizen tasks escalate on the console.
        wait_for(lambda: re.search(r"task\.escalated\s+task \d{8}-\w+ \(\w+\) escalated \w+ -> ", up.output()), 150,
                 f"a task escalation line; output so far:\n{up.output()[-3000:]}")
        code = up.interrupt()
    finally:
        up.kill()
    assert code == 0, up.output()
    assert "citywatch: stopped" in up.output()
    assert [p for p in pids if alive(p)] == []


def test_up_reuses_running_brokers_and_takes_another_zone_folder(make_settings, mqtt_probe, tmp_path):
    zones = tmp_path / "other-zones"
    zones.mkdir()
    (zones / "depot.geojson").write_text(orjson.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"id": "test-depot", "name": "Test depot", "rule": "forbid",
                                          "classes": ["taxi"]},
        "geometry": {"type": "Polygon", "coordinates": [[[118.10, 24.60], [118.11, 24.60], [118.11, 24.61],
                                                         [118.10, 24.61], [118.10, 24.60]]]}}]}).decode())
    settings = make_settings(jt808={"default_class": "taxi"})
    probe = mqtt_probe([f"{settings.mqtt.alerts_topic}/#"])
    up = Up(["--no-simulator", "--zones", str(zones)], env_for(settings))
    try:
        wait_for(lambda: "Citywatch is up." in up.output() or up.proc.poll() is not None, 90, "the banner")
        assert up.proc.poll() is None, up.output()
        assert up.output().count("already running there (reused)") == 2
        assert "simulator" not in up.output().split("Processes", 1)[1].splitlines()[0]
        assert len(up.pids()) == 3  # worker, bridge and the JT/T 808 gateway only

        wait_bridge_subscribed(settings)
        fix = {"vehicle_id": "闽DT0009", "class": "taxi", "ts": time.time() - 5, "lat": 24.605, "lon": 118.105}
        probe.publish(f"{settings.mqtt.fixes_topic}/闽DT0009", orjson.dumps(fix))
        got = wait_for(lambda: [orjson.loads(p) for _, p in probe.received()], 90, "the depot alert")
        assert [(a["kind"], a["zone_id"]) for a in got] == [("zone.enter", "test-depot")]
        wait_for(lambda: "Test depot" in up.output(), 30, "the alert line on the console")

        # A JT/T 808 taxi terminal (open registration, jt808.default_class taxi) drives into the depot.
        t0 = time.time() - 120   # a minute apart: 1 km a minute is a plausible drive, not a jump
        asyncio.run(drive(settings.jt808.port, "13900000010", "闽DT0010",
                          [(t0, 118.095, 24.605), (t0 + 60, 118.105, 24.605)]))
        got = wait_for(lambda: [a for _, p in probe.received() if (a := orjson.loads(p))["vehicle_id"] == "闽DT0010"],
                       90, "the JT/T 808 terminal's depot alert")
        assert [(a["kind"], a["zone_id"], a["class"]) for a in got] == [("zone.enter", "test-depot", "taxi")]
        pids = up.pids()
        code = up.interrupt()
    finally:
        up.kill()
    assert code == 0, up.output()
    assert [p for p in pids if alive(p)] == []


def test_up_reports_a_bad_config_file_clearly(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("mqtt:\n  port: not-a-port\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "engine", "up", "--config", str(bad)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "setting mqtt.port: expected an integer, got 'not-a-port'" in r.stderr
