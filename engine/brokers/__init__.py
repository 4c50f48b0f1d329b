"""Embedded brokers for dev and tests: Tansu (Kafka API), mosquitto or amqtt (MQTT).

Import the launchers from ``engine.brokers.kafka`` and ``engine.brokers.mqtt``;
the shared pieces are re-exported here.
"""

from engine.brokers.ports import SpawnedBroker, free_port, is_listening, wait_listening

__all__ = ["SpawnedBroker", "free_port", "is_listening", "wait_listening"]
