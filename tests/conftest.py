"""Session fixtures: real brokers on free loopback ports, and helpers to run Citywatch processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.brokers.apache_kafka import start_apache_kafka, unavailable_reason
from engine.brokers.kafka import start_tansu
from engine.brokers.mqtt import start_mqtt_broker
from engine.brokers.ports import SpawnedBroker, free_port, log_tail
from engine.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent

#: The Kafka broker the broker-facing tests run on: ``TEST_KAFKA=tansu`` (the default) or ``apache``.
#: ``make test`` runs them on both (scripts/test-apache-kafka.sh); the tests that do are marked ``kafka``.
TEST_KAFKA = os.environ.get("TEST_KAFKA", "tansu")
if TEST_KAFKA not in ("tansu", "apache"):
    raise pytest.UsageError(f"TEST_KAFKA={TEST_KAFKA!r}: expected tansu or apache")
#: The ``kafka.broker`` setting that goes with it.
KAFKA_BROKER_SETTING = "kafka" if TEST_KAFKA == "apache" else "tansu"
#: Fixtures that reach a Kafka broker: tests using them are marked ``kafka`` and run on both brokers.
KAFKA_FIXTURES = frozenset({"kafka_broker", "make_settings", "own_kafka", "fault_settings"})


def start_test_kafka(workdir: Path, port: int | None = None, *, controller_port: int | None = None) -> SpawnedBroker:
    """The broker ``TEST_KAFKA`` names on ``port`` (free if None), its log and data under ``workdir``."""
    port = port or free_port()
    if TEST_KAFKA == "apache":
        reason = unavailable_reason()
        if reason:
            pytest.fail(f"TEST_KAFKA=apache but Apache Kafka cannot start here: {reason}")
        return start_apache_kafka("127.0.0.1", port, workdir, controller_port=controller_port)
    return start_tansu("127.0.0.1", port, log_path=workdir / "tansu.log")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that reach Kafka ``kafka``; skip ``tansu_only`` tests on Apache Kafka and ``apache_only``
    ones on Tansu."""
    for item in items:
        if KAFKA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)
        if TEST_KAFKA == "apache" and item.get_closest_marker("tansu_only"):
            reason = item.get_closest_marker("tansu_only").kwargs.get("reason", "checks Tansu itself")
            item.add_marker(pytest.mark.skip(reason=f"Tansu only: {reason}"))
        if TEST_KAFKA != "apache" and item.get_closest_marker("apache_only"):
            item.add_marker(pytest.mark.skip(reason="Apache Kafka only: runs under TEST_KAFKA=apache "
                                                    "(make test does, where Java is present)"))


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> object:
    """Poll until ``predicate()`` is truthy; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpawnedBroker]:
    broker = start_test_kafka(tmp_path_factory.mktemp(TEST_KAFKA))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpawnedBroker]:
    broker = start_mqtt_broker("127.0.0.1", free_port(), workdir=tmp_path_factory.mktemp("mqtt"))
    yield broker
    broker.stop()


def env_for(settings: Settings) -> dict[str, str]:
    """Environment that makes a child process load exactly ``settings``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))

    def walk(prefix: str, d: dict) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k.upper()}__", v)
            else:
                env[f"CITYWATCH_{prefix}{k.upper()}"] = str(v)

    from engine.core.config import to_dict

    walk("", to_dict(settings))
    return env


@pytest.fixture
def make_settings(kafka_broker: SpawnedBroker, mqtt_broker: SpawnedBroker, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for one test's own system: fresh topics, group, client ids and ports."""

    def make(**sections: dict) -> Settings:
        return isolated_settings(tmp_path, kafka_broker, mqtt_broker, **sections)

    return make


def isolated_settings(tmp_path: Path, kafka_broker: SpawnedBroker, mqtt_broker: SpawnedBroker, /,
                      **sections: dict) -> Settings:
    """Settings for one system of its own on these brokers: fresh topics, group, client ids and ports."""
    tag = uuid.uuid4().hex[:8]
    base = load_settings(ROOT / "config.yaml", env={}).replace(
        mqtt={"host": mqtt_broker.host, "port": mqtt_broker.port, "fixes_topic": f"t{tag}/fixes",
              "alerts_topic": f"t{tag}/alerts"},
        kafka={"bootstrap": kafka_broker.address, "broker": KAFKA_BROKER_SETTING,
               "topics": {"fixes": f"fixes-{tag}", "fixes_rejected": f"fixes-{tag}.rejected",
                          "alerts": f"alerts-{tag}", "zones": f"zones-{tag}"}},
        web={"port": free_port()},
        bridge={"client_id": f"bridge-{tag}", "metrics_port": free_port()},
        jt808={"port": free_port(), "metrics_port": free_port()},
        worker={"app_id": f"cw-{tag}", "data_dir": str(tmp_path / f"worker-{tag}")},
        zones={"dir": str(ROOT / "zones")},
        up={"data_dir": str(tmp_path / f"up-{tag}")},
    )
    return base.replace(**sections) if sections else base


class Proc:
    """A Citywatch child process with its log; stopped (SIGTERM, then kill) by the fixture."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path):
        self.log_path, self.env = log_path, env
        self._fh = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "engine", *args], env=env, cwd=ROOT,
                                     stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return log_tail(self.log_path, max_lines=60, max_chars=8000)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()
        return self.proc.returncode


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    procs: list[Proc] = []

    def start(name: str, args: list[str], settings: Settings) -> Proc:
        p = Proc(args, env_for(settings), tmp_path / f"{name}.log")
        procs.append(p)
        return p

    yield start
    for p in reversed(procs):
        p.stop()


class MqttProbe:
    """A paho client that records what arrives on its subscriptions and publishes at QoS 1."""

    def __init__(self, host: str, port: int, subscriptions: list[str] | None = None):
        import threading

        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311)
        subs = [(s, 1) for s in subscriptions or []]

        def on_connect(client, userdata, flags, rc, props=None):  # type: ignore[no-untyped-def]
            if subs:
                client.subscribe(subs)
            else:
                self._subscribed.set()

        def on_subscribe(client, userdata, mid, rcs, props=None):  # type: ignore[no-untyped-def]
            self._subscribed.set()

        def on_message(client, userdata, msg):  # type: ignore[no-untyped-def]
            with self._lock:
                self.messages.append((msg.topic, msg.payload))

        self.client.on_connect, self.client.on_subscribe, self.client.on_message = on_connect, on_subscribe, on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(15):
            raise RuntimeError(f"MQTT probe could not subscribe on {host}:{port}")

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(15)
        assert info.is_published(), f"publish to {topic} not acknowledged"

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_probe(mqtt_broker: SpawnedBroker) -> Iterator[Callable[..., MqttProbe]]:
    probes: list[MqttProbe] = []

    def make(subscriptions: list[str] | None = None) -> MqttProbe:
        p = MqttProbe(mqtt_broker.host, mqtt_broker.port, subscriptions)
        probes.append(p)
        return p

    yield make
    for p in probes:
        p.close()


LAST_PARTITIONS: list[int] = []


def read_topic(bootstrap: str, topic: str, *, min_count: int, timeout: float = 30.0,
               count=len) -> list[tuple[bytes | None, bytes]]:
    """Every ``(key, value)`` of ``topic`` from the start, once ``count(records) >= min_count`` or time is up.

    Each record's partition is appended to :data:`LAST_PARTITIONS`, parallel to the result.
    """
    import asyncio

    from aiokafka import AIOKafkaConsumer

    LAST_PARTITIONS.clear()

    async def run() -> list[tuple[bytes | None, bytes]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        out: list[tuple[bytes | None, bytes]] = []
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and count(out) < min_count:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    out.extend((r.key, r.value) for r in records)
                    LAST_PARTITIONS.extend(tp.partition for _ in records)
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():  # anything right behind
                out.extend((r.key, r.value) for r in records)
                LAST_PARTITIONS.extend(tp.partition for _ in records)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def wait_bridge_subscribed(settings: Settings, *procs: Proc, port: int | None = None, timeout: float = 60) -> None:
    """Wait until the bridge on ``port`` (default ``bridge.metrics_port``) has its MQTT subscription confirmed.

    Fails at once, with the log, if any of ``procs`` exits meanwhile.
    """
    port = port or settings.bridge.metrics_port

    def subscribed() -> bool:
        for p in procs:
            assert p.proc.poll() is None, f"process exited:\n{p.log()}"
        try:
            return metric_value(scrape(port), "citywatch_bridge_mqtt_connected") == 1
        except OSError:
            return False

    wait_for(subscribed, timeout, "the bridge to subscribe")
