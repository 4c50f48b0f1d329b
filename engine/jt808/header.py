"""The JT/T 808 message header (2013 and 2019), its BCD fields, and ``FrameError``, the one error of the package.

``FrameError`` lives here, next to :class:`Header`, because it carries the decoded header (so a server can still
answer a bad message with 0x8001 result 2 or 3) and the header decoder raises it: one module keeps the imports of
the package acyclic.

Layout (big-endian)::

    message id      WORD
    properties      WORD    bits 0-9 body length, 10-12 encryption, 13 sub-packaged, 14 version flag, 15 reserved
    version         BYTE    2019 only (bit 14 set)
    terminal phone  BCD[6]  (2013) or BCD[10] (2019)
    serial          WORD
    packet total    WORD    only when sub-packaged
    packet index    WORD    only when sub-packaged, from 1
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from engine.core.errors import CitywatchError

#: Every ``FrameError.reason``: short stable labels, fit for a metric label.
REASONS = frozenset({
    "bad_check_code",   # the XOR check code disagrees with header + body
    "bad_escape",       # 0x7d followed by something other than 0x01/0x02, a trailing 0x7d, a bare 0x7e inside
    "truncated",        # the frame is shorter than its header needs
    "length_mismatch",  # the body length in the properties disagrees with the bytes present
    "oversize",         # a frame above max_frame_bytes, or a sub-packaged message above max_packets
    "unknown_message",  # a message id (or an encryption) this codec does not decode
    "bad_coordinates",  # latitude above 90 or longitude above 180 degrees
    "bad_time",         # BCD time digits not decimal, or an impossible date/time
    "bad_header",       # phone BCD digits not decimal, packet index 0 or above the total, totals that disagree
    "bad_body",         # any other body error (short fixed part, truncated additional item, bad text, bad value)
})

MAX_BODY_LENGTH = 0x03FF
PHONE_BYTES_2013 = 6
PHONE_BYTES_2019 = 10
#: The longest header: id, properties, version, BCD[10], serial, packet total and index.
MAX_HEADER_BYTES = 2 + 2 + 1 + PHONE_BYTES_2019 + 2 + 4

_ENCRYPTION_SHIFT = 10
_ENCRYPTION_MASK = 0x7
_SUBPACKAGED = 1 << 13
_VERSION_FLAG = 1 << 14


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded (or to-be-encoded) message header; ``version`` is None for 2013, the version byte for 2019."""

    msg_id: int
    phone: str  # the BCD digits as they came: 12 (2013) or 20 (2019), leading zeros kept
    serial: int
    version: int | None = None
    encryption: int = 0
    packet_total: int | None = None
    packet_index: int | None = None

    @property
    def edition(self) -> int:
        """2013 or 2019."""
        return 2013 if self.version is None else 2019

    @property
    def phone_normalised(self) -> str:
        """The phone number with leading zeros stripped ("0" when all digits are zero)."""
        return self.phone.lstrip("0") or "0"

    @property
    def subpackaged(self) -> bool:
        return self.packet_total is not None

    @property
    def first_serial(self) -> int:
        """The serial of packet 1 of this message (``serial`` when not sub-packaged), modulo 2**16."""
        return (self.serial - (self.packet_index or 1) + 1) & 0xFFFF


class FrameError(CitywatchError):
    """A frame or body that cannot be decoded: ``reason`` one of :data:`REASONS`, ``detail`` the human text,
    ``header`` the decoded header when it could be read (else None)."""

    def __init__(self, reason: str, detail: str, header: Header | None = None):
        self.reason, self.detail, self.header = reason, detail, header
        super().__init__(f"{reason}: {detail}")


def bcd_digits(data: bytes) -> str | None:
    """The decimal digits of packed BCD, or None if a nibble is not 0-9.

    >>> bcd_digits(bytes.fromhex("013912345678")), bcd_digits(b"\\x1f")
    ('013912345678', None)
    """
    digits = data.hex()
    return digits if digits.isdigit() or not digits else None


def bcd_bytes(digits: str, size: int) -> bytes:
    """``digits`` as ``size`` bytes of packed BCD, left-padded with zeros; ValueError if not digits or too long."""
    if not (digits.isascii() and digits.isdigit()) and digits:
        raise ValueError(f"BCD field {digits!r}: only the digits 0-9")
    if len(digits) > 2 * size:
        raise ValueError(f"BCD field {digits!r}: more than {2 * size} digits")
    return bytes.fromhex(digits.zfill(2 * size))


def decode_header(data: bytes) -> tuple[Header, int, int]:
    """The header at the start of an unescaped frame: (header, body length declared, offset of the body).

    Raises ``FrameError`` ``truncated`` when ``data`` is shorter than the header, ``bad_header`` (with the
    header) when the phone number is not decimal BCD or the packet index is 0 or above the total.
    """
    if len(data) < 4:
        raise FrameError("truncated", f"{len(data)} bytes, a header needs at least 12")
    msg_id, props = struct.unpack_from(">HH", data, 0)
    v2019 = bool(props & _VERSION_FLAG)
    sub = bool(props & _SUBPACKAGED)
    phone_len = PHONE_BYTES_2019 if v2019 else PHONE_BYTES_2013
    size = 4 + v2019 + phone_len + 2 + 4 * sub
    if len(data) < size:
        raise FrameError("truncated", f"{len(data)} bytes, a header with properties 0x{props:04x} needs {size}")
    at = 4
    version = None
    if v2019:
        version, at = data[4], 5
    raw_phone = data[at:at + phone_len]
    serial, = struct.unpack_from(">H", data, at + phone_len)
    total = index = None
    if sub:
        total, index = struct.unpack_from(">HH", data, at + phone_len + 2)
    phone = bcd_digits(raw_phone)
    header = Header(msg_id, raw_phone.hex() if phone is None else phone, serial, version,
                    (props >> _ENCRYPTION_SHIFT) & _ENCRYPTION_MASK, total, index)
    if phone is None:
        raise FrameError("bad_header", f"terminal phone BCD {raw_phone.hex()} has non-decimal digits", header)
    if total is not None and index is not None and not 1 <= index <= total:
        raise FrameError("bad_header", f"packet index {index} of total {total} (index counts from 1)", header)
    return header, props & MAX_BODY_LENGTH, size


def encode_header(header: Header, body_length: int) -> bytes:
    """The header bytes for a body of ``body_length`` bytes; ValueError for a field out of range."""
    if not 0 <= body_length <= MAX_BODY_LENGTH:
        raise ValueError(f"body of {body_length} bytes: at most {MAX_BODY_LENGTH} per packet (sub-package it)")
    for name, value in (("msg_id", header.msg_id), ("serial", header.serial)):
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"{name} {value}: a WORD")
    if not 0 <= header.encryption <= _ENCRYPTION_MASK:
        raise ValueError(f"encryption {header.encryption}: 3 bits")
    if (header.packet_total is None) != (header.packet_index is None):
        raise ValueError("packet_total and packet_index go together")
    props = body_length | header.encryption << _ENCRYPTION_SHIFT
    out = bytearray()
    if header.packet_total is not None:
        props |= _SUBPACKAGED
    if header.version is not None:
        props |= _VERSION_FLAG
    out += struct.pack(">HH", header.msg_id, props)
    if header.version is not None:
        out.append(header.version)
    out += bcd_bytes(header.phone, PHONE_BYTES_2013 if header.version is None else PHONE_BYTES_2019)
    out += struct.pack(">H", header.serial)
    if header.packet_total is not None and header.packet_index is not None:
        if not 1 <= header.packet_index <= header.packet_total:
            raise ValueError(f"packet index {header.packet_index} of total {header.packet_total}")
        out += struct.pack(">HH", header.packet_total, header.packet_index)
    return bytes(out)
