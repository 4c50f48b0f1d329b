"""paho-mqtt 2.x clients built from settings, and an awaitable QoS 1 publish."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import paho.mqtt.client as mqtt

from engine.settings import MqttSettings

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


class AsyncPublisher:
    """Publish from asyncio and await the broker's acknowledgement (QoS 1).

    paho calls ``on_publish`` from its network thread; the matching future is
    resolved on the event loop. A publish that paho refuses (disconnected,
    queue full) raises :class:`ConnectionError` so the caller can retry.
    """

    def __init__(self, client: mqtt.Client, loop: asyncio.AbstractEventLoop):
        self.client, self.loop = client, loop
        self._pending: dict[int, asyncio.Future[None]] = {}
        client.on_publish = self._on_publish

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None) -> None:
        self.loop.call_soon_threadsafe(self._resolve, mid)

    def _resolve(self, mid: int) -> None:
        # Runs on the loop, so after publish() registered its future (it does not yield in between).
        fut = self._pending.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def publish(self, topic: str, payload: bytes, qos: int = 1, timeout: float = 10.0) -> None:
        if not self.client.is_connected():
            raise ConnectionError("MQTT broker not connected")
        info = self.client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish refused: {mqtt.error_string(info.rc)}")
        if qos == 0:
            return
        fut = self.loop.create_future()
        self._pending[info.mid] = fut
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            self._pending.pop(info.mid, None)
            raise ConnectionError(f"MQTT publish not acknowledged within {timeout} s") from None


def subscribe_on_connect(client: mqtt.Client, topics: list[tuple[str, int]],
                         on_subscribed: Callable[[], None] | None = None) -> None:
    """(Re)subscribe to ``topics`` after every connect; ``on_subscribed`` runs once the broker confirms."""

    def _on_connect(client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            log.warning("MQTT connect refused: %s", reason_code)
            return
        client.subscribe(topics)

    def _on_subscribe(client, userdata, mid, reason_codes, properties=None):
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("MQTT subscription to %s refused: %s", [t for t, _ in topics], failed)
        elif on_subscribed:
            on_subscribed()

    client.on_connect = _on_connect
    client.on_subscribe = _on_subscribe
