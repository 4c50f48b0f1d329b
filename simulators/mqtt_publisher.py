"""A small paho-mqtt 2.x publisher that bounds what is in flight and never drops silently.

paho keeps every QoS 1/2 message in an in-memory dict until the broker
acknowledges it. When that dict is full (``max_queued_messages_set``) or all
65,535 message ids are taken, ``publish()`` does not raise: it only sets
``MQTTMessageInfo.rc`` to ``MQTT_ERR_QUEUE_SIZE``. This wrapper checks that
code, waits and retries, and counts every refusal and every message it gave up on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)


class MqttPublisher:
    """Publish to an MQTT broker with bounded in-flight and queued messages.

    Connects asynchronously (the broker may come up later) and reconnects on
    its own; QoS 1/2 messages published while disconnected wait in paho's
    queue and go out after the next connect.

    Parameters
    ----------
    host, port : str, int
        Broker address.
    client_id : str
        MQTT client id.
    username, password : str, optional
        Credentials; the password is never logged.
    max_inflight : int
        Messages sent but not yet acknowledged (paho ``max_inflight_messages_set``).
    max_queued : int
        Messages held by paho in all (in flight + waiting); beyond it
        ``publish`` waits and retries.
    retry_timeout_s : float
        How long one message is retried before it is counted in ``failed``.
    client : paho.mqtt.client.Client, optional
        A ready client instead of a new one (tests).

    Attributes
    ----------
    accepted : int
        Messages paho took.
    sent : int
        Messages completed: acknowledged by the broker (QoS 1/2) or written (QoS 0).
    refused : int
        Publish attempts paho refused (each later retried).
    failed : int
        Messages given up after ``retry_timeout_s``; each is logged as an error.
    """

    def __init__(self, host: str, port: int, client_id: str, username: str | None = None,
                 password: str | None = None, *, max_inflight: int = 100, max_queued: int = 1000,
                 retry_timeout_s: float = 30.0, reconnect_min_s: int = 1, reconnect_max_s: int = 30,
                 client: Any = None) -> None:
        self.accepted = self.sent = self.refused = self.failed = 0
        self._retry_timeout_s = retry_timeout_s
        self._done = threading.Condition()
        self._closed = False
        self._client = client or mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                             protocol=mqtt.MQTTv311)
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(max_queued)
        self._client.reconnect_delay_set(min_delay=reconnect_min_s, max_delay=reconnect_max_s)
        self._client.on_publish = self._on_publish
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()
        log.info("mqtt publisher %s -> %s:%d (max in flight %d, queued %d)",
                 client_id, host, port, max_inflight, max_queued)

    @property
    def pending(self) -> int:
        """Messages accepted by paho but not yet completed."""
        with self._done:
            return self.accepted - self.sent

    def publish(self, topic: str, payload: bytes, qos: int) -> bool:
        """Hand one message to paho, waiting and retrying while paho refuses it.

        Returns
        -------
        bool
            True once paho accepted it; False if it was refused for
            ``retry_timeout_s`` (then counted in ``failed`` and logged).
        """
        if self._closed:
            raise RuntimeError("publish after close()")
        deadline = time.monotonic() + self._retry_timeout_s
        delay = 0.01
        while True:
            info = self._client.publish(topic, payload, qos=qos)
            # A QoS>0 message published while disconnected is queued by paho
            # (rc NO_CONN) and sent after the reconnect: that is not a loss.
            if info.rc == mqtt.MQTT_ERR_SUCCESS or (info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0):
                with self._done:
                    self.accepted += 1
                return True
            with self._done:
                self.refused += 1
            if time.monotonic() >= deadline:
                with self._done:
                    self.failed += 1
                log.error("mqtt publish to %s given up after %.0f s: %s (pending %d, failed %d)",
                          topic, self._retry_timeout_s, mqtt.error_string(info.rc),
                          self.pending, self.failed)
                return False
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning("mqtt publish to %s refused: %s (pending %d); waiting and retrying",
                            topic, mqtt.error_string(info.rc), self.pending)
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait up to ``timeout_s`` for what is in flight, then disconnect.

        Messages still unacknowledged at the deadline are logged as lost.
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout_s
        with self._done:
            while self.accepted > self.sent and time.monotonic() < deadline:
                self._done.wait(min(0.1, max(deadline - time.monotonic(), 0.0)))
            lost = self.accepted - self.sent
        if lost:
            log.error("mqtt publisher closing with %d message(s) unacknowledged after %.1f s",
                      lost, timeout_s)
        self._client.disconnect()
        self._client.loop_stop()
        log.info("mqtt publisher closed: accepted %d, sent %d, refused %d, failed %d",
                 self.accepted, self.sent, self.refused, self.failed)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any,
                    properties: Any) -> None:
        with self._done:
            self.sent += 1
            self._done.notify_all()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            log.error("mqtt connect refused: %s", reason_code)
        else:
            log.info("mqtt connected")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        if not self._closed:
            log.warning("mqtt disconnected (%s); paho will reconnect", reason_code)
