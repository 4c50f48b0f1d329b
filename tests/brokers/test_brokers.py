"""Embedded brokers, for real: Tansu, mosquitto and amqtt on free loopback ports.

Every test stops what it starts and checks that no broker process is left.
Waits are bounded but generous; nothing here asserts on timing.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from engine.brokers import kafka as kafka_mod
from engine.brokers import mqtt as mqtt_mod
from engine.brokers import ports
from engine.brokers.kafka import ensure_kafka, start_tansu
from engine.brokers.mqtt import (
    ensure_mqtt,
    mosquitto_binary,
    start_amqtt,
    start_mosquitto,
    start_mqtt_broker,
    write_mosquitto_config,
)
from engine.brokers.ports import SpawnedBroker, free_port, is_listening, spawn_broker, wait_listening
from engine.core.errors import BrokerStartError
from engine.kafka.admin import create_topics

pytestmark = pytest.mark.timeout(120)

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
WAIT = 20.0  # generous bound for any single network step

needs_mosquitto = pytest.mark.skipif(mosquitto_binary() is None, reason="no mosquitto binary on this machine")


def assert_stopped(broker: SpawnedBroker) -> None:
    """stop() is idempotent and leaves no process behind."""
    broker.stop()
    broker.stop()
    assert broker.proc is not None and broker.proc.poll() is not None


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("State:"):
                    return "Z" not in line.split()[1]
    except FileNotFoundError:
        return False
    return True


@pytest.fixture
def tansu(tmp_path):
    broker = start_tansu(HOST, free_port(), log_path=tmp_path / "tansu.log")
    yield broker
    assert_stopped(broker)


@pytest.fixture
def taken_port():
    """A port something else (a bare socket) already listens on."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        yield sock.getsockname()[1]


# --- Kafka (Tansu) ---------------------------------------------------------

async def _kafka_roundtrip(bootstrap: str, topic: str) -> tuple[set[int], bytes, bytes]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        partitions = await producer.partitions_for(topic)
        sent = await producer.send_and_wait(topic, b"fix-1", key=b"veh-1", partition=1)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 1)
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        msg = await asyncio.wait_for(consumer.getone(), WAIT)
    finally:
        await consumer.stop()
    return set(partitions), msg.key, msg.value


def test_tansu_topics_and_roundtrip(tansu):
    assert tansu.name == "tansu" and tansu.proc is not None and tansu.proc.poll() is None
    assert tansu.address == f"{HOST}:{tansu.port}"
    topics = {"cw.fixes": (3, {}), "cw.zones": (1, {"cleanup.policy": "compact"})}
    create_topics(tansu.address, topics)
    create_topics(tansu.address, topics)  # idempotent: "already exists" is fine

    partitions, key, value = asyncio.run(_kafka_roundtrip(tansu.address, "cw.fixes"))
    assert partitions == {0, 1, 2}
    assert (key, value) == (b"veh-1", b"fix-1")


def test_create_topics_from_thread_and_from_running_loop(tansu):
    errors: list[BaseException] = []

    def in_thread():
        try:
            create_topics(tansu.address, {"cw.thread": (2, {})})
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join(WAIT * 2)
    assert not worker.is_alive() and errors == []

    async def in_loop():
        create_topics(tansu.address, {"cw.thread": (2, {}), "cw.loop": (1, {})})

    asyncio.run(in_loop())

    async def list_topics():
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=tansu.address)
        await admin.start()
        try:
            return await admin.list_topics()
        finally:
            await admin.close()

    assert {"cw.thread", "cw.loop"} <= set(asyncio.run(list_topics()))


def test_ensure_kafka_reuses_listening_broker(tansu, tmp_path, monkeypatch):
    def no_spawn(*args, **kwargs):
        raise AssertionError("ensure_kafka must not spawn when the port is in use")

    monkeypatch.setattr(kafka_mod, "start_tansu", no_spawn)
    monkeypatch.setattr(ports.subprocess, "Popen", no_spawn)
    reused = ensure_kafka(HOST, tansu.port, log_path=tmp_path / "unused.log")
    assert reused.proc is None and reused.address == tansu.address
    reused.stop()  # nothing to stop: the real broker keeps running
    assert tansu.proc.poll() is None and is_listening(HOST, tansu.port)
    monkeypatch.undo()
    create_topics(reused.address, {"cw.reused": (1, {})})


def test_ensure_kafka_starts_tansu_when_free(tmp_path):
    broker = ensure_kafka(HOST, free_port(), log_path=tmp_path / "tansu.log")
    try:
        assert broker.proc is not None and broker.name == "tansu"
        create_topics(broker.address, {"cw.ensure": (1, {})})
    finally:
        assert_stopped(broker)
    assert (tmp_path / "tansu.log").exists()


# --- MQTT -------------------------------------------------------------------

def _client(client_id: str, clean_session: bool = True) -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                       clean_session=clean_session, protocol=mqtt.MQTTv311)


def _subscriber(port: int, topic: str, client_id: str, clean_session: bool = True):
    """A connected subscriber; returns (client, received-queue) once SUBACK arrived."""
    got: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    sub = _client(client_id, clean_session)
    sub.on_connect = lambda c, u, flags, rc, props: c.subscribe(topic, qos=1)
    sub.on_subscribe = lambda c, u, mid, rcs, props: subscribed.set()
    sub.on_message = lambda c, u, msg: got.put((msg.topic, msg.payload, msg.qos))
    sub.connect(HOST, port)
    sub.loop_start()
    assert subscribed.wait(WAIT), "no SUBACK"
    return sub, got


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _publish_qos1(port: int, topic: str, payload: bytes) -> None:
    pub = _client(f"pub-{uuid.uuid4().hex[:8]}")
    pub.connect(HOST, port)
    pub.loop_start()
    try:
        info = pub.publish(topic, payload, qos=1)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published(), "no PUBACK"
    finally:
        _close(pub)


def _qos1_roundtrip(port: int) -> None:
    topic = "citywatch/fixes/TEST-1"
    sub, got = _subscriber(port, topic, f"sub-{uuid.uuid4().hex[:8]}")
    try:
        _publish_qos1(port, topic, b'{"vehicle_id": "TEST-1"}')
        assert got.get(timeout=WAIT) == (topic, b'{"vehicle_id": "TEST-1"}', 1)
    finally:
        _close(sub)


@needs_mosquitto
def test_mosquitto_qos1_roundtrip(tmp_path):
    broker = start_mosquitto(HOST, free_port(), workdir=tmp_path)
    try:
        assert broker.name == "mosquitto" and broker.proc.poll() is None
        _qos1_roundtrip(broker.port)
    finally:
        assert_stopped(broker)
    assert "mosquitto version" in (tmp_path / "mosquitto.log").read_text()


@needs_mosquitto
def test_mosquitto_persistent_session_survives_restart(tmp_path):
    port, topic = free_port(), "citywatch/alerts/zone.enter/TEST-2"
    broker = start_mosquitto(HOST, port, workdir=tmp_path)
    try:
        sub, _ = _subscriber(port, topic, "cw-persistent", clean_session=False)
        _close(sub)
        _publish_qos1(port, topic, b"queued-while-offline")
    finally:
        assert_stopped(broker)
    broker = start_mosquitto(HOST, port, workdir=tmp_path)
    try:
        got: queue.Queue = queue.Queue()
        sub = _client("cw-persistent", clean_session=False)
        sub.on_message = lambda c, u, msg: got.put(msg.payload)
        sub.connect(HOST, port)
        sub.loop_start()
        try:
            assert got.get(timeout=WAIT) == b"queued-while-offline"
        finally:
            _close(sub)
    finally:
        assert_stopped(broker)


def test_amqtt_qos1_roundtrip(tmp_path):
    broker = start_amqtt(HOST, free_port(), workdir=tmp_path)
    try:
        assert broker.name == "amqtt" and broker.proc.poll() is None
        _qos1_roundtrip(broker.port)
    finally:
        assert_stopped(broker)
    assert broker.proc.returncode == 0  # SIGTERM is a clean shutdown
    assert "amqtt broker shutting down" in (tmp_path / "amqtt.log").read_text()


def test_write_mosquitto_config(tmp_path):
    conf = write_mosquitto_config(tmp_path / "m.conf", HOST, 18830, data_dir=tmp_path / "data")
    lines = {line.strip() for line in conf.read_text().splitlines() if line.strip() and not line.startswith("#")}
    for expected in ("listener 18830 127.0.0.1", "allow_anonymous true", "persistence true",
                     "max_queued_messages 1000000", "max_queued_bytes 0", "sys_interval 10", "log_dest stdout"):
        assert expected in lines
    assert f"persistence_location {(tmp_path / 'data').resolve()}/" in lines
    assert (tmp_path / "data").is_dir()


def test_ensure_mqtt_reuses_listening_port(taken_port, tmp_path, monkeypatch):
    def no_spawn(*args, **kwargs):
        raise AssertionError("ensure_mqtt must not spawn when the port is in use")

    monkeypatch.setattr(mqtt_mod, "start_mqtt_broker", no_spawn)
    monkeypatch.setattr(ports.subprocess, "Popen", no_spawn)
    reused = ensure_mqtt(HOST, taken_port, workdir=tmp_path)
    assert reused.proc is None and reused.port == taken_port
    reused.stop()
    assert not list(tmp_path.iterdir())  # nothing written, nothing spawned


def test_ensure_mqtt_starts_broker_when_free(tmp_path):
    broker = ensure_mqtt(HOST, free_port(), workdir=tmp_path)
    try:
        assert broker.proc is not None
        assert broker.name == ("mosquitto" if mosquitto_binary() else "amqtt")
        _qos1_roundtrip(broker.port)
    finally:
        assert_stopped(broker)


def test_start_mqtt_broker_falls_back_to_amqtt(tmp_path, monkeypatch):
    monkeypatch.setattr(mqtt_mod, "mosquitto_binary", lambda: None)  # a machine without mosquitto
    broker = start_mqtt_broker(HOST, free_port(), workdir=tmp_path)
    try:
        assert broker.name == "amqtt"
    finally:
        assert_stopped(broker)
    with pytest.raises(BrokerStartError, match="no mosquitto binary"):
        start_mqtt_broker(HOST, free_port(), workdir=tmp_path, prefer="mosquitto")
    with pytest.raises(BrokerStartError, match="unknown MQTT broker"):
        start_mqtt_broker(HOST, free_port(), workdir=tmp_path, prefer="rabbit")


# --- start failures, stop, parent death ------------------------------------

@needs_mosquitto
def test_mosquitto_on_taken_port_raises(taken_port, tmp_path):
    with pytest.raises(BrokerStartError, match="mosquitto") as err:
        start_mosquitto(HOST, taken_port, workdir=tmp_path)
    assert "Address already in use" in str(err.value)  # the log tail explains why


def test_amqtt_on_taken_port_raises(taken_port, tmp_path):
    with pytest.raises(BrokerStartError, match="amqtt") as err:
        start_amqtt(HOST, taken_port, workdir=tmp_path)
    assert "address already in use" in str(err.value).lower()


def test_tansu_on_taken_port_raises(taken_port, tmp_path):
    with pytest.raises(BrokerStartError, match="tansu"):
        start_tansu(HOST, taken_port, log_path=tmp_path / "tansu.log")


def test_wait_listening_process_exits_early(tmp_path):
    log_path = tmp_path / "early.log"
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", "import sys; print('cannot bind'); sys.exit(3)"],
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        with pytest.raises(BrokerStartError, match="early-bird exited with code 3") as err:
            wait_listening(HOST, free_port(), WAIT, proc, name="early-bird", log_path=log_path)
        assert "cannot bind" in str(err.value)
    finally:
        proc.kill()
        proc.wait()


def test_wait_listening_times_out():
    with pytest.raises(BrokerStartError, match="did not listen"):
        wait_listening(HOST, free_port(), 0.5, name="nobody")


def test_stop_kills_a_broker_that_ignores_sigterm(tmp_path):
    port = free_port()
    code = ("import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"s = socket.socket(); s.bind(('{HOST}', {port})); s.listen(); time.sleep(300)")
    broker = spawn_broker("stubborn", [sys.executable, "-c", code], HOST, port, log_path=tmp_path / "s.log")
    broker.stop(timeout=1.0)
    assert broker.proc.returncode == -signal.SIGKILL
    assert_stopped(broker)


PARENT = """
import sys, time
from pathlib import Path
from engine.brokers import kafka, mqtt
from engine.brokers.ports import free_port
kind, work = sys.argv[1], Path(sys.argv[2])
if kind == "tansu":
    b = kafka.start_tansu("127.0.0.1", free_port(), log_path=work / "tansu.log")
else:
    b = mqtt.start_mqtt_broker("127.0.0.1", free_port(), workdir=work, prefer=kind)
print(b.proc.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("kind", ["tansu", "amqtt", pytest.param("mosquitto", marks=needs_mosquitto)])
def test_broker_dies_with_killed_parent(kind, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    parent = subprocess.Popen([sys.executable, "-c", PARENT, kind, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    child = None
    try:
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"parent failed: {line!r} {parent.stderr.read() if parent.poll() else ''}"
        child = int(line)
        assert pid_alive(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + WAIT
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(child), f"{kind} (pid {child}) outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child is not None and pid_alive(child):
            os.kill(child, signal.SIGKILL)
