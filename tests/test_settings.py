"""One typed settings object: defaults, env overrides, clear errors."""

from __future__ import annotations

import pytest

from engine.core.errors import ConfigError
from engine.settings import load_settings


def test_defaults_come_from_config_yaml():
    s = load_settings(env={})
    assert (s.mqtt.host, s.mqtt.port, s.kafka.bootstrap, s.web.port, s.zones.dir) == (
        "127.0.0.1", 1883, "127.0.0.1:9092", 6066, "zones")
    assert s.city.crs == "EPSG:4548" and s.city.tz == "Asia/Shanghai"


def test_env_overrides_nested_keys_with_types():
    s = load_settings(env={"CITYWATCH_MQTT__PORT": "1884", "CITYWATCH_KAFKA__BOOTSTRAP": "k1:9092,k2:9093",
                           "CITYWATCH_KAFKA__TOPICS__FIXES": "gps", "CITYWATCH_SIMULATOR__SCRIPTED_VIOLATION": "false",
                           "CITYWATCH_CITY__BOUNDS__LAT_MIN": "24.0", "OTHER": "x"})
    assert s.mqtt.port == 1884 and s.kafka.servers == ["k1:9092", "k2:9093"] and s.kafka.topics.fixes == "gps"
    assert s.simulator.scripted_violation is False and s.city.bounds.lat_min == 24.0


def test_settings_are_frozen():
    s = load_settings(env={})
    with pytest.raises(AttributeError):
        s.mqtt.port = 1  # type: ignore[misc]


@pytest.mark.parametrize("env, message", [
    ({"CITYWATCH_MQTT__PORT": "abc"}, "setting mqtt.port: expected an integer, got 'abc'"),
    ({"CITYWATCH_MQTT__PORT": "70000"}, "setting mqtt.port: port must be 1-65535"),
    ({"CITYWATCH_MQTT__PROT": "1"}, "unknown setting mqtt.prot"),
    ({"CITYWATCH_KAFKA__BOOTSTRAP": "nohost"}, "setting kafka.bootstrap: expected host:port"),
    ({"CITYWATCH_KAFKA__BROKER": "redpanda"}, "setting kafka.broker: expected 'tansu' or 'kafka'"),
    ({"CITYWATCH_UP__KAFKA": "kafka"}, "setting up.kafka: expected 'tansu' or 'apache', got 'kafka'"),
    ({"CITYWATCH_WORKER__BATCH_SIZE": "-5"}, "setting worker.batch_size: must not be negative"),
    ({"CITYWATCH_MQTT__PORT__X": "1"}, "mqtt.port is not a section"),
])
def test_bad_settings_name_the_key(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env=env)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, env={})
    bad.write_text("- 1\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(bad, env={})
    bad.write_text("mqtt:\n  port: 1883\nweb:\n  port: 6066\nmqtt:\n  port: 1884\n")  # YAML would keep the last
    with pytest.raises(ConfigError, match="the key 'mqtt' is given twice in one mapping"):
        load_settings(bad, env={})
    bad.write_text("mqtt:\n  port: 1883\n  port: 1884\n")
    with pytest.raises(ConfigError, match="the key 'port' is given twice"):
        load_settings(bad, env={})


def test_secrets_are_redacted():
    s = load_settings(env={"CITYWATCH_MQTT__PASSWORD": "hunter2"})
    assert s.mqtt.password == "hunter2"
    assert "hunter2" not in repr(s.redacted())


def test_kafka_replication_defaults_and_production_values():
    s = load_settings(env={})
    assert (s.kafka.replication, s.kafka.min_insync_replicas) == (1, 1)
    s = load_settings(env={"CITYWATCH_KAFKA__REPLICATION": "3", "CITYWATCH_KAFKA__MIN_INSYNC_REPLICAS": "2"})
    assert (s.kafka.replication, s.kafka.min_insync_replicas) == (3, 2)


@pytest.mark.parametrize("replication, min_insync, message", [
    ("0", "1", "setting kafka.replication: must be at least 1, got 0"),
    ("-1", "1", "setting kafka.replication: must not be negative"),
    ("3", "0", "setting kafka.min_insync_replicas: must be 1 to kafka.replication (3), got 0"),
    ("2", "3", "setting kafka.min_insync_replicas: must be 1 to kafka.replication (2), got 3"),
    ("two", "1", "setting kafka.replication: expected an integer, got 'two'"),
])
def test_bad_kafka_replication_names_the_key(replication, min_insync, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env={"CITYWATCH_KAFKA__REPLICATION": replication,
                           "CITYWATCH_KAFKA__MIN_INSYNC_REPLICAS": min_insync})
