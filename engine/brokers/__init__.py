"""Embedded brokers for dev and tests: Tansu and Apache Kafka (Kafka API), mosquitto or amqtt (MQTT).

``kafka`` (Tansu, and :func:`~engine.brokers.kafka.ensure_kafka` choosing a launcher), ``apache_kafka``
(a pinned Apache Kafka fetched with Maven), ``mqtt`` and ``mqtt_access`` (mosquitto or amqtt with
Citywatch's accounts), ``ports`` (free ports, spawned processes that die with their parent).
Production runs against the user's brokers and needs none of this. May import :mod:`engine.kafka`,
:mod:`engine.mqtt` and :mod:`engine.core`; never a domain. The shared pieces are re-exported here.
"""

from engine.brokers.ports import SpawnedBroker, free_port, is_listening, wait_listening

__all__ = ["SpawnedBroker", "free_port", "is_listening", "wait_listening"]
