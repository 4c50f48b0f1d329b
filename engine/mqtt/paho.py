"""paho-mqtt 2.x clients built from settings, for the MQTT paths that are not busy.

paho runs its own network thread and reconnects by itself; what publishes and must know that the broker
has the message uses :class:`engine.mqtt.publisher.Publisher` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from engine.mqtt.settings import MqttSettings

log = logging.getLogger(__name__)


def make_client(cfg: MqttSettings, client_id: str, *, clean_session: bool = True,
                manual_ack: bool = False) -> mqtt.Client:
    """A client for ``cfg``'s broker; call ``connect_async`` + ``loop_start`` (see :func:`start`).

    Logs in with ``mqtt.username``/``password`` when a username is set, and speaks TLS, verifying
    the broker against ``mqtt.tls_ca_file``, when that is set.
    """
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                         clean_session=clean_session, manual_ack=manual_ack)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password or None)
    if cfg.tls_ca_file:
        client.tls_set(ca_certs=cfg.tls_ca_file)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    return client


def start(client: mqtt.Client, cfg: MqttSettings) -> None:
    """Connect in the background; paho reconnects by itself after a loss."""
    client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
    client.loop_start()


def subscribe_on_connect(client: mqtt.Client, topics: list[tuple[str, int]],
                         on_subscribed: Callable[[], None] | None = None) -> None:
    """(Re)subscribe to ``topics`` after every connect; ``on_subscribed`` runs once the broker confirms."""

    def _on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect refused: %s", reason_code)
            return
        client.subscribe(topics)

    def _on_subscribe(client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[Any],
                      properties: Any = None) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("MQTT subscription to %s refused: %s", [t for t, _ in topics], failed)
        elif on_subscribed:
            on_subscribed()

    client.on_connect = _on_connect
    client.on_subscribe = _on_subscribe
