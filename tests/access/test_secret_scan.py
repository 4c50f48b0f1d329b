"""``citywatch up`` with non-default secrets, driven by its simulators, the vetting simulator, a gateway and
some bad requests; then everything it emitted is swept for the secrets and raw ID numbers.

What is swept: ``citywatch up``'s own output, every file under its data folder (the children's logs, the
brokers' logs, the generated mosquitto config, password file and ACL), both ``/metrics`` pages, every record
of every Kafka topic, the alerts a security team received over MQTT, and every HTTP response body. What must
not appear: any MQTT password, the HMAC key, any API key, any raw ID number the run handled.
It also proves the generated broker config works: every internal account (bridge, worker, simulator,
console) and a gateway and a team log in with their passwords and do their jobs.
"""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from datetime import date
from pathlib import Path

import orjson
import pytest

from engine.brokers.ports import free_port
from simulators import vetting as vetting_sim
from tests.access.http_calls import call
from tests.access.mqtt_clients import Login
from tests.conftest import env_for, metric_value, scrape, wait_for
from tests.integration.test_up import Up
from tests.sweep import Sweep, id_variants

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


def secret(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex}"


MQTT_AUTH = {"enabled": True,
             "services": {s: {"username": f"citywatch-{s}", "password": secret(f"mqtt-{s}")}
                          for s in ("bridge", "worker", "simulator", "console")},
             "gateways": {"gw_depot": {"password": secret("mqtt-gateway"), "vehicles": "闽DT"}},
             "teams": {"ops_centre": {"password": secret("mqtt-team")}}}
API_KEYS = {"ops_admin": {"api_key": secret("key-admin"), "role": "admin"},
            "clerk_1": {"api_key": secret("key-clerk"), "role": "clerk"},
            "psb_feed": {"api_key": secret("key-records"), "role": "records"},
            "citizen_app": {"api_key": secret("key-public"), "role": "public"},
            "dispatch_1": {"api_key": secret("key-operator"), "role": "operator"}}
HMAC = secret("hmac")
BAD_ID = "340524198001010013"
TYPED_ID = "35020319900101123X"
DEPOT = {"type": "FeatureCollection", "features": [{
    "type": "Feature", "properties": {"id": "scan-depot", "name": "Scan depot", "rule": "forbid", "classes": ["taxi"]},
    "geometry": {"type": "Polygon", "coordinates": [[[118.10, 24.60], [118.11, 24.60], [118.11, 24.61],
                                                     [118.10, 24.61], [118.10, 24.60]]]}}]}


def secrets() -> dict[str, str]:
    out = {f"MQTT password of {s}": v["password"] for s, v in MQTT_AUTH["services"].items()}
    out |= {"gateway password": MQTT_AUTH["gateways"]["gw_depot"]["password"],
            "team password": MQTT_AUTH["teams"]["ops_centre"]["password"], "HMAC key": HMAC}
    return out | {f"API key {name}": k["api_key"] for name, k in API_KEYS.items()}


def test_nothing_a_run_emits_holds_a_secret_or_a_raw_id_number(make_settings, tmp_path):
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "depot.geojson").write_bytes(orjson.dumps(DEPOT))
    settings = make_settings(mqtt={"port": free_port(), "fixes_topic": "citywatch/fixes",
                                   "alerts_topic": "citywatch/alerts", "auth": MQTT_AUTH},
                             kafka={"bootstrap": f"127.0.0.1:{free_port()}"}, web={"api_keys": API_KEYS},
                             vetting={"hmac_key": HMAC}, zones={"dir": str(zones)})
    port, key = settings.web.port, {name: k["api_key"] for name, k in API_KEYS.items()}
    sweep, bodies = Sweep(), []
    up = Up([], env_for(settings))
    team = None
    try:
        wait_for(lambda: "Citywatch is up." in up.output() or up.proc.poll() is not None, 120, "the banner")
        assert up.proc.poll() is None, up.output()
        map_line = next(line for line in up.lines if line.strip().startswith("Map "))  # names the key, not the key
        assert "operator API key" in map_line and "web.api_keys" in map_line and "dispatch_1" in map_line, map_line

        def healthy() -> bool:
            assert up.proc.poll() is None, up.output()
            try:
                return call(port, "GET", "/api/v1/vetting/health")[0] == 200
            except OSError:
                return False

        wait_for(healthy, 120, "the worker")
        host, mqtt_port = settings.mqtt.host, settings.mqtt.port
        team = Login(host, mqtt_port, "ops_centre", MQTT_AUTH["teams"]["ops_centre"]["password"])
        assert team.connected() and team.subscribe("citywatch/alerts/#")
        gateway = Login(host, mqtt_port, "gw_depot", MQTT_AUTH["gateways"]["gw_depot"]["password"])
        try:
            assert gateway.connected()
            gateway.publish("citywatch/fixes/gw_depot/闽DT0009", orjson.dumps(
                {"vehicle_id": "闽DT0009", "class": "taxi", "ts": time.time() - 5, "lat": 24.605, "lon": 118.105}))
        finally:
            gateway.close()
        assert not Login(host, mqtt_port, "gw_depot", "wrong-" + HMAC).connected()

        # The vetting simulator, as a clerk's system would post: records and applications with raw ID numbers.
        today, n = date.today(), 6
        cases = list(vetting_sim.ApplicantSimulator(today, seed=5).cases(n))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            tally = vetting_sim.run(f"http://127.0.0.1:{port}", n, seed=5, today=today, api_key=key["ops_admin"])
        # Every applicant answered (the decision itself is the vetting tests' business: a record posted just
        # before its application can still be on its way to the records table).
        assert sum(tally.values()) == n and all(got in ("approved", "rejected", "review") for _, got in tally), tally
        sweep.add("vetting simulator output", printed.getvalue())

        # Bad requests: their error bodies are swept too.
        application = dict(cases[0].application)
        for path, body, headers, status in [
            ("/api/v1/vetting/applications", application, {}, 401),
            ("/api/v1/vetting/applications", application, {"Authorization": "Bearer " + HMAC}, 401),
            ("/api/v1/records", cases[0].records or [{"id": "R1", "id_number": TYPED_ID, "kind": "drug_use",
                                                      "date": "2006-01-01"}], {"X-API-Key": key["clerk_1"]}, 403),
            ("/api/v1/vetting/applications", {**application, "id_number": BAD_ID},
             {"X-API-Key": key["clerk_1"]}, 400),
            ("/api/v1/vetting/applications", {**application, "name": f"Wang {TYPED_ID}"},
             {"X-API-Key": key["clerk_1"]}, 400),
            ("/api/v1/vetting/applications", {**application, "id_number": application["id_number"] + "1"},
             {"X-API-Key": key["clerk_1"]}, 400),
        ]:
            got, _, text = call(port, "POST", path, body, headers)
            assert got == status, (path, got, text)
            bodies.append(text)

        # The one-map's data with the operator key as the page sends it (cookie), and refused without it.
        for headers, status in [({"Cookie": f"citywatch_key={key['dispatch_1']}"}, 200), ({}, 401),
                                ({"Cookie": f"citywatch_key={key['clerk_1']}"}, 403)]:
            got, _, text = call(port, "GET", "/api/v1/onemap/snapshot", None, headers)
            assert got == status, (got, text[:200])
            bodies.append(text)

        wait_for(lambda: team.received(), 90, "the depot alert on MQTT (worker account -> team account)")
        wait_for(lambda: "Scan depot" in up.output(), 60, "the alert line (console account)")

        def fleet_flows() -> bool:
            return metric_value(scrape(settings.bridge.metrics_port), "citywatch_bridge_fixes_produced_total") > 5

        wait_for(fleet_flows, 90, "the fleet simulator's fixes through the bridge (simulator and bridge accounts)")
        sweep.add("worker /metrics", scrape(port))
        sweep.add("bridge /metrics", scrape(settings.bridge.metrics_port))
        topics = sweep.add_all_topics(settings.kafka.bootstrap, timeout=90)
        assert {settings.kafka.topics.fixes, settings.kafka.topics.alerts, settings.vetting.topics.records,
                settings.vetting.topics.rejected} <= set(topics)
        code = up.interrupt()
    finally:
        up.kill()
        if team is not None:
            team.close()
    assert code == 0, up.output()[-3000:]
    sweep.add("citywatch up output", up.output())
    sweep.add_many("HTTP body", bodies)
    sweep.add_many("MQTT alert", [p for _, p in team.received()])
    data = Path(settings.up.data_dir)
    assert sweep.add_files(data) >= 5
    users = {line.split(":", 1)[0] for line in (data / "mqtt" / "passwd").read_text().splitlines()}
    assert users >= {"citywatch-bridge", "citywatch-worker", "citywatch-simulator", "citywatch-console", "gw_depot",
                     "ops_centre"}
    raw_ids = {v for c in cases for n in [c.application["id_number"], *(r["id_number"] for r in c.records)]
               for v in id_variants(n)} | set(id_variants(BAD_ID)) | set(id_variants(TYPED_ID))
    swept = {where.split("[")[0] for where, _ in sweep.outputs}
    assert {f"kafka {settings.vetting.topics.records}", f"kafka {settings.kafka.topics.alerts}",
            f"kafka {settings.kafka.topics.fixes}", "MQTT alert", "HTTP body"} <= swept
    sweep.assert_clean(secrets() | {f"raw ID number #{i}": v for i, v in enumerate(sorted(raw_ids))})
