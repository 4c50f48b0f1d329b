"""MQTT 3.1.1 packets (OASIS standard, protocol level 4): the ones the asyncio clients send, and reading a buffer.

Only what :mod:`engine.mqtt.subscriber` and :mod:`engine.mqtt.publisher` need: CONNECT (persistent session or
not, user name and password), SUBSCRIBE, UNSUBSCRIBE, PUBLISH at QoS 1, the two-byte acknowledgements
(PUBACK, PUBREC, PUBCOMP), PINGREQ and DISCONNECT out; every packet in (:func:`read_packets`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

CONNACK_REFUSED = {1: "unacceptable protocol version", 2: "client identifier rejected", 3: "server unavailable",
                   4: "bad user name or password", 5: "not authorized"}
PUBACK, PUBREC, PUBCOMP = 0x40, 0x50, 0x70
ACK = struct.Struct(">BBH")  # fixed header, remaining length 2, packet id
PINGREQ, DISCONNECT = b"\xc0\x00", b"\xe0\x00"


class Message:
    """One PUBLISH received: ``conn`` is the connection it came on (acknowledged only there)."""

    __slots__ = ("topic", "payload", "mid", "qos", "conn")

    def __init__(self, topic: str, payload: bytes, mid: int, qos: int, conn: int):
        self.topic, self.payload, self.mid, self.qos, self.conn = topic, payload, mid, qos, conn

    def __repr__(self) -> str:
        return f"Message({self.topic!r}, {len(self.payload)} bytes, mid={self.mid}, qos={self.qos})"


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


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """PUBLISH at QoS 1 (no retain): fixed header 0x32, topic, packet id, payload."""
    head = _string(topic) + packet_id.to_bytes(2, "big")
    return b"\x32" + remaining_length(len(head) + len(payload)) + head + payload


class Read(NamedTuple):
    """What :func:`read_packets` found: where the first packet not taken starts, PUBLISH packets, PUBACKs."""

    pos: int
    messages: list[Message]
    acked: list[int]
    full: bool
    malformed: str | None


def read_packets(buf: bytes, pos: int, conn: int, room: int, keep: bool,
                 control: Callable[[int, bytes], None]) -> Read:
    """Every whole packet in ``buf`` from ``pos``, in one loop (the busy paths get many per socket read).

    PUBLISH packets become :class:`Message` (``conn`` stamped on them), at most ``room`` of them (then
    ``full`` is set and the rest stays unread), or are dropped unless ``keep``; the packet ids of PUBACKs are
    collected; every other packet goes to ``control(kind, packet)`` as it is met, in order. A packet that
    cannot be MQTT ends the reading with ``malformed`` saying why.
    """
    n = len(buf)
    out: list[Message] = []
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
                    return Read(pos, out, acked, False, "a remaining length over 4 bytes")
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
                return Read(pos, out, acked, True, None)
            qos = (head >> 1) & 3
            t_end = i + 2 + (buf[i] << 8 | buf[i + 1]) if length >= 2 else end + 1
            start = t_end + 2 if qos else t_end
            if start > end:
                return Read(pos, out, acked, False, "a PUBLISH shorter than its topic and packet id")
            if keep:
                out.append(Message(buf[i + 2:t_end].decode("utf-8", "replace"), buf[start:end],
                                   buf[t_end] << 8 | buf[t_end + 1] if qos else 0, qos, conn))
        else:
            control(kind, buf[pos:end])
        pos = end
    return Read(pos, out, acked, False, None)
