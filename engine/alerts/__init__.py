"""Alerts: the alert record and its stable ids, the Kafka ``alerts`` topic, and delivery to MQTT.

Published: ``models`` (records, ids, MQTT topic names) and ``kafka_sink`` (how a domain raises alerts).
Internal: ``mqtt_sink`` (delivery with its own consumer group, offsets committed behind the PUBACKs).
May import plumbing and core only.
"""
