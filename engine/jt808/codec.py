"""Whole frames: decode one (check code, header, body), encode one, and the platform's and a terminal's messages.

Decoding checks, in order: escaping (``bad_escape``), that the header is there (``truncated``), the check code
(``bad_check_code``), the header fields (``bad_header``), the body length (``length_mismatch``), then the body.
Every ``FrameError`` raised after the header was read carries it, so a server can answer with 0x8001.

>>> frame = encode_location("13912345678", 1, Location(0, 2, 24.4815, 118.0894, 10, 36.0, 90, 1788832800.0, True))
>>> header, loc = decode_frame(frame)
>>> header.phone, header.phone_normalised, loc.lat, loc.ts
('013912345678', '13912345678', 24.4815, 1788832800.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from engine.jt808.framing import check_code, unescape_prefix, wrap
from engine.jt808.header import MAX_BODY_LENGTH, FrameError, Header, decode_header, encode_header
from engine.jt808.location import BATCH_NORMAL, Location, LocationBatch, encode_location_body
from engine.jt808.messages import (
    MSG_LOCATION,
    Authentication,
    Body,
    GeneralResponse,
    GeneralResult,
    Heartbeat,
    Logout,
    Registration,
    RegistrationResponse,
    RegistrationResult,
    decode_body,
    encode_body,
)

_FLAG_BYTE = b"\x7e"


def _header_or_none(payload: bytes) -> Header | None:
    try:
        return decode_header(payload)[0]
    except FrameError as e:
        return e.header


def split_frame(data: bytes, *, escaped: bool = True) -> tuple[Header, bytes]:
    """A frame -> (header, raw body bytes), the check code and body length verified.

    ``escaped=True`` (the default): ``data`` is as on the wire, with or without its 0x7e delimiters (what
    :class:`~engine.jt808.framing.FrameReader` yields). ``escaped=False``: ``data`` is the unescaped header +
    body + check code.
    """
    if escaped:
        inner = data[1:] if data[:1] == _FLAG_BYTE else data
        inner = inner[:-1] if inner[-1:] == _FLAG_BYTE else inner
        payload, problem = unescape_prefix(inner)
        if problem:
            raise FrameError("bad_escape", problem, _header_or_none(payload))
    else:
        payload = data
    if not payload:
        raise FrameError("truncated", "an empty frame")
    content, code = payload[:-1], payload[-1]
    try:
        header, length, offset = decode_header(content)
    except FrameError as e:
        if e.reason == "truncated" or check_code(content) == code:
            raise
        raise FrameError("bad_check_code", f"check code 0x{code:02x}, computed 0x{check_code(content):02x}",
                         e.header) from None
    computed = check_code(content)
    if computed != code:
        raise FrameError("bad_check_code", f"check code 0x{code:02x}, computed 0x{computed:02x}", header)
    body = content[offset:]
    if len(body) != length:
        raise FrameError("length_mismatch", f"properties give a body of {length} bytes, {len(body)} present",
                         header)
    return header, body


def decode_frame(data: bytes, *, escaped: bool = True) -> tuple[Header, Body | bytes]:
    """A frame -> (header, body object); for one packet of a sub-packaged message the body is its raw bytes
    (join the packets with :class:`~engine.jt808.reassembly.Reassembler`, then call
    :func:`~engine.jt808.messages.decode_body`). ``data`` as in :func:`split_frame`. Raises ``FrameError``."""
    header, body = split_frame(data, escaped=escaped)
    if header.subpackaged:
        return header, body
    return header, decode_body(header, body)


def encode_frame(header: Header, body: bytes) -> bytes:
    """The wire frame (delimiters, escaped, check code) of ``header`` and ``body``; ValueError if a field is out
    of range or the body is longer than one packet holds."""
    return wrap(encode_header(header, len(body)) + body)


def encode_packets(header: Header, body: bytes, *, packet_size: int = MAX_BODY_LENGTH) -> list[bytes]:
    """``body`` sub-packaged into frames of at most ``packet_size`` body bytes: serials ``header.serial``,
    ``header.serial + 1``, ..., packet indexes from 1 (always sub-packaged, even for one packet)."""
    if not 1 <= packet_size <= MAX_BODY_LENGTH:
        raise ValueError(f"packet_size {packet_size}: 1-{MAX_BODY_LENGTH}")
    chunks = [body[i:i + packet_size] for i in range(0, len(body), packet_size)] or [b""]
    if len(chunks) > 0xFFFF:
        raise ValueError(f"a body of {len(body)} bytes needs {len(chunks)} packets, at most 65535")
    return [encode_frame(replace(header, serial=(header.serial + n) & 0xFFFF, packet_total=len(chunks),
                                 packet_index=n + 1), chunk) for n, chunk in enumerate(chunks)]


def encode_message(phone: str, serial: int, body: Body, *, version: int | None = None) -> bytes:
    """The frame of ``body`` from (or to) the terminal ``phone``; ``version`` None for 2013, else the 2019
    protocol version byte (1 for the first 2019 version)."""
    msg_id, raw = encode_body(body, version)
    return encode_frame(Header(msg_id, phone, serial, version), raw)


def build_registration_response(to: Header, serial: int, result: int, auth_code: str = "") -> bytes:
    """0x8100 answering the registration ``to`` (same phone and edition); ``auth_code`` only with result 0."""
    ok = RegistrationResult(result) is RegistrationResult.OK
    if auth_code and not ok:
        raise ValueError(f"registration result {result}: an authentication code goes only with 0")
    body = RegistrationResponse(to.serial, RegistrationResult(result), auth_code if ok else None)
    return encode_message(to.phone, serial, body, version=to.version)


def build_general_response(to: Header, serial: int, result: int) -> bytes:
    """0x8001 answering the terminal message ``to``: 0 ok, 1 failure, 2 message error, 3 unsupported,
    4 alarm handling confirmation."""
    body = GeneralResponse(to.serial, to.msg_id, GeneralResult(result))
    return encode_message(to.phone, serial, body, version=to.version)


def encode_registration(phone: str, serial: int, registration: Registration, *, version: int | None = None) -> bytes:
    """A terminal's 0x0100 frame (2013 layout when ``version`` is None, else 2019)."""
    return encode_message(phone, serial, registration, version=version)


def encode_authentication(phone: str, serial: int, auth: Authentication | str, *,
                          version: int | None = None) -> bytes:
    """A terminal's 0x0102 frame; a str is the code alone (2019: IMEI and software version all NUL)."""
    body = Authentication(auth) if isinstance(auth, str) else auth
    return encode_message(phone, serial, body, version=version)


def encode_heartbeat(phone: str, serial: int, *, version: int | None = None) -> bytes:
    """A terminal's 0x0002 frame."""
    return encode_message(phone, serial, Heartbeat(), version=version)


def encode_logout(phone: str, serial: int, *, version: int | None = None) -> bytes:
    """A terminal's 0x0003 frame."""
    return encode_message(phone, serial, Logout(), version=version)


def encode_location(phone: str, serial: int, location: Location, *, version: int | None = None,
                    extra: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """A terminal's 0x0200 frame; ``extra`` additional items (id, value) appended after the kept ones."""
    body = encode_location_body(location, extra)
    return encode_frame(Header(MSG_LOCATION, phone, serial, version), body)


def encode_batch(phone: str, serial: int, locations: Sequence[Location], *, kind: int = BATCH_NORMAL,
                 version: int | None = None) -> bytes:
    """A terminal's 0x0704 frame (kind 0 normal batch, 1 blind-area re-upload); ValueError when the body is
    above one packet (sub-package it with :func:`encode_packets` and ``encode_body``)."""
    return encode_message(phone, serial, LocationBatch(kind, tuple(locations)), version=version)
