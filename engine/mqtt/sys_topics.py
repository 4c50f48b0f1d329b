"""Topics the MQTT broker publishes about itself (``$SYS``) that Citywatch reads.

The bridge watches the drop counter (:mod:`engine.telemetry.broker_drops`); the broker's ACL must let the
bridge's account read it (:mod:`engine.brokers.mqtt_access`).
"""

from __future__ import annotations

SYS_DROPPED = "$SYS/broker/publish/messages/dropped"  # mosquitto: messages dropped since the broker started
