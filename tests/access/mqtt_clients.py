"""A paho client that logs in, records CONNACK / SUBACK answers and what arrives, for access-control tests."""

from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as mqtt


class Login:
    """One connection as ``username`` (None = anonymous), optionally over TLS verified with ``ca_file``."""

    def __init__(self, host: str, port: int, username: str | None, password: str | None = None, *,
                 ca_file: str | None = None, timeout: float = 15):
        self.timeout = timeout
        self.connack: mqtt.ReasonCode | None = None
        self.granted: dict[int, list[mqtt.ReasonCode]] = {}
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._subacks = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"acc-{uuid.uuid4().hex[:10]}",
                                  protocol=mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect_async(host, port)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):  # type: ignore[no-untyped-def]
        self.connack = reason_code
        self._connected.set()
        if reason_code.is_failure:
            client.disconnect()  # no retry storm against a refusing broker

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None):  # type: ignore[no-untyped-def]
        with self._subacks:
            self.granted[mid] = list(reason_codes)
            self._subacks.notify_all()

    def _on_message(self, client, userdata, msg):  # type: ignore[no-untyped-def]
        with self._lock:
            self.messages.append((msg.topic, msg.payload))

    def connected(self) -> bool:
        """Whether the broker accepted the login (waits for its CONNACK)."""
        assert self._connected.wait(self.timeout), "no CONNACK from the broker"
        assert self.connack is not None
        return not self.connack.is_failure

    def subscribe(self, topic: str) -> bool:
        """Subscribe at QoS 1; whether the broker granted it (its SUBACK)."""
        rc, mid = self.client.subscribe(topic, qos=1)
        assert rc == mqtt.MQTT_ERR_SUCCESS, mqtt.error_string(rc)
        with self._subacks:
            assert self._subacks.wait_for(lambda: mid in self.granted, self.timeout), f"no SUBACK for {topic}"
            return not any(code.is_failure for code in self.granted[mid])

    def publish(self, topic: str, payload: bytes) -> None:
        """QoS 1, waiting for the PUBACK: the broker has routed (or dropped) it when this returns."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(self.timeout)
        assert info.is_published(), f"publish to {topic} not acknowledged"

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
