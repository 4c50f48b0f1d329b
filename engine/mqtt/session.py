"""One asyncio MQTT 3.1.1 session with ``cfg``'s broker, connected again after a loss: what
:class:`~engine.mqtt.subscriber.Subscriber` and :class:`~engine.mqtt.publisher.Publisher` share.

Everything runs on the event loop (no thread). One socket read hands over whatever arrived and the whole
packets in it are parsed in one loop (:func:`engine.mqtt.packets.read_packets`); what goes out in one turn
of the event loop goes out in one write (:class:`engine.mqtt.link.Link`). It reconnects by itself (after
1 s, doubling up to 10 s), sends PINGREQ when it has sent nothing for half the keepalive (also while the
owner holds back reading, so the broker does not drop it) and drops a broker silent for 1.5 times the
keepalive. TLS verifies the broker against ``mqtt.tls_ca_file``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable

from engine.mqtt import packets
from engine.mqtt.link import Link
from engine.mqtt.settings import MqttSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 10.0


class ConnectRefused(ConnectionError):
    """The broker answered CONNECT with a refusal (bad credentials, not authorized, ...)."""


class Session:
    """One MQTT connection to ``cfg``'s broker, made again after a loss until :meth:`stop`.

    Run :meth:`run` as a task. Everything runs on the event loop (no thread). Subclasses say what to do once
    connected (:meth:`_connected_hook`), how many PUBLISH packets to take (:meth:`_room_now`, :meth:`_full`),
    with those taken (:meth:`_take`) and with PUBACKs (:meth:`_puback`).
    """

    def __init__(self, cfg: MqttSettings, client_id: str, *, clean_session: bool,
                 on_lost: Callable[[str], None] | None = None):
        self.cfg, self.client_id, self.clean_session = cfg, client_id, clean_session
        self._on_lost = on_lost
        self._link: Link | None = None
        self._conn = 0                  # which connection: bumped on every connect
        self._connected = False         # CONNACK accepted on the current link
        self._buf, self._at = b"", 0    # bytes read, and where the first packet not yet parsed starts
        self._paused = False            # not reading: the owner has no room
        self._discard = False           # stopping: PUBLISH packets are read and dropped (the broker sends them again)
        self._stopping = False
        self._packet_id = 0
        self._waiting: dict[int, asyncio.Future[bytes]] = {}  # CONNACK (key -1), SUBACK / UNSUBACK by packet id
        self._last_in = 0.0
        self._wake = asyncio.Event()

    @property
    def address(self) -> str:
        return f"{self.cfg.host}:{self.cfg.port}"

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def paused(self) -> bool:
        return self._paused

    # -- the connection -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, subscribe, read; after a loss connect again (1 s, doubling to 10 s) until :meth:`stop`."""
        delay, failing = RECONNECT_MIN_S, False
        while not self._stopping:
            try:
                await self._session()
                delay, failing = RECONNECT_MIN_S, False
            except ConnectRefused:  # logged where it is known why
                failing = True
            except (OSError, TimeoutError) as exc:  # refused, unreachable, TLS handshake or certificate, no CONNACK
                if not self._stopping:
                    log.log(logging.DEBUG if failing else logging.WARNING,
                            "MQTT broker at %s: cannot connect as %r (%s: %s); retrying every %.0f-%.0f s",
                            self.address, self.client_id, type(exc).__name__, exc, RECONNECT_MIN_S, RECONNECT_MAX_S)
                failing = True
            if self._stopping:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _session(self) -> None:
        """One connection: raises if it could not be made (or CONNACK refused it), returns once it ended."""
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        ctx = ssl.create_default_context(cafile=cfg.tls_ca_file) if cfg.tls_ca_file else None
        link = Link(self._data, self._lost)
        self._conn += 1
        self._link, self._buf, self._at, self._paused, self._connected = link, b"", 0, False, False
        try:
            await asyncio.wait_for(loop.create_connection(lambda: link, cfg.host, cfg.port, ssl=ctx,
                                                          server_hostname=cfg.host if ctx else None),
                                   CONNECT_TIMEOUT_S)
            connack = self._expect(-1)
            self._write(packets.connect_packet(self.client_id, cfg.keepalive_s, clean_session=self.clean_session,
                                       username=cfg.username, password=cfg.password))
            code = (await asyncio.wait_for(connack, CONNECT_TIMEOUT_S))[1]
            if code:
                reason = packets.CONNACK_REFUSED.get(code, f"code {code}")
                log.warning("MQTT connect refused: %s (broker %s, user %r)", reason, self.address, cfg.username)
                raise ConnectRefused(reason)
            self._connected = True
            self._last_in = time.monotonic()
            keepalive = asyncio.create_task(self._keepalive(link))
            try:
                await self._connected_hook()
                await link.closed
            except (ConnectionError, TimeoutError) as exc:  # lost (or no SUBACK) after connecting: reconnect
                if link.reason is None:
                    link.reason = f"{type(exc).__name__}: {exc}"
            finally:
                keepalive.cancel()
        finally:
            if link.transport is not None and not link.transport.is_closing():
                link.transport.abort()
            self._waiting.clear()
            was = self._connected
            self._connected = False
            if self._link is link:
                self._link = None
            if was and self._on_lost and not self._stopping:
                self._on_lost(link.reason or "connection closed")

    def _expect(self, key: int) -> asyncio.Future[bytes]:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[key] = fut
        return fut

    def _next_packet_id(self) -> int:
        self._packet_id = self._packet_id % 0xFFFF + 1
        return self._packet_id

    async def _connected_hook(self) -> None:
        """Once CONNACK accepted a connection (before reading on it)."""

    def _write(self, data: bytes) -> None:
        """Queue ``data`` on the current connection (none: dropped); it goes out at the end of this turn."""
        if self._link is not None:
            self._link.write(data)

    def _lost(self, link: Link, exc: Exception | None) -> None:
        if link.reason is None:
            link.reason = f"{type(exc).__name__}: {exc}" if exc else "closed by the broker"
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"MQTT connection to {self.address} lost"))
        self._waiting.clear()

    async def _keepalive(self, link: Link) -> None:
        """PINGREQ when nothing was sent for half ``mqtt.keepalive_s``; drop a broker silent for 1.5 times it."""
        ka = self.cfg.keepalive_s
        if ka <= 0:
            return
        while self._link is link:
            await asyncio.sleep(max(0.1, ka / 4))
            now = time.monotonic()
            if now - link.last_out >= ka / 2:
                self._write(packets.PINGREQ)
            if self._paused:  # not reading: the broker's answers wait behind what we do not read yet
                self._last_in = now
            elif now - self._last_in > 1.5 * ka:
                link.drop(f"no answer from the broker for {1.5 * ka:.1f} s (1.5 x mqtt.keepalive_s)")

    # -- reading ---------------------------------------------------------------------------------------
    def _data(self, link: Link, data: bytes) -> None:
        if link is not self._link:
            return
        self._last_in = time.monotonic()
        if self._at < len(self._buf):
            self._buf, self._at = self._buf[self._at:] + data, 0
        else:
            self._buf, self._at = data, 0
        if not self._paused:
            self._parse()

    def _parse(self) -> None:
        """Every whole packet buffered, PUBLISH packets up to ``room()``; the messages to ``on_messages``."""
        link, keep = self._link, not self._discard
        got = packets.read_packets(self._buf, self._at, self._conn, self._room_now() if keep else 1 << 62, keep,
                                   self._control)
        if got.malformed is not None:
            return self._malformed(link, got.malformed)
        if got.full:
            self._pause()
        self._at = got.pos
        if got.acked:
            self._puback(got.acked)
        if got.messages:
            try:
                self._take(got.messages)
            except Exception:  # noqa: BLE001 - the owner's bug must not stop reading (the messages stay unacknowledged)
                log.exception("MQTT subscriber: handling %d messages failed", len(got.messages))

    def _room_now(self) -> int:
        """How many more PUBLISH packets to parse now."""
        return 1 << 62

    def _take(self, messages: list[packets.Message]) -> None:
        """PUBLISH packets received (not expected by a client that does not subscribe)."""

    def _puback(self, packet_ids: list[int]) -> None:
        """PUBACKs received for publishes of ours."""

    def _malformed(self, link: Link | None, what: str) -> None:
        if link is not None:
            link.drop(f"malformed packet from the broker at {self.address}: {what}")

    def _control(self, kind: int, packet: bytes) -> None:
        if kind == 2:  # CONNACK: flags, return code
            self._resolve(-1, packet[2:])
        elif kind in (9, 11):  # SUBACK / UNSUBACK: packet id, then (SUBACK) a code per topic
            self._resolve(int.from_bytes(packet[2:4], "big"), packet[2:])
        elif kind == 6:  # PUBREL (QoS 2, after our PUBREC): complete it
            self._write(packets.ACK.pack(packets.PUBCOMP, 2, int.from_bytes(packet[2:4], "big")))
        # PINGRESP (13): nothing to do (it counted as traffic); anything else is not for a subscriber

    def _resolve(self, key: int, value: bytes) -> None:
        fut = self._waiting.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(value)

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            link = self._link
            if link is not None and link.transport is not None:
                link.transport.pause_reading()
            self._full()

    def _full(self) -> None:
        """Parsing stopped: ``room()`` was reached."""

    def resume(self) -> None:
        """The owner has room again: parse what is buffered, then read on."""
        if not self._paused:
            return
        self._paused = False
        self._parse()
        link = self._link
        if not self._paused and link is not None and link.transport is not None and not link.transport.is_closing():
            link.transport.resume_reading()

    # -- stopping ---------------------------------------------------------------------------------------
    async def stop(self, fence_topic: str, timeout: float = 5.0) -> None:
        """Read no more messages, make sure the broker has read everything sent, then disconnect.

        mosquitto drops what a client sent just before closing if it has not read it yet (measured: of
        100 PUBACKs sent just before DISCONNECT, one counted). So what was sent is fenced first:
        an UNSUBSCRIBE of ``fence_topic`` (a filter never subscribed) is answered only after the broker
        has read everything before it. Messages still arriving meanwhile are dropped unacknowledged
        (the broker keeps them for the session).
        """
        self._stopping, self._discard = True, True
        self._wake.set()
        link = self._link
        if link is None or not self._connected:
            return
        fence = self._expect(self._next_packet_id())
        self._write(packets.unsubscribe_packet(self._packet_id, [fence_topic]))
        self.resume()
        try:
            await asyncio.wait_for(fence, timeout)
        except (TimeoutError, ConnectionError):
            log.warning("MQTT broker at %s did not confirm the last acknowledgements within %.0f s",
                        self.address, timeout)
        self._write(packets.DISCONNECT)
        link.flush()
        if link.transport is not None:
            link.transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(link.closed), timeout)
        except TimeoutError:
            if link.transport is not None:
                link.transport.abort()
