"""Make the MQTT broker's own message drops visible: ``citywatch_bridge_broker_dropped_messages_total``.

mosquitto acknowledges a QoS 1 publish to the gateway and then drops it for
a subscriber whose queue is full (``max_queued_messages`` /
``max_queued_bytes``; mosquitto issue #3687): the gateway cannot know. The
only trace is a log line and the ``$SYS/broker/publish/messages/dropped``
counter (a running count since the broker started), which this watcher turns
into a Prometheus counter (it grows by each increase; when the broker restarts
and its count starts again from 0, by the new count) and a log line whenever it
grows. Brokers without that topic (amqtt) leave the metric at 0; a broker
whose ACL refuses the bridge's account that topic gets one warning.
"""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt

from engine.core.metrics import BridgeMetrics
from engine.mqtt import paho as mqttc
from engine.mqtt.settings import MqttSettings
from engine.mqtt.sys_topics import SYS_DROPPED

log = logging.getLogger(__name__)


def dropped_since(last: float | None, value: float) -> float:
    """Drops new since the broker last reported ``last`` (None: nothing seen yet, all of ``value`` is new).

    A count lower than the last one means the broker restarted and counts from 0 again.
    """
    if last is None or value < last:
        return max(value, 0.0)
    return value - last


class BrokerDropWatch:
    def __init__(self, cfg: MqttSettings, client_id: str, metrics: BridgeMetrics):
        self.cfg, self.metrics = cfg, metrics
        self._last: float | None = None
        self._refused_logged = False
        self._client = mqttc.make_client(cfg, client_id)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if not reason_code.is_failure:
            client.subscribe(SYS_DROPPED, 0)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None) -> None:
        if any(rc.is_failure for rc in reason_codes) and not self._refused_logged:
            self._refused_logged = True
            log.warning("bridge: the MQTT broker refuses %s to this account; messages it drops for a full "
                        "subscriber queue will not show in citywatch_bridge_broker_dropped_messages_total", SYS_DROPPED)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        try:
            value = float(msg.payload)
        except ValueError:
            return
        new = dropped_since(self._last, value)
        if new > 0:
            self.metrics.broker_dropped.inc(new)
            log.error("bridge: the MQTT broker reports %d dropped messages%s: a subscriber's queue was full "
                      "(mosquitto max_queued_messages); acknowledged fixes may be lost", new,
                      "" if self._last is not None else " since it started")
        self._last = value

    def start(self) -> None:
        mqttc.start(self._client, self.cfg)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
