"""Embedded brokers for dev and tests: Tansu or Apache Kafka (Kafka API), mosquitto or amqtt (MQTT).

Import the launchers from ``engine.brokers.kafka`` (Tansu, and ``ensure_kafka`` for either Kafka),
``engine.brokers.apache_kafka`` and ``engine.brokers.mqtt``; the shared pieces are re-exported here.
Talking to a Kafka once it runs is :mod:`engine.kafka`'s, which the launchers use for readiness.
"""

from engine.brokers.ports import SpawnedBroker, free_port, is_listening, wait_listening

__all__ = ["SpawnedBroker", "free_port", "is_listening", "wait_listening"]
