"""The one MQTT publisher that knows the broker has each message: QoS 1, a future per publish.

The worker publishes every alert through it (:mod:`engine.alerts.mqtt_sink`) and answers citizens' MQTT
reports (:mod:`engine.casework.mqtt_intake`). The publishes of one turn of the event loop go out in one
write and PUBACKs are read in bulk, where paho-mqtt spent a quarter of a busy worker's CPU on the alerts
alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from engine.mqtt.packets import publish_packet
from engine.mqtt.session import Session
from engine.mqtt.settings import MqttSettings


class Publisher(Session):
    """QoS 1 publishes, one future per message resolved on its PUBACK, however long the broker is away.

    :meth:`publish` never waits: the packet goes out with whatever else is sent in this turn of the event
    loop, or, while there is no connection, once there is one. Publishes not yet acknowledged when a
    connection ends are sent again on the next one, in the order they were published, with DUP set and
    the same packet id (MQTT 3.1.1, 4.4). At most 65,535 can await their PUBACK at once; the owner
    bounds that (``in_flight``).
    """

    def __init__(self, cfg: MqttSettings, client_id: str, *, clean_session: bool = True,
                 on_lost: Callable[[str], None] | None = None,
                 on_connected: Callable[[], None] | None = None):
        super().__init__(cfg, client_id, clean_session=clean_session, on_lost=on_lost)
        self._on_connected = on_connected
        # By packet id, in publish order: the packet, its future, and whether it went out on a connection.
        self._pending: dict[int, tuple[bytes, asyncio.Future[None], bool]] = {}

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def publish(self, topic: str, payload: bytes) -> asyncio.Future[None]:
        """Queue one QoS 1 publish; the future resolves when the broker acknowledges it."""
        if len(self._pending) >= 0xFFFF:
            raise OverflowError("65,535 MQTT publishes already await their PUBACK")
        pid = self._next_packet_id()
        packet = publish_packet(topic, payload, pid)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[pid] = (packet, fut, self._connected)
        if self._connected:
            self._write(packet)
        return fut

    def _next_packet_id(self) -> int:
        """The next packet id not awaiting an answer (a PUBACK, or the fence's UNSUBACK)."""
        pid = super()._next_packet_id()
        while pid in self._pending or pid in self._waiting:
            pid = super()._next_packet_id()
        return pid

    async def _connected_hook(self) -> None:
        if self._pending:  # in order; DUP set on those sent before on a connection that ended
            self._write(b"".join(bytes((p[0] | 0x08,)) + p[1:] if sent else p for p, _, sent in self._pending.values()))
            self._pending = {pid: (p, fut, True) for pid, (p, fut, _) in self._pending.items()}
        if self._on_connected:
            self._on_connected()

    def _puback(self, packet_ids: list[int]) -> None:
        pop = self._pending.pop
        for pid in packet_ids:
            entry = pop(pid, None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(None)

    def cancel_pending(self) -> None:
        """Give up on every publish still awaiting its PUBACK (their futures are cancelled)."""
        pending, self._pending = self._pending, {}
        for _, fut, _ in pending.values():
            fut.cancel()
