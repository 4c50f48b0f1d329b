"""Message bodies: the dataclasses, ``decode_body`` (by message id and edition) and ``encode_body``.

Terminal -> platform: 0x0100 registration, 0x0102 authentication, 0x0002 heartbeat, 0x0003 logout, 0x0200
location report and 0x0704 location batch upload (:mod:`engine.jt808.location`). Platform -> terminal: 0x8100
registration response and 0x8001 platform general response. Text is GBK; fixed-width BYTE[n] text fields are
padded with NUL, stripped on decoding.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from engine.jt808.header import FrameError, Header
from engine.jt808.location import (
    Location,
    LocationBatch,
    decode_batch,
    decode_location,
    encode_batch_body,
    encode_location_body,
)

MSG_HEARTBEAT = 0x0002
MSG_LOGOUT = 0x0003
MSG_REGISTER = 0x0100
MSG_AUTHENTICATE = 0x0102
MSG_LOCATION = 0x0200
MSG_BATCH = 0x0704
MSG_GENERAL_RESPONSE = 0x8001
MSG_REGISTER_RESPONSE = 0x8100

# province, city, manufacturer, model, terminal id, plate colour (the plate runs to the end)
_REG_2013 = struct.Struct(">HH5s20s7sB")
_REG_2019 = struct.Struct(">HH11s30s30sB")
_IMEI_BYTES, _SOFTWARE_BYTES = 15, 20


class RegistrationResult(IntEnum):
    OK = 0
    VEHICLE_REGISTERED = 1
    NO_SUCH_VEHICLE = 2
    TERMINAL_REGISTERED = 3
    NO_SUCH_TERMINAL = 4


class GeneralResult(IntEnum):
    OK = 0
    FAILURE = 1
    MESSAGE_ERROR = 2
    UNSUPPORTED = 3
    ALARM_CONFIRMED = 4


@dataclass(frozen=True, slots=True)
class Registration:
    """0x0100. ``plate`` is the VIN when ``plate_colour`` is 0 (no plate)."""

    province: int
    city: int
    manufacturer: str
    model: str
    terminal_id: str
    plate_colour: int
    plate: str


@dataclass(frozen=True, slots=True)
class Authentication:
    """0x0102; ``imei`` and ``software_version`` exist in 2019 only (None in 2013)."""

    code: str
    imei: str | None = None
    software_version: str | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """0x0002, an empty body."""


@dataclass(frozen=True, slots=True)
class Logout:
    """0x0003, an empty body."""


@dataclass(frozen=True, slots=True)
class RegistrationResponse:
    """0x8100; ``auth_code`` is present (possibly "") only when ``result`` is OK."""

    reply_serial: int
    result: RegistrationResult
    auth_code: str | None = None


@dataclass(frozen=True, slots=True)
class GeneralResponse:
    """0x8001: the platform's answer to the terminal message ``reply_id`` of serial ``reply_serial``."""

    reply_serial: int
    reply_id: int
    result: GeneralResult


Body = (Registration | Authentication | Heartbeat | Logout | Location | LocationBatch | RegistrationResponse
        | GeneralResponse)


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.strip(b"\x00").decode("gbk")
    except UnicodeDecodeError:
        raise FrameError("bad_body", f"{what} {raw.hex()} is not GBK text") from None


def _fixed(text: str, size: int, what: str) -> bytes:
    raw = text.encode("gbk")
    if len(raw) > size:
        raise ValueError(f"{what} {text!r}: {len(raw)} bytes, the field holds {size}")
    return raw.ljust(size, b"\x00")


def _registration(body: bytes, v2019: bool) -> Registration:
    layout = _REG_2019 if v2019 else _REG_2013
    if len(body) < layout.size:
        raise FrameError("bad_body", f"registration body of {len(body)} bytes, its fixed part needs {layout.size}")
    province, city, manufacturer, model, terminal_id, colour = layout.unpack_from(body)
    return Registration(province, city, _text(manufacturer, "manufacturer"), _text(model, "terminal model"),
                        _text(terminal_id, "terminal id"), colour, _text(body[layout.size:], "plate"))


def _authentication(body: bytes, v2019: bool) -> Authentication:
    if not v2019:
        return Authentication(_text(body, "authentication code"))
    if not body:
        raise FrameError("bad_body", "empty 2019 authentication body")
    size = body[0]
    want = 1 + size + _IMEI_BYTES + _SOFTWARE_BYTES
    if len(body) != want:
        raise FrameError("bad_body", f"2019 authentication body of {len(body)} bytes, its code length {size} "
                                     f"makes {want}")
    imei_at = 1 + size
    return Authentication(_text(body[1:imei_at], "authentication code"),
                          _text(body[imei_at:imei_at + _IMEI_BYTES], "IMEI"),
                          _text(body[imei_at + _IMEI_BYTES:], "software version"))


def _registration_response(body: bytes) -> RegistrationResponse:
    if len(body) < 3:
        raise FrameError("bad_body", f"registration response of {len(body)} bytes, needs at least 3")
    serial, raw = int.from_bytes(body[:2], "big"), body[2]
    try:
        result = RegistrationResult(raw)
    except ValueError:
        raise FrameError("bad_body", f"registration result {raw}, expected 0-4") from None
    if result is not RegistrationResult.OK:
        if len(body) != 3:
            raise FrameError("bad_body", f"registration response with result {raw} and {len(body) - 3} more bytes")
        return RegistrationResponse(serial, result)
    return RegistrationResponse(serial, result, _text(body[3:], "authentication code"))


def _general_response(body: bytes) -> GeneralResponse:
    if len(body) != 5:
        raise FrameError("bad_body", f"general response of {len(body)} bytes, expected 5")
    serial, msg_id, raw = struct.unpack(">HHB", body)
    try:
        return GeneralResponse(serial, msg_id, GeneralResult(raw))
    except ValueError:
        raise FrameError("bad_body", f"general response result {raw}, expected 0-4") from None


def _empty(body: bytes, kind: type[Heartbeat] | type[Logout]) -> Heartbeat | Logout:
    if body:
        raise FrameError("bad_body", f"{kind.__name__.lower()} with a body of {len(body)} bytes, expected none")
    return kind()


_DECODERS: dict[int, Callable[[bytes, bool], Body]] = {
    MSG_REGISTER: _registration,
    MSG_AUTHENTICATE: _authentication,
    MSG_HEARTBEAT: lambda body, _: _empty(body, Heartbeat),
    MSG_LOGOUT: lambda body, _: _empty(body, Logout),
    MSG_LOCATION: lambda body, _: decode_location(body),
    MSG_BATCH: lambda body, _: decode_batch(body),
    MSG_REGISTER_RESPONSE: lambda body, _: _registration_response(body),
    MSG_GENERAL_RESPONSE: lambda body, _: _general_response(body),
}


def decode_body(header: Header, body: bytes) -> Body:
    """The body of a (whole, reassembled) message by ``header.msg_id`` and edition; ``FrameError`` carrying
    ``header`` otherwise: ``unknown_message`` for an id not decoded here or an encrypted body, else the reason
    of what is wrong."""
    try:
        if header.encryption:
            raise FrameError("unknown_message", f"encrypted body (encryption {header.encryption}) not decoded")
        decoder = _DECODERS.get(header.msg_id)
        if decoder is not None:
            return decoder(body, header.version is not None)
        raise FrameError("unknown_message", f"message id 0x{header.msg_id:04x} is not decoded")
    except FrameError as e:
        if e.header is None:
            e.header = header
        raise


def encode_body(body: Body, version: int | None = None) -> tuple[int, bytes]:
    """(message id, body bytes) of ``body`` in the 2013 (``version`` None) or 2019 layout; ValueError for a
    value the layout cannot carry."""
    try:
        return _encode(body, version is not None)
    except struct.error as e:
        raise ValueError(f"{type(body).__name__}: {e}") from None


def _encode(body: Body, v2019: bool) -> tuple[int, bytes]:
    if isinstance(body, Registration):
        layout, sizes = (_REG_2019, (11, 30, 30)) if v2019 else (_REG_2013, (5, 20, 7))
        head = layout.pack(body.province, body.city, _fixed(body.manufacturer, sizes[0], "manufacturer"),
                           _fixed(body.model, sizes[1], "terminal model"),
                           _fixed(body.terminal_id, sizes[2], "terminal id"), body.plate_colour)
        return MSG_REGISTER, head + body.plate.encode("gbk")
    if isinstance(body, Authentication):
        code = body.code.encode("gbk")
        if not v2019:
            return MSG_AUTHENTICATE, code
        if len(code) > 0xFF:
            raise ValueError(f"authentication code of {len(code)} bytes: its length is one byte")
        return MSG_AUTHENTICATE, (bytes([len(code)]) + code + _fixed(body.imei or "", _IMEI_BYTES, "IMEI")
                                  + _fixed(body.software_version or "", _SOFTWARE_BYTES, "software version"))
    if isinstance(body, Heartbeat):
        return MSG_HEARTBEAT, b""
    if isinstance(body, Logout):
        return MSG_LOGOUT, b""
    if isinstance(body, Location):
        return MSG_LOCATION, encode_location_body(body)
    if isinstance(body, LocationBatch):
        return MSG_BATCH, encode_batch_body(body.locations, body.kind)
    if isinstance(body, RegistrationResponse):
        code = b""
        if body.result == RegistrationResult.OK:
            code = (body.auth_code or "").encode("gbk")
        elif body.auth_code:
            raise ValueError(f"registration result {body.result}: an authentication code goes only with 0")
        return MSG_REGISTER_RESPONSE, struct.pack(">HB", body.reply_serial, RegistrationResult(body.result)) + code
    return MSG_GENERAL_RESPONSE, struct.pack(">HHB", body.reply_serial, body.reply_id, GeneralResult(body.result))
