"""A minimal MQTT 3.1.1 publisher on a raw socket: CONNECT, pipelined QoS 1 PUBLISH, PUBACKs counted in bulk.

Made for the load generator, where a general client's per-message Python
cost (paho: packet object, mid bookkeeping, callbacks) would make the
publisher a large share of the CPU it is meant to load. Here packets are
encoded in bulk into one buffer and written with one ``send`` loop; the
broker's replies are parsed as a byte stream (a run of PUBACKs,
``0x40 0x02 id_hi id_lo``, is counted with two slice comparisons). Only what
a QoS 1 publisher needs: no subscriptions, no QoS 2, no retries (a clean
session that loses its connection is an error, not a reconnect).

Framing (MQTT 3.1.1, OASIS standard, sections 2.2.3 and 3.3): fixed header
byte, remaining length as a base-128 varint, topic as a 2-byte length
prefix and UTF-8, the 2-byte packet identifier (QoS > 0), then the payload.
Packet identifiers cycle 1..65535 (0 is not allowed); the caller keeps fewer
than 65,535 in flight, so an identifier is never reused while unacknowledged.
"""

from __future__ import annotations

import select
import socket
import time

from engine.mqtt.packets import remaining_length  # the same field the bridge's subscriber encodes

PUBLISH_QOS1 = 0x32          # PUBLISH, DUP 0, QoS 1, RETAIN 0
PUBACK, CONNACK, PINGRESP = 0x40, 0x20, 0xD0
PINGREQ, DISCONNECT = b"\xc0\x00", b"\xe0\x00"
MAX_PACKET_ID = 65535
_CONNACK_CODES = {1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
                  4: "bad user name or password", 5: "not authorized"}


def utf8_field(text: str | bytes) -> bytes:
    """A length-prefixed string (2-byte big-endian length, then the UTF-8 bytes)."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > 0xFFFF:
        raise ValueError(f"MQTT string of {len(raw)} bytes: at most 65,535")
    return len(raw).to_bytes(2, "big") + raw


# Remaining-length fields of every packet under 16 KiB, and every packet identifier, as bytes objects:
# the per-packet work of publish_batch is then list lookups and one join.
_RL = [remaining_length(n) for n in range(1 << 14)]
_PID = [i.to_bytes(2, "big") for i in range(MAX_PACKET_ID + 1)]


def next_packet_id(packet_id: int, n: int = 1) -> int:
    """The identifier ``n`` after ``packet_id`` in the cycle 1..65535."""
    return (packet_id - 1 + n) % MAX_PACKET_ID + 1


def connect_packet(client_id: str, *, keepalive: int = 60, clean_session: bool = True,
                   username: str | None = None, password: str | None = None) -> bytes:
    """CONNECT for protocol level 4 (3.1.1)."""
    if password is not None and username is None:
        raise ValueError("MQTT 3.1.1 allows a password only with a user name")
    flags = ((0x02 if clean_session else 0) | (0x80 if username is not None else 0)
             | (0x40 if password is not None else 0))
    body = utf8_field("MQTT") + bytes((4, flags)) + keepalive.to_bytes(2, "big") + utf8_field(client_id)
    if username is not None:
        body += utf8_field(username)
    if password is not None:
        body += utf8_field(password)
    return b"\x10" + remaining_length(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    """One QoS 1 PUBLISH; ``topic`` is the length-prefixed field of :func:`utf8_field`."""
    if not 1 <= packet_id <= MAX_PACKET_ID:
        raise ValueError(f"MQTT packet identifier {packet_id} outside 1..65535")
    return bytes((PUBLISH_QOS1,)) + remaining_length(len(topic) + 2 + len(payload)) + topic + _PID[packet_id] + payload


def publish_batch(topics: list[bytes], payloads: list[bytes], first_id: int) -> tuple[bytes, int]:
    """QoS 1 PUBLISH packets of ``payloads`` to ``topics`` (length-prefixed fields, one per payload), with
    identifiers from ``first_id`` on, as one buffer; returns it and the next identifier."""
    rl, pid, head = _RL, _PID, b"\x32"
    parts: list[bytes] = []
    i = first_id
    for topic, payload in zip(topics, payloads, strict=True):
        n = len(topic) + 2 + len(payload)
        parts += (head, rl[n] if n < 16384 else remaining_length(n), topic, pid[i], payload)
        i = i + 1 if i < MAX_PACKET_ID else 1
    return b"".join(parts), i


class AckReader:
    """Counts the PUBACKs in the byte stream from the broker; keeps a partial packet for the next chunk.

    A run of whole PUBACKs is recognised in bulk: every 4th byte from the start is 0x40 and every one after
    it 0x02. Anything else (PINGRESP, a packet split across reads) goes packet by packet.
    """

    def __init__(self) -> None:
        self.acked = 0
        self.last_id = 0          # identifier of the latest PUBACK (they come in publish order)
        self.pingresps = 0
        self._buf = b""

    def feed(self, data: bytes) -> int:
        """Parse ``data``; returns the PUBACKs it completed. Raises ValueError on a packet a QoS 1 publisher
        never receives (e.g. a PUBLISH: it has no subscriptions)."""
        buf = self._buf + data if self._buf else data
        before = self.acked
        pos, end = 0, len(buf)
        n4 = end & ~3
        k = n4 >> 2
        if k and buf[0:n4:4] == b"\x40" * k and buf[1:n4:4] == b"\x02" * k:
            self.acked += k
            self.last_id = int.from_bytes(buf[n4 - 2:n4], "big")
            pos = n4                        # and the 0-3 bytes after it below (e.g. a PINGRESP)
        while pos + 2 <= end:
            kind = buf[pos]
            length, shift, j = 0, 0, pos + 1
            while j < end and buf[j] & 0x80:
                length |= (buf[j] & 0x7F) << shift
                shift += 7
                j += 1
            if j >= end:
                break                       # the remaining length itself is incomplete
            length |= buf[j] << shift
            if j + 1 + length > end:
                break                       # body not here yet
            body = buf[j + 1:j + 1 + length]
            if kind == PUBACK and length == 2:
                self.acked += 1
                self.last_id = int.from_bytes(body, "big")
            elif kind == PINGRESP and length == 0:
                self.pingresps += 1
            else:
                raise ValueError(f"unexpected MQTT packet type 0x{kind:02x} (remaining length {length}) "
                                 "from the broker")
            pos = j + 1 + length
        self._buf = buf[pos:]
        return self.acked - before


class WirePublisher:
    """One connection to an MQTT 3.1.1 broker that publishes QoS 1 from a single thread, non-blocking.

    :meth:`send` writes a buffer of packets (reading PUBACKs while the socket is full); :meth:`read_acks`
    takes what the broker sent. ``acked`` counts PUBACKs; the caller bounds ``sent - acked``.
    """

    def __init__(self, host: str, port: int, client_id: str, *, keepalive: int = 60, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0, clock=time.monotonic):
        self.address = f"{host}:{port}"
        self.keepalive, self.timeout, self.clock = keepalive, timeout, clock
        self.acks = AckReader()
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise ConnectionError(f"MQTT broker {self.address}: cannot connect ({exc})") from exc
        try:
            self._connect(client_id, username, password)
        except TimeoutError:
            self.sock.close()
            raise TimeoutError(f"MQTT broker {self.address}: no CONNACK within {timeout:.0f} s") from None
        except BaseException:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(self.sock, select.POLLIN)
        self._last_sent = clock()

    def _connect(self, client_id: str, username: str | None, password: str | None) -> None:
        """CONNECT, then the CONNACK (blocking, within the socket's connect timeout)."""
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.sendall(connect_packet(client_id, keepalive=self.keepalive, username=username, password=password))
        connack = b""
        while len(connack) < 4:
            chunk = self.sock.recv(4 - len(connack))
            if not chunk:
                raise ConnectionError(f"MQTT broker {self.address} closed the connection before CONNACK")
            connack += chunk
        if connack[0] != CONNACK or connack[1] != 2:
            raise ConnectionError(f"MQTT broker {self.address}: expected CONNACK, got {connack.hex()}")
        if connack[3]:
            reason = _CONNACK_CODES.get(connack[3], "unknown reason")
            raise ConnectionError(f"MQTT broker {self.address} refused CONNECT from {client_id!r}: {reason} "
                                  f"(return code {connack[3]})")

    @property
    def acked(self) -> int:
        return self.acks.acked

    def send(self, data: bytes) -> None:
        """Write all of ``data``; while the socket buffer is full, read acks (the broker never waits on us)."""
        view = memoryview(data)
        deadline = None
        while view:
            try:
                view = view[self.sock.send(view):]
                deadline = None
            except BlockingIOError:
                deadline = deadline or self.clock() + self.timeout
                if self.clock() > deadline:
                    raise TimeoutError(f"MQTT broker {self.address} took nothing for {self.timeout:.0f} s") from None
                ready = select.select([self.sock], [self.sock], [], 0.05)
                if ready[0]:
                    self.read_acks()
        self._last_sent = self.clock()

    def read_acks(self, wait_s: float = 0.0) -> int:
        """PUBACKs received (counted), waiting up to ``wait_s`` for the first byte; pings when idle."""
        if self.clock() - self._last_sent > self.keepalive / 2:
            self._last_sent = self.clock()
            self.send(PINGREQ)
        if wait_s > 0 and not self._poll.poll(wait_s * 1000):
            return 0
        got = 0
        while True:
            try:
                data = self.sock.recv(1 << 18)
            except BlockingIOError:
                return got
            if not data:
                raise ConnectionError(f"MQTT broker {self.address} closed the connection "
                                      f"({self.acks.acked:,} PUBACKs received)")
            got += self.acks.feed(data)
            if len(data) < 1 << 18:
                return got

    def wait_acked(self, n: int, timeout: float) -> bool:
        """Read until ``n`` PUBACKs in total or ``timeout`` seconds; True if reached."""
        deadline = self.clock() + timeout
        while self.acks.acked < n:
            left = deadline - self.clock()
            if left <= 0:
                return False
            self.read_acks(min(left, 0.05))
        return True

    def close(self) -> None:
        """DISCONNECT (best effort) and close the socket."""
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(1.0)
            self.sock.sendall(DISCONNECT)
        except OSError:
            pass
        finally:
            self.sock.close()

