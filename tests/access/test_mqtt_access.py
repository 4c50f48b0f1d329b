"""MQTT access control on a real mosquitto (and amqtt) started with the config ``citywatch up`` generates.

Non-delivery is proven without waiting for a timeout: a refused publish is acknowledged (PUBACK) only
after the broker has dropped it, so a *later* allowed message to the same subscriber (a sentinel)
arrives after it had it been routed. A subscriber that gets the sentinel and not the forbidden
message shows the broker did not deliver it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest

from engine.brokers.mqtt import mosquitto_binary, start_mqtt_broker
from engine.brokers.ports import free_port
from engine.settings import load_settings
from engine.telemetry.wire import decode_fixes
from tests.access.mqtt_clients import Login
from tests.conftest import metric_value, read_topic, scrape, wait_bridge_subscribed, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

FIXES, ALERTS = "sec/fixes", "sec/alerts"
AUTH = {"enabled": True,
        "services": {"bridge": {"username": "citywatch-bridge", "password": "bridge-secret-1"},
                     "worker": {"username": "citywatch-worker", "password": "worker-secret-1"},
                     "simulator": {"username": "citywatch-simulator", "password": "sim-secret-1"},
                     "console": {"username": "citywatch-console", "password": "console-secret-1"}},
        "gateways": {"gw_a": {"password": "gateway-a-secret", "vehicles": "闽DA"},
                     "gw_b": {"password": "gateway-b-secret"}},
        "teams": {"ops": {"password": "team-ops-secret"}}}
MQTT = {"fixes_topic": FIXES, "alerts_topic": ALERTS, "auth": AUTH}
needs_mosquitto = pytest.mark.skipif(mosquitto_binary() is None, reason="no mosquitto binary on this machine")


def fix(vehicle: str, k: int = 0) -> bytes:
    return orjson.dumps({"vehicle_id": vehicle, "ts": time.time() - 60 + k, "lat": 24.5, "lon": 118.1})


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    settings = load_settings(env={}).replace(mqtt=MQTT)
    broker = start_mqtt_broker("127.0.0.1", free_port(), workdir=tmp_path_factory.mktemp("secure-mqtt"),
                               prefer="mosquitto" if mosquitto_binary() else "amqtt", settings=settings)
    yield broker
    broker.stop()


@pytest.fixture
def login(secure_broker):
    made: list[Login] = []

    def make(username: str | None, password: str | None = None) -> Login:
        c = Login(secure_broker.host, secure_broker.port, username, password)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def as_(who: str) -> tuple[str, str]:
    """Username and password of an account in AUTH."""
    if who in AUTH["services"]:
        s = AUTH["services"][who]
        return s["username"], s["password"]
    group = "gateways" if who in AUTH["gateways"] else "teams"
    return who, AUTH[group][who]["password"]


def test_wrong_password_unknown_user_and_anonymous_are_refused_at_connect(login):
    assert login(*as_("gw_a")).connected()
    for username, password in (("gw_a", "gateway-b-secret"), ("gw_a", ""), ("nobody", "gateway-a-secret"),
                               (None, None)):
        c = login(username, password)
        assert not c.connected(), username
        assert c.connack is not None and c.connack.getName() in ("Not authorized", "Bad user name or password")


def test_a_gateway_cannot_publish_into_another_prefix_or_the_alerts_and_the_bridge_never_sees_it(
        secure_broker, make_settings, spawn, login):
    settings = make_settings(mqtt={**MQTT, "host": secure_broker.host, "port": secure_broker.port,
                                   "username": as_("bridge")[0], "password": as_("bridge")[1]})
    bridge = spawn("bridge", ["bridge"], settings)
    wait_bridge_subscribed(settings, bridge)
    watcher = login(*as_("bridge"))  # the bridge's own view of the fixes (a second connection of its account)
    assert watcher.connected() and watcher.subscribe(f"{FIXES}/#")
    team = login(*as_("ops"))
    assert team.connected() and team.subscribe(f"{ALERTS}/#")
    a, b, worker = login(*as_("gw_a")), login(*as_("gw_b")), login(*as_("worker"))
    assert a.connected() and b.connected() and worker.connected()

    a.publish(f"{FIXES}/gw_a/闽DA0001", fix("闽DA0001"))                   # its own prefix: delivered
    a.publish(f"{FIXES}/gw_b/闽DB0001", fix("闽DB0001"))                   # another gateway's prefix: dropped
    a.publish(f"{FIXES}/闽DA0002", fix("闽DA0002"))                        # the bare fixes topic: dropped
    a.publish(f"{ALERTS}/zone.enter/闽DA0001", b'{"kind": "zone.enter"}')  # the alerts: dropped
    a.publish(f"{FIXES}/gw_a/闽DB0003", fix("闽DB0003"))                   # its prefix, not its vehicle: bridge rejects
    b.publish(f"{FIXES}/gw_b/闽DB0002", fix("闽DB0002"))                   # sentinel for the fixes
    worker.publish(f"{ALERTS}/vehicle.offline/闽DA0001", b'{"kind": "vehicle.offline"}')  # sentinel for the alerts

    wait_for(lambda: len(watcher.received()) >= 3 and team.received(), 30, "the sentinels")
    assert [t for t, _ in watcher.received()] == [f"{FIXES}/gw_a/闽DA0001", f"{FIXES}/gw_a/闽DB0003",
                                                  f"{FIXES}/gw_b/闽DB0002"]
    assert [t for t, _ in team.received()] == [f"{ALERTS}/vehicle.offline/闽DA0001"]

    def n_fixes(recs) -> int:
        return sum(len(decode_fixes(v)) for _, v in recs)

    fixes = read_topic(settings.kafka.bootstrap, settings.kafka.topics.fixes, min_count=2, count=n_fixes)
    assert sorted(f.vehicle_id for _, v in fixes for f in decode_fixes(v)) == ["闽DA0001", "闽DB0002"]
    rejected = [orjson.loads(v) for _, v in read_topic(settings.kafka.bootstrap, settings.kafka.topics.fixes_rejected,
                                                       min_count=1)]
    assert [(r["reason"], r["vehicle_id"], r["gateway"]) for r in rejected] == [("foreign_vehicle", "闽DB0003", "gw_a")]
    text = wait_for(lambda: (t := scrape(settings.bridge.metrics_port)) and
                    metric_value(t, "citywatch_bridge_fixes_produced_total") == 2 and t, 30, "the bridge's counts")
    assert metric_value(text, "citywatch_bridge_messages_total") == 3  # the three the broker delivered, no more
    assert metric_value(text, "citywatch_bridge_rejections_total", reason="foreign_vehicle") == 1


def test_a_team_reads_alerts_and_never_positions(login):
    team = login(*as_("ops"))
    assert team.connected() and team.subscribe(f"{ALERTS}/#")
    team.subscribe(f"{FIXES}/#")  # mosquitto grants it (MQTT 3.1.1) but delivers nothing the ACL denies
    gw, worker = login(*as_("gw_b")), login(*as_("worker"))
    assert gw.connected() and worker.connected()
    gw.publish(f"{FIXES}/gw_b/闽DB0009", fix("闽DB0009"))
    worker.publish(f"{ALERTS}/zone.enter/闽DB0009", b'{"kind": "zone.enter"}')
    wait_for(lambda: team.received(), 30, "the alert")
    assert [t for t, _ in team.received()] == [f"{ALERTS}/zone.enter/闽DB0009"]


def make_certificate(d: Path) -> tuple[Path, Path]:
    cert, key = d / "broker-cert.pem", d / "broker-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@needs_mosquitto
@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make a test certificate")
def test_tls_when_a_certificate_is_configured(tmp_path):
    cert, key = make_certificate(tmp_path)
    settings = load_settings(env={}).replace(mqtt={**MQTT, "tls_cert_file": str(cert), "tls_key_file": str(key)})
    broker = start_mqtt_broker("127.0.0.1", free_port(), workdir=tmp_path / "tls", settings=settings)
    try:
        assert f"certfile {cert}" in (tmp_path / "tls" / "mosquitto.conf").read_text()
        secure = Login(broker.host, broker.port, *as_("gw_a"), ca_file=str(cert))
        try:
            assert secure.connected()
            secure.publish(f"{FIXES}/gw_a/闽DA0001", fix("闽DA0001"))
        finally:
            secure.close()
        plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        plain.username_pw_set(*as_("gw_a"))
        plain.connect(broker.host, broker.port)
        rc = mqtt.MQTT_ERR_SUCCESS
        for _ in range(100):  # the broker closes a plain-text CONNECT on a TLS listener at once
            rc = plain.loop(timeout=0.1)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                break
        assert rc != mqtt.MQTT_ERR_SUCCESS and not plain.is_connected()
    finally:
        broker.stop()


def test_the_amqtt_fallback_enforces_the_same_accounts_and_acl(tmp_path):
    settings = load_settings(env={}).replace(mqtt=MQTT)
    broker = start_mqtt_broker("127.0.0.1", free_port(), workdir=tmp_path, prefer="amqtt", settings=settings)
    made: list[Login] = []

    def login(who: str | None, password: str | None = None) -> Login:
        made.append(Login(broker.host, broker.port, *((who, password) if password or who is None else as_(who))))
        return made[-1]

    try:
        assert not login("gw_a", "wrong-password").connected()
        assert not login(None).connected()
        watcher, a, b = login("bridge"), login("gw_a"), login("gw_b")
        assert watcher.connected() and a.connected() and b.connected()
        assert watcher.subscribe(f"{FIXES}/#")
        a.publish(f"{FIXES}/gw_b/闽DB0001", fix("闽DB0001"))   # refused by the ACL
        b.publish(f"{FIXES}/gw_b/闽DB0002", fix("闽DB0002"))   # sentinel
        wait_for(lambda: watcher.received(), 30, "the sentinel")
        assert [t for t, _ in watcher.received()] == [f"{FIXES}/gw_b/闽DB0002"]
        team = login("ops")
        assert team.connected() and team.subscribe(f"{ALERTS}/#") and not team.subscribe(f"{FIXES}/#")
    finally:
        for c in made:
            c.close()
        broker.stop()
