"""The location report body (0x0200, and each item of the 0x0704 batch upload) and the batch itself.

Location body, big-endian::

    alarm DWORD, status DWORD, latitude DWORD, longitude DWORD (degrees x 10^6, unsigned; status bit 2 south,
    bit 3 west), altitude WORD (m), speed WORD (1/10 km/h), direction WORD (0-359),
    time BCD[6] YYMMDDhhmmss in GMT+8 (year 20YY), then additional items (id BYTE, length BYTE, value)

Of the additional items 0x01 mileage (DWORD, 1/10 km), 0x30 wireless signal strength (BYTE) and 0x31 GNSS
satellites (BYTE) are kept; every other id is skipped by its length.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from engine.jt808.header import FrameError, bcd_digits

#: JT/T 808 times are Beijing time; a fixed offset (China keeps no daylight saving time), no tz database needed.
GMT8 = timezone(timedelta(hours=8), "GMT+8")

STATUS_ACC = 1 << 0
STATUS_VALID = 1 << 1
STATUS_SOUTH = 1 << 2
STATUS_WEST = 1 << 3

ITEM_MILEAGE = 0x01
ITEM_SIGNAL = 0x30
ITEM_SATELLITES = 0x31

BATCH_NORMAL = 0
BATCH_BLIND_AREA = 1

_FIXED = struct.Struct(">IIIIHHH6s")  # 28 bytes


@dataclass(frozen=True, slots=True)
class Location:
    """A decoded location report; lat/lon signed degrees, ``ts`` epoch seconds, optional items None if absent."""

    alarm: int
    status: int
    lat: float
    lon: float
    altitude_m: int
    speed_kmh: float
    heading: int
    ts: float
    valid: bool
    mileage_km: float | None = None
    signal: int | None = None
    satellites: int | None = None


@dataclass(frozen=True, slots=True)
class LocationBatch:
    """0x0704: ``kind`` 0 normal batch, 1 blind-area re-upload."""

    kind: int
    locations: tuple[Location, ...]


def decode_bcd_time(raw: bytes) -> float:
    """BCD[6] YYMMDDhhmmss, GMT+8 -> epoch seconds; ``FrameError`` ``bad_time`` if not a real date and time.

    >>> decode_bcd_time(bytes.fromhex("260908100000"))
    1788832800.0
    """
    digits = bcd_digits(raw)
    if digits is None:
        raise FrameError("bad_time", f"BCD time {raw.hex()} has non-decimal digits")
    y, mo, d, h, mi, s = (int(digits[i:i + 2]) for i in range(0, 12, 2))
    try:
        return datetime(2000 + y, mo, d, h, mi, s, tzinfo=GMT8).timestamp()
    except ValueError:
        raise FrameError("bad_time", f"BCD time {digits} is not a date and time") from None


def encode_bcd_time(ts: float) -> bytes:
    """Epoch seconds (whole seconds, rounded down) -> BCD[6] YYMMDDhhmmss in GMT+8; ValueError outside 2000-2099."""
    try:
        t = datetime.fromtimestamp(math.floor(ts), GMT8)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"time {ts}: JT/T 808 times run from 2000 to 2099") from None
    if not 2000 <= t.year <= 2099:
        raise ValueError(f"time {ts}: JT/T 808 times run from 2000 to 2099")
    return bytes.fromhex(t.strftime("%y%m%d%H%M%S"))


def decode_location(body: bytes) -> Location:
    """A location report body -> :class:`Location`; ``FrameError`` ``bad_body``, ``bad_coordinates``, ``bad_time``."""
    if len(body) < _FIXED.size:
        raise FrameError("bad_body", f"location body of {len(body)} bytes, its fixed part needs {_FIXED.size}")
    alarm, status, lat_raw, lon_raw, altitude, speed, heading, raw_time = _FIXED.unpack_from(body)
    if lat_raw > 90_000_000 or lon_raw > 180_000_000:
        raise FrameError("bad_coordinates", f"latitude {lat_raw / 1e6}, longitude {lon_raw / 1e6}")
    if heading > 359:
        raise FrameError("bad_body", f"direction {heading}, expected 0-359")
    ts = decode_bcd_time(raw_time)
    mileage: float | None = None
    signal: int | None = None
    satellites: int | None = None
    at = _FIXED.size
    while at < len(body):
        if at + 2 > len(body):
            raise FrameError("bad_body", f"additional item at offset {at} truncated (no length byte)")
        item, size = body[at], body[at + 1]
        value = body[at + 2:at + 2 + size]
        if len(value) < size:
            raise FrameError("bad_body", f"additional item 0x{item:02x} of length {size} truncated at {len(value)}")
        if item in (ITEM_MILEAGE, ITEM_SIGNAL, ITEM_SATELLITES):
            want = 4 if item == ITEM_MILEAGE else 1
            if size != want:
                raise FrameError("bad_body", f"additional item 0x{item:02x} of length {size}, expected {want}")
            number = int.from_bytes(value, "big")
            if item == ITEM_MILEAGE:
                mileage = number / 10
            elif item == ITEM_SIGNAL:
                signal = number
            else:
                satellites = number
        at += 2 + size
    lat = lat_raw / 1e6 * (-1 if status & STATUS_SOUTH else 1)
    lon = lon_raw / 1e6 * (-1 if status & STATUS_WEST else 1)
    return Location(alarm, status, lat, lon, altitude, speed / 10, heading, ts, bool(status & STATUS_VALID),
                    mileage, signal, satellites)


def _item(item: int, value: bytes) -> bytes:
    if not 0 <= item <= 0xFF or len(value) > 0xFF:
        raise ValueError(f"additional item 0x{item:x} of {len(value)} bytes: id and length are one byte each")
    return bytes([item, len(value)]) + value


def _ranged(name: str, value: int, top: int) -> int:
    if not 0 <= value <= top:
        raise ValueError(f"{name} {value}: expected 0-{top}")
    return value


def encode_location_body(loc: Location, extra: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """:class:`Location` -> body bytes; ``extra`` additional items (id, value) are appended as given.

    Status bits 1 (valid), 2 (south) and 3 (west) come from ``loc.valid`` and the signs of lat/lon; the other
    bits of ``loc.status`` are sent as they are. Coordinates are rounded to 10^-6 degree, speed and mileage to
    1/10, the time down to the second. ValueError for a value the layout cannot carry.
    """
    status = loc.status & ~(STATUS_VALID | STATUS_SOUTH | STATUS_WEST)
    status |= (STATUS_VALID if loc.valid else 0) | (STATUS_SOUTH if loc.lat < 0 else 0)
    status |= STATUS_WEST if loc.lon < 0 else 0
    fixed = _FIXED.pack(
        _ranged("alarm", loc.alarm, 0xFFFFFFFF), _ranged("status", status, 0xFFFFFFFF),
        _ranged("latitude x 10^6", round(abs(loc.lat) * 1e6), 90_000_000),
        _ranged("longitude x 10^6", round(abs(loc.lon) * 1e6), 180_000_000),
        _ranged("altitude", loc.altitude_m, 0xFFFF), _ranged("speed x 10", round(loc.speed_kmh * 10), 0xFFFF),
        _ranged("direction", loc.heading, 359), encode_bcd_time(loc.ts))
    items = []
    if loc.mileage_km is not None:
        items.append(_item(ITEM_MILEAGE, _ranged("mileage x 10", round(loc.mileage_km * 10), 0xFFFFFFFF)
                           .to_bytes(4, "big")))
    if loc.signal is not None:
        items.append(_item(ITEM_SIGNAL, bytes([_ranged("signal", loc.signal, 0xFF)])))
    if loc.satellites is not None:
        items.append(_item(ITEM_SATELLITES, bytes([_ranged("satellites", loc.satellites, 0xFF)])))
    items.extend(_item(item, value) for item, value in extra)
    return fixed + b"".join(items)


def decode_batch(body: bytes) -> LocationBatch:
    """0x0704 body: count WORD, type BYTE, then ``count`` items of (length WORD, location body)."""
    if len(body) < 3:
        raise FrameError("bad_body", f"batch body of {len(body)} bytes, its count and type need 3")
    count, kind = int.from_bytes(body[:2], "big"), body[2]
    if kind not in (BATCH_NORMAL, BATCH_BLIND_AREA):
        raise FrameError("bad_body", f"batch type {kind}, expected 0 (normal) or 1 (blind-area re-upload)")
    locations = []
    at = 3
    for n in range(count):
        if at + 2 > len(body):
            raise FrameError("bad_body", f"batch of {count} locations ends after {n}")
        size = int.from_bytes(body[at:at + 2], "big")
        item = body[at + 2:at + 2 + size]
        if len(item) < size:
            raise FrameError("bad_body", f"batch item {n} of length {size} truncated at {len(item)}")
        locations.append(decode_location(item))
        at += 2 + size
    if at != len(body):
        raise FrameError("bad_body", f"{len(body) - at} bytes after the {count} locations of the batch")
    return LocationBatch(kind, tuple(locations))


def encode_batch_body(locations: Sequence[Location], kind: int = BATCH_NORMAL) -> bytes:
    """The 0x0704 body of ``locations``; ValueError for more than 65535 of them or a kind other than 0/1."""
    if kind not in (BATCH_NORMAL, BATCH_BLIND_AREA):
        raise ValueError(f"batch type {kind}: 0 (normal) or 1 (blind-area re-upload)")
    out = bytearray(_ranged("batch count", len(locations), 0xFFFF).to_bytes(2, "big") + bytes([kind]))
    for loc in locations:
        item = encode_location_body(loc)
        out += len(item).to_bytes(2, "big") + item
    return bytes(out)
