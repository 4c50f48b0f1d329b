"""Replication factor and min.insync.replicas of the topics Citywatch creates, on the embedded broker.

Tansu reports a topic's replicas per partition (one entry per requested replica, all on its
single node) and answers DescribeConfigs with the configs a topic was created with, so both are
read back from the broker. Waits are bounded by the admin client's timeouts; nothing asserts on timing.
"""

from __future__ import annotations

import socket
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from engine.brokers.ports import SpawnedBroker, free_port
from engine.core.config import to_dict
from engine.core.errors import BrokerUnreachable, ConfigError
from engine.kafka.admin import create_topics, run_sync
from engine.settings import Settings, load_settings
from engine.topology import ensure_all_topics, topic_specs
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(120)


def own_topics_settings(bootstrap: str, **kafka: object) -> Settings:
    """Settings whose every Citywatch topic name is new to the broker (``kafka`` keys override)."""
    tag = uuid.uuid4().hex[:8]
    base = load_settings(ROOT / "config.yaml", env={})
    raw = to_dict(base)
    sections = {name: {"topics": {k: f"r{tag}.{v}" for k, v in raw[name]["topics"].items()}}
                for name in ("kafka", "vetting", "reports", "tasks")}
    sections["kafka"].update(bootstrap=bootstrap, **kafka)
    return base.replace(**sections)


async def list_topics(bootstrap: str) -> list[str]:
    """All topic names (a metadata request for no topic in particular: Tansu auto-creates named ones)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


def read_back(bootstrap: str, names: list[str]) -> tuple[dict[str, list[int]], dict[str, dict[str, str]]]:
    """``name -> replica count per partition`` and ``name -> configs`` as the broker reports them."""

    async def run() -> tuple[dict[str, list[int]], dict[str, dict[str, str]]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        await admin.start()
        try:
            described = await admin.describe_topics(names)
            responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        finally:
            await admin.close()
        replicas = {t["topic"]: [len(p["replicas"]) for p in t["partitions"]] for t in described
                    if t["error_code"] == 0}
        configs = {r["resource_name"]: {e["config_names"]: e["config_value"] for e in r["config_entries"]}
                   for resp in responses for r in resp.to_object()["resources"]}
        return replicas, configs

    return run_sync(run)


def test_ensure_topics_creates_topics_with_the_configured_replication(kafka_broker: SpawnedBroker):
    settings = own_topics_settings(kafka_broker.address)
    assert (settings.kafka.replication, settings.kafka.min_insync_replicas) == (1, 1)
    ensure_all_topics(settings)
    specs = topic_specs(settings)
    replicas, configs = read_back(kafka_broker.address, list(specs))
    for name, (partitions, spec_configs) in specs.items():
        assert replicas[name] == [1] * partitions, name
        assert configs[name]["min.insync.replicas"] == "1", name
        for key, value in spec_configs.items():  # the spec's own configs are kept beside it
            assert configs[name][key] == str(value), (name, key)


def test_min_insync_comes_from_the_caller_unless_the_spec_sets_its_own(kafka_broker: SpawnedBroker):
    tag = uuid.uuid4().hex[:8]
    plain, own = f"r{tag}.plain", f"r{tag}.own"
    create_topics(kafka_broker.address, {plain: (2, {}), own: (1, {"min.insync.replicas": "1"})},
                  replication=1, min_insync=2)
    replicas, configs = read_back(kafka_broker.address, [plain, own])
    assert replicas == {plain: [1, 1], own: [1]}
    assert configs[plain]["min.insync.replicas"] == "2"
    assert configs[own]["min.insync.replicas"] == "1"


def test_replication_above_the_broker_count_is_a_config_error(kafka_broker: SpawnedBroker):
    settings = own_topics_settings(kafka_broker.address, replication=3, min_insync_replicas=2)
    with pytest.raises(ConfigError) as err:
        ensure_all_topics(settings)
    assert str(err.value) == (f"setting kafka.replication: 3 but the cluster at {kafka_broker.address} "
                              "has 1 broker")
    marker = f"{settings.kafka.topics.fixes}.marker"
    create_topics(kafka_broker.address, {marker: (1, {})})
    existing = set(run_sync(lambda: list_topics(kafka_broker.address)))
    assert marker in existing and not existing & set(topic_specs(settings))  # checked before anything was created


def test_closed_port_is_broker_unreachable_naming_the_address():
    address = f"127.0.0.1:{free_port()}"
    settings = own_topics_settings(address)
    with pytest.raises(BrokerUnreachable) as err:
        ensure_all_topics(settings)
    assert (err.value.kind, err.value.address, err.value.setting) == ("Kafka", address, "kafka.bootstrap")
    assert f"cannot reach Kafka at {address} (setting kafka.bootstrap)" in str(err.value)


def test_silent_listener_is_broker_unreachable_after_the_timeout():
    """A port that accepts connections but never answers fails after ``timeout``, it does not hang."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(BrokerUnreachable) as err:
            create_topics(address, {"never": (1, {})}, timeout=2.0)
    assert (err.value.address, err.value.setting) == (address, "kafka.bootstrap")


def test_every_table_changelog_gets_the_replication_and_min_insync(kafka_broker: SpawnedBroker):
    from engine.app import create_app

    settings = own_topics_settings(f"{kafka_broker.host}:{kafka_broker.port}", min_insync_replicas=1)
    ensure_all_topics(settings)
    app = create_app(settings)
    names = {"tracks", "vetting_people", "vetting_records", "report_cells", "tasks"}
    assert names <= set(app.tables.keys())
    for name in names:
        changelog = app.tables[name].changelog_topic
        assert changelog.config.get("min.insync.replicas") == "1", name
        assert changelog.replicas in (None, settings.kafka.replication) and app.conf.topic_replication_factor == 1
