"""Asyncio MQTT 3.1.1 clients for the two busy MQTT paths: packets parsed in bulk, acknowledgements in bulk.

The bridge reads every gateway's fixes through one subscription, often one fix per message, and the worker
publishes every alert at QoS 1. paho-mqtt (which the other Citywatch MQTT clients use, :mod:`engine.mqtt`)
spends ~80 us of CPU per QoS 1 message received and acknowledged on the 2-core development box: a ``recv()``
per header byte and a ``select()`` per packet, then a socket-pair wake-up and one ``send()`` per packet; that
alone caps a bridge near 12,000 messages/s on a whole core, and it was a quarter of a busy worker's CPU for
the alerts alone. Here one socket read hands over whatever arrived and the whole packets in it are parsed in
one loop; what goes out in one turn of the event loop goes out in one write.

:class:`Subscriber` hands the messages on as lists (:class:`Message`) and acknowledges a list in one write
(:meth:`Subscriber.ack`): ~9 us per message received and acknowledged, measured the same way.
:class:`Publisher` publishes at QoS 1 and resolves one future per message on its PUBACK; what is not
acknowledged when a connection ends is sent again (DUP set, same packet id, in order) on the next one.

Only what these need (MQTT 3.1.1, OASIS standard, protocol level 4): CONNECT (persistent session or not,
user name and password, TLS verifying the broker against ``mqtt.tls_ca_file``), SUBSCRIBE, PUBLISH in at
QoS 0, 1 or 2 (PUBACK, or PUBREC then PUBCOMP, out), PUBLISH out at QoS 1, UNSUBSCRIBE (the fence of
``stop``), PINGREQ and DISCONNECT. Both reconnect by themselves (after 1 s, doubling up to 10 s).

Flow control of the subscriber: ``room()`` says how many more messages the owner takes now. Past it the
subscriber stops parsing and reading (the rest waits in the socket buffers, then at the broker) and calls
``on_full``; :meth:`Subscriber.resume` reads on. It keeps sending PINGREQ meanwhile, so the broker does not
drop a subscriber that holds back. A message is acknowledged only on the connection it came on: after a
reconnect the broker sends the unacknowledged ones again (with the same packet ids, which an
acknowledgement of the old copy must not hit).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
import time
from collections.abc import Callable, Iterable

from engine.settings import MqttSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 10.0
_CONNACK_REFUSED = {1: "unacceptable protocol version", 2: "client identifier rejected", 3: "server unavailable",
                    4: "bad user name or password", 5: "not authorized"}
_PUBACK, _PUBREC, _PUBCOMP = 0x40, 0x50, 0x70
_ACK = struct.Struct(">BBH")
PINGREQ, DISCONNECT = b"\xc0\x00", b"\xe0\x00"


class Message:
    """One PUBLISH received: ``conn`` is the connection it came on (acknowledged only there)."""

    __slots__ = ("topic", "payload", "mid", "qos", "conn")

    def __init__(self, topic: str, payload: bytes, mid: int, qos: int, conn: int):
        self.topic, self.payload, self.mid, self.qos, self.conn = topic, payload, mid, qos, conn

    def __repr__(self) -> str:
        return f"Message({self.topic!r}, {len(self.payload)} bytes, mid={self.mid}, qos={self.qos})"


class ConnectRefused(ConnectionError):
    """The broker answered CONNECT with a refusal (bad credentials, not authorized, ...)."""


class _Link(asyncio.Protocol):
    """One TCP (or TLS) connection; hands its bytes and its end to the client that made it."""

    def __init__(self, owner: _Client):
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reason: str | None = None  # why it ended (logged by the owner)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.owner._data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.owner._lost(self, exc)


def remaining_length(n: int) -> bytes:
    """The remaining-length field: ``n`` in base 128, least significant group first, bit 7 = more follows."""
    if not 0 <= n <= 268_435_455:
        raise ValueError(f"MQTT remaining length {n} outside 0..268,435,455")
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError(f"MQTT string of {len(raw)} bytes: at most 65,535")
    return len(raw).to_bytes(2, "big") + raw


def connect_packet(client_id: str, keepalive: int, *, clean_session: bool, username: str = "",
                   password: str = "") -> bytes:
    flags = (0x02 if clean_session else 0) | (0x80 if username else 0) | (0x40 if username and password else 0)
    body = _string("MQTT") + bytes((4, flags)) + keepalive.to_bytes(2, "big") + _string(client_id)
    if username:
        body += _string(username)
        if password:
            body += _string(password)
    return b"\x10" + remaining_length(len(body)) + body


def subscribe_packet(packet_id: int, topics: list[tuple[str, int]]) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(_string(t) + bytes((q,)) for t, q in topics)
    return b"\x82" + remaining_length(len(body)) + body


def unsubscribe_packet(packet_id: int, topics: list[str]) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(_string(t) for t in topics)
    return b"\xa2" + remaining_length(len(body)) + body


class _Client:
    """One MQTT connection to ``cfg``'s broker, made again after a loss until :meth:`stop`.

    Run :meth:`run` as a task. Everything runs on the event loop (no thread). Subclasses say what to do once
    connected (:meth:`_connected_hook`), how many PUBLISH packets to take (:meth:`_room_now`, :meth:`_full`),
    with those taken (:meth:`_take`) and with PUBACKs (:meth:`_puback`).
    """

    def __init__(self, cfg: MqttSettings, client_id: str, *, clean_session: bool,
                 on_lost: Callable[[str], None] | None = None):
        self.cfg, self.client_id, self.clean_session = cfg, client_id, clean_session
        self._on_lost = on_lost
        self._link: _Link | None = None
        self._conn = 0                  # which connection: bumped on every connect
        self._connected = False         # CONNACK accepted on the current link
        self._buf, self._at = b"", 0    # bytes read, and where the first packet not yet parsed starts
        self._paused = False            # not reading: the owner has no room
        self._discard = False           # stopping: PUBLISH packets are read and dropped (the broker sends them again)
        self._stopping = False
        self._packet_id = 0
        self._waiting: dict[int, asyncio.Future[bytes]] = {}  # CONNACK (key -1), SUBACK / UNSUBACK by packet id
        self._last_in = self._last_out = 0.0
        self._wake = asyncio.Event()
        self._out: list[bytes] = []     # written at the end of this turn of the event loop, in one write
        self._flush_due = False

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
        link = _Link(self)
        self._conn += 1
        self._link, self._buf, self._at, self._paused, self._connected = link, b"", 0, False, False
        self._out = []  # nothing meant for an earlier connection goes out on this one
        try:
            await asyncio.wait_for(loop.create_connection(lambda: link, cfg.host, cfg.port, ssl=ctx,
                                                          server_hostname=cfg.host if ctx else None),
                                   CONNECT_TIMEOUT_S)
            connack = self._expect(-1)
            self._write(connect_packet(self.client_id, cfg.keepalive_s, clean_session=self.clean_session,
                                       username=cfg.username, password=cfg.password))
            code = (await asyncio.wait_for(connack, CONNECT_TIMEOUT_S))[1]
            if code:
                reason = _CONNACK_REFUSED.get(code, f"code {code}")
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
        """Queue ``data``: what is queued in one turn of the event loop goes out in one write."""
        if self._link is None:
            return
        self._out.append(data)
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        out, self._out = self._out, []
        link = self._link
        if out and link is not None and link.transport is not None and not link.transport.is_closing():
            link.transport.write(out[0] if len(out) == 1 else b"".join(out))
            self._last_out = time.monotonic()

    def _lost(self, link: _Link, exc: Exception | None) -> None:
        if link.reason is None:
            link.reason = f"{type(exc).__name__}: {exc}" if exc else "closed by the broker"
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"MQTT connection to {self.address} lost"))
        self._waiting.clear()

    def _drop(self, link: _Link, reason: str) -> None:
        link.reason = reason
        if link.transport is not None:
            link.transport.abort()

    async def _keepalive(self, link: _Link) -> None:
        """PINGREQ when nothing was sent for half ``mqtt.keepalive_s``; drop a broker silent for 1.5 times it."""
        ka = self.cfg.keepalive_s
        if ka <= 0:
            return
        while self._link is link:
            await asyncio.sleep(max(0.1, ka / 4))
            now = time.monotonic()
            if now - self._last_out >= ka / 2:
                self._write(PINGREQ)
            if self._paused:  # not reading: the broker's answers wait behind what we do not read yet
                self._last_in = now
            elif now - self._last_in > 1.5 * ka:
                self._drop(link, f"no answer from the broker for {1.5 * ka:.1f} s (1.5 x mqtt.keepalive_s)")

    # -- reading ---------------------------------------------------------------------------------------
    def _data(self, link: _Link, data: bytes) -> None:
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
        buf, pos, conn, link = self._buf, self._at, self._conn, self._link
        n = len(buf)
        out: list[Message] = []
        room = self._room_now() if not self._discard else 1 << 62
        acked: list[int] = []
        while n - pos >= 2:
            head, length, i = buf[pos], buf[pos + 1], pos + 2
            if length & 0x80:  # remaining length in 2 to 4 bytes
                length &= 0x7F
                shift = 7
                while True:
                    if i >= n:
                        length = -1
                        break
                    b = buf[i]
                    length |= (b & 0x7F) << shift
                    i += 1
                    if b < 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        return self._malformed(link, "a remaining length over 4 bytes")
                if length < 0:
                    break
            end = i + length
            if end > n:
                break
            kind = head >> 4
            if kind == 4:  # PUBACK of a publish of ours
                if length >= 2:
                    acked.append(buf[i] << 8 | buf[i + 1])
            elif kind == 3:  # PUBLISH
                if len(out) >= room:
                    self._pause()
                    break
                qos = (head >> 1) & 3
                t_end = i + 2 + (buf[i] << 8 | buf[i + 1]) if length >= 2 else end + 1
                start = t_end + 2 if qos else t_end
                if start > end:
                    return self._malformed(link, "a PUBLISH shorter than its topic and packet id")
                if not self._discard:
                    out.append(Message(buf[i + 2:t_end].decode("utf-8", "replace"), buf[start:end],
                                       buf[t_end] << 8 | buf[t_end + 1] if qos else 0, qos, conn))
            else:
                self._control(kind, buf[pos:end])
            pos = end
        self._at = pos
        if acked:
            self._puback(acked)
        if out:
            try:
                self._take(out)
            except Exception:  # noqa: BLE001 - the owner's bug must not stop reading (the messages stay unacknowledged)
                log.exception("MQTT subscriber: handling %d messages failed", len(out))

    def _room_now(self) -> int:
        """How many more PUBLISH packets to parse now."""
        return 1 << 62

    def _take(self, messages: list[Message]) -> None:
        """PUBLISH packets received (not expected by a client that does not subscribe)."""

    def _puback(self, packet_ids: list[int]) -> None:
        """PUBACKs received for publishes of ours."""

    def _malformed(self, link: _Link | None, what: str) -> None:
        if link is not None:
            self._drop(link, f"malformed packet from the broker at {self.address}: {what}")

    def _control(self, kind: int, packet: bytes) -> None:
        if kind == 2:  # CONNACK: flags, return code
            self._resolve(-1, packet[2:])
        elif kind in (9, 11):  # SUBACK / UNSUBACK: packet id, then (SUBACK) a code per topic
            self._resolve(int.from_bytes(packet[2:4], "big"), packet[2:])
        elif kind == 6:  # PUBREL (QoS 2, after our PUBREC): complete it
            self._write(_ACK.pack(_PUBCOMP, 2, int.from_bytes(packet[2:4], "big")))
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
        self._write(unsubscribe_packet(self._packet_id, [fence_topic]))
        self.resume()
        try:
            await asyncio.wait_for(fence, timeout)
        except (TimeoutError, ConnectionError):
            log.warning("MQTT broker at %s did not confirm the last acknowledgements within %.0f s",
                        self.address, timeout)
        self._write(DISCONNECT)
        self._flush()
        if link.transport is not None:
            link.transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(link.closed), timeout)
        except TimeoutError:
            if link.transport is not None:
                link.transport.abort()


class Subscriber(_Client):
    """Subscribes to ``topics`` and hands the messages to ``on_messages`` in lists (on the event loop)."""

    def __init__(self, cfg: MqttSettings, client_id: str, topics: list[tuple[str, int]],
                 on_messages: Callable[[list[Message]], None], *, room: Callable[[], int],
                 clean_session: bool = False, on_full: Callable[[], None] | None = None,
                 on_subscribed: Callable[[], None] | None = None,
                 on_lost: Callable[[str], None] | None = None):
        super().__init__(cfg, client_id, clean_session=clean_session, on_lost=on_lost)
        self.topics = topics
        self._on_messages, self._room, self._on_full, self._on_subscribed = on_messages, room, on_full, on_subscribed

    async def _connected_hook(self) -> None:
        suback = self._expect(self._next_packet_id())
        self._write(subscribe_packet(self._packet_id, self.topics))
        granted = await asyncio.wait_for(suback, CONNECT_TIMEOUT_S)
        failed = [t for (t, _), code in zip(self.topics, granted[2:], strict=False) if code == 0x80]
        if failed:
            log.error("MQTT subscription to %s refused by the broker at %s", failed, self.address)
        elif self._on_subscribed:
            self._on_subscribed()

    def _room_now(self) -> int:
        return self._room()

    def _take(self, messages: list[Message]) -> None:
        self._on_messages(messages)

    def _full(self) -> None:
        if self._on_full:
            self._on_full()

    def ack(self, messages: Iterable[Message]) -> int:
        """Acknowledge ``messages`` (PUBACK, or PUBREC for QoS 2) in one write; returns how many were sent.

        Messages of an earlier connection are skipped: the broker sends them again on this one.
        """
        conn, pack = self._conn, _ACK.pack
        if not self._connected:
            return 0
        acks = [pack(_PUBACK if m.qos == 1 else _PUBREC, 2, m.mid) for m in messages if m.conn == conn and m.qos]
        if acks:
            self._write(b"".join(acks))
        return len(acks)


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """PUBLISH at QoS 1 (no retain): fixed header 0x32, topic, packet id, payload."""
    head = _string(topic) + packet_id.to_bytes(2, "big")
    return b"\x32" + remaining_length(len(head) + len(payload)) + head + payload


class Publisher(_Client):
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
