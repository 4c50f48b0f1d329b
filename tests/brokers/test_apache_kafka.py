"""The Apache Kafka launcher, for real: a KRaft node on free loopback ports, its restarts and its errors.

Runs under ``TEST_KAFKA=apache`` (``make test`` does where Java is present); the checks of what the launcher
says on a machine without Java run everywhere.
"""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from engine.brokers import apache_kafka
from engine.brokers.apache_kafka import apache_cluster, server_properties, start_apache_kafka
from engine.brokers.kafka import ensure_kafka
from engine.brokers.ports import free_port, is_listening
from engine.core.errors import BrokerStartError
from engine.kafka.admin import create_topics

HOST = "127.0.0.1"
apache = pytest.mark.apache_only


async def _write_then_read(bootstrap: str, topic: str, values: list[bytes]) -> list[bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for v in values:
            await producer.send(topic, v, partition=0)
        await producer.flush()
    finally:
        await producer.stop()
    return await _read(bootstrap, topic, len(values))


async def _read(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        out: list[bytes] = []
        async def fill() -> None:
            while len(out) < count:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                out.extend(r.value for r in batch.get(tp, []))

        await asyncio.wait_for(fill(), 60)
        return out
    finally:
        await consumer.stop()


@apache
def test_a_node_serves_and_keeps_its_log_across_a_kill(tmp_path):
    port, controller = free_port(), free_port()
    broker = start_apache_kafka(HOST, port, tmp_path, controller_port=controller)
    try:
        assert broker.name == "apache-kafka-1" and broker.address == f"{HOST}:{port}"
        create_topics(broker.address, {"cw.kept": (2, {})})
        values = [f"fix-{i}".encode() for i in range(50)]
        assert asyncio.run(_write_then_read(broker.address, "cw.kept", values)) == values
        broker.proc.kill()
        broker.proc.wait()
        assert not is_listening(HOST, port)
        broker = start_apache_kafka(HOST, port, tmp_path, controller_port=controller)  # same log directory
        assert asyncio.run(_read(broker.address, "cw.kept", 50)) == values
    finally:
        broker.stop(timeout=20)
    assert broker.proc.returncode is not None and not is_listening(HOST, port)


@apache
def test_ensure_kafka_starts_apache_kafka_when_asked(tmp_path):
    broker = ensure_kafka(HOST, free_port(), log_path=tmp_path / "k.log", kind="apache", workdir=tmp_path / "k")
    try:
        assert broker.proc is not None and broker.name.startswith("apache-kafka")
        assert (tmp_path / "k" / "node-1" / "meta.properties").is_file()
        assert "Kafka Server started" in (tmp_path / "k.log").read_text()
    finally:
        broker.stop(timeout=20)


@apache
def test_a_taken_port_is_named_with_the_log_tail(tmp_path):
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        with pytest.raises(BrokerStartError, match="apache-kafka-1") as err:
            start_apache_kafka(HOST, sock.getsockname()[1], tmp_path, timeout=60)
    assert "Address already in use" in str(err.value)


@apache
def test_a_controller_port_taken_after_it_was_picked_is_picked_again(tmp_path, monkeypatch):
    with socket.socket() as sock:   # another process binds the picked controller port before the JVM does
        sock.bind((HOST, 0))
        sock.listen()
        taken = sock.getsockname()[1]
        picks = iter([taken])
        monkeypatch.setattr(apache_kafka, "free_port", lambda host: next(picks, None) or free_port(host))
        port = free_port()
        broker = start_apache_kafka(HOST, port, tmp_path, timeout=60)
        try:
            props = (tmp_path / "server-1.properties").read_text()
            assert f"CONTROLLER://{HOST}:{taken}" not in props and broker.address == f"{HOST}:{port}"
            create_topics(broker.address, {"cw.after-retry": (1, {})})
            assert asyncio.run(_write_then_read(broker.address, "cw.after-retry", [b"x"])) == [b"x"]
        finally:
            broker.stop(timeout=20)


@apache
def test_three_nodes_form_one_cluster_that_survives_one_kill(tmp_path):
    with apache_cluster(tmp_path, size=3) as cluster:
        create_topics(cluster.bootstrap, {"cw.rf3": (1, {})}, replication=3, min_insync=2)
        values = [b"a", b"b", b"c"]
        assert asyncio.run(_write_then_read(cluster.bootstrap, "cw.rf3", values)) == values
        cluster.kill(1)
        rest = ",".join(f"{n.host}:{n.port}" for n in cluster.nodes if n.node_id != 1)
        assert asyncio.run(_write_then_read(rest, "cw.rf3", [b"d"])) == [*values, b"d"]
        cluster.start(1)


def test_properties_of_a_cluster_node():
    nodes = [apache_kafka.Node(i, HOST, 9000 + i, 9100 + i, Path(f"/d/{i}")) for i in (1, 2, 3)]
    props = dict(line.split("=", 1) for line in server_properties(nodes[1], nodes).splitlines())
    assert props["node.id"] == "2" and props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9002,CONTROLLER://127.0.0.1:9102"
    assert props["offsets.topic.replication.factor"] == "3" and props["transaction.state.log.min.isr"] == "2"
    single = dict(line.split("=", 1) for line in server_properties(nodes[0], nodes[:1]).splitlines())
    assert single["offsets.topic.replication.factor"] == "1" and single["transaction.state.log.min.isr"] == "1"


def _fake_java(tmp_path: Path, version_line: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return home


def test_an_old_java_is_named_as_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, 'openjdk version "1.8.0_392"')))
    reason = apache_kafka.unavailable_reason()
    assert reason is not None and "Java 8" in reason and "needs Java 17" in reason


def test_no_java_is_named_as_the_reason(tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    assert "no java" in (apache_kafka.unavailable_reason() or "")
    with pytest.raises(BrokerStartError, match="no mvn|no java"):
        start_apache_kafka(HOST, free_port(), tmp_path / "k", timeout=5)
