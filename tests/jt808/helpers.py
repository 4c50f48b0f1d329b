"""Frames built by hand for the JT/T 808 tests, independent of engine.jt808: field bytes, XOR, escaping.

Everything here follows the field tables of the standard directly (big-endian WORD/DWORD, packed BCD) and uses
no code of the codec, so a golden frame checks the codec rather than agreeing with it.
"""

from __future__ import annotations


def word(n: int) -> bytes:
    return n.to_bytes(2, "big")


def dword(n: int) -> bytes:
    return n.to_bytes(4, "big")


def xor_all(data: bytes) -> int:
    """The check code, by a plain loop."""
    code = 0
    for b in data:
        code ^= b
    return code


def stuff(data: bytes) -> bytes:
    """Escaping, byte by byte: 0x7e -> 7d 02, 0x7d -> 7d 01."""
    out = bytearray()
    for b in data:
        if b == 0x7E:
            out += b"\x7d\x02"
        elif b == 0x7D:
            out += b"\x7d\x01"
        else:
            out.append(b)
    return bytes(out)


def on_wire(payload: bytes, check: int | None = None) -> bytes:
    """7e + escaped(payload + check code) + 7e; ``check`` overrides the computed check code."""
    code = xor_all(payload) if check is None else check
    return b"\x7e" + stuff(payload + bytes([code])) + b"\x7e"


def header_2013(msg_id: int, body_length: int, phone_bcd: str, serial: int, *,
                packet: tuple[int, int] | None = None, encryption: int = 0) -> bytes:
    """id WORD, properties WORD (length bits 0-9, encryption bits 10-12, bit 13 sub-packaged), BCD[6], serial."""
    props = body_length | encryption << 10 | (0x2000 if packet else 0)
    out = word(msg_id) + word(props) + bytes.fromhex(phone_bcd) + word(serial)
    assert len(bytes.fromhex(phone_bcd)) == 6
    if packet:
        out += word(packet[0]) + word(packet[1])
    return out


def header_2019(msg_id: int, body_length: int, phone_bcd: str, serial: int, version: int = 1) -> bytes:
    """id WORD, properties WORD with bit 14 set, version BYTE, BCD[10], serial."""
    assert len(bytes.fromhex(phone_bcd)) == 10
    return word(msg_id) + word(0x4000 | body_length) + bytes([version]) + bytes.fromhex(phone_bcd) + word(serial)


def location_body(*, alarm: int = 0, status: int = 0x2, lat: int = 24_481_500, lon: int = 118_089_400,
                  altitude: int = 10, speed: int = 360, heading: int = 90, time_bcd: str = "260908100000",
                  items: bytes = b"") -> bytes:
    """The 28-byte fixed part from raw field values (lat/lon in 10^-6 degree), then ``items`` as given."""
    return (dword(alarm) + dword(status) + dword(lat) + dword(lon) + word(altitude) + word(speed) + word(heading)
            + bytes.fromhex(time_bcd) + items)


PHONE_2013 = "013912345678"
PHONE_2019 = "00000000013912345678"


def location_frame(body: bytes, serial: int = 1, *, length: int | None = None) -> bytes:
    """A 2013 0x0200 frame of ``body`` from 013912345678; ``length`` overrides the declared body length."""
    return on_wire(header_2013(0x0200, len(body) if length is None else length, PHONE_2013, serial) + body)
