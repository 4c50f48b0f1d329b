"""The ``fixes`` record on Kafka: :class:`FixColumns` as a compact, versioned binary layout.

Layout, version 1 (all little-endian)::

    b"CWF" version:u8  n:u32  ids_bytes:u32  n_classes:u8  n_sources:u8  classes_bytes:u32  sources_bytes:u32
    vehicle ids       UTF-8, joined by "\\x00" (the bridge rejects a vehicle id holding it)
    classes, sources  the string tables, each UTF-8 joined by "\\x00"
    zero padding      to a multiple of 8 bytes from the start
    7 x n  '<f8'      ts, lat, lon, speed_kmh, heading, accuracy_m, received_at (NaN = not sent)
    2 x n  '<i8'      alarm_flags, status_flags (-1 = not sent)
    3 x n  'u1'       valid (as int8: -1 not sent, 0, 1), class_code, source_code (indexes into the tables)

That is 75 bytes per fix plus its vehicle id, and decoding is a handful of C calls whatever ``n``:
one ``bytes.decode`` + ``str.split`` for the ids, one ``np.frombuffer`` per block and a few whole-block
checks. The blocks are copied (``.copy()``): the arrays are then writable, aligned and do not pin the
Kafka record's buffer, for 1-3 us per record (measured for 1 to 1000 fixes; a decode costs 20-120 us).

Chosen with ``benchmarks/bench_wire.py`` against msgspec MessagePack of the same three blocks (ids and
tables as msgpack strings) and the JSON array of fix objects the bridge wrote before. Two runs on the
shared 2-core box with other work running, so ranges; fixes/s for records of 1 / 100 / 1000 fixes::

    format   bytes/fix        encode                        decode
    cwf      123 / 86 / 85    18-30k / 2.0-2.6M / 8-13M     21-23k / 1.4-2.0M / 8-10M
    msgpack  139 / 86 / 85    12-31k / 1.6-2.4M / 11-21M    18-26k / 0.9-2.5M / 3.6-4.2M
    json     227 / 235 / 236  230-400k / 0.4-0.9M / 0.5-0.7M  98-141k / 98-220k / 165-257k (to Fix objects)

Both binary forms are about a third of JSON's size; from 100 fixes on they decode an order of magnitude
faster and encode 3-20 times faster. This layout decodes large records about twice as fast as msgpack
(the ids come out of one ``split`` instead of one string per msgpack item). msgpack encodes faster in the
benchmark mostly because it re-encodes the same ``str`` objects, whose UTF-8 CPython caches; with fresh
ids, as the bridge has, the two are within 10 % (measured at 1000 fixes). All lengths are in a fixed
header, so a record is checked against its size before anything is read, and no framing library is
involved. A one-fix record decodes slower than one JSON fix (the fixed cost of the numpy calls); records
are that small only when traffic is light.

:func:`decode` also reads the old JSON form (one fix object or an array of them, as the bridge wrote
before this format) during a mixed-version rollout, with the same checks, and raises
:class:`ValueError` naming the problem for anything else: a worker rejects such a record
(``fixes.rejected``, reason ``bad_record``) instead of failing on it later. Every length in a binary
record is checked against the record's size before anything is allocated.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from engine.telemetry.columns import FLAG_FIELDS, FLOAT_FIELDS, FixColumns, from_fixes
from engine.telemetry.models import Fix

MAGIC = b"CWF"
VERSION = 1
_HEADER = struct.Struct("<3sBIIBBII")
_F8, _I8, _U1 = np.dtype("<f8"), np.dtype("<i8"), np.dtype("u1")
_N_FLOATS, _N_FLAGS, _N_SMALL = len(FLOAT_FIELDS), len(FLAG_FIELDS), 3
ROW_BYTES = _N_FLOATS * 8 + _N_FLAGS * 8 + _N_SMALL
_REQUIRED = 3  # ts, lat, lon: the first float columns, never NaN
_SMALL_FIELDS = ("valid", "class_code", "source_code")


# -- encoding ----------------------------------------------------------------------------------------------

def encode(cols: FixColumns) -> bytes:
    """``cols`` as one binary ``fixes`` record; :class:`ValueError` for columns :func:`decode` would refuse."""
    n = len(cols)
    floats, flags, small = _block(cols, FLOAT_FIELDS, _F8, n), _block(cols, FLAG_FIELDS, _I8, n), \
        _block(cols, _SMALL_FIELDS, _U1, n)  # valid's -1 is stored as 255: the int8 bits
    ids = _joined(cols.vehicle_id, "vehicle id")
    if n and _has_empty(ids, n):
        raise ValueError("cannot encode: an empty vehicle id")
    classes, sources = _joined(cols.classes, "class"), _joined(cols.sources, "source")
    if len(cols.classes) > 255 or len(cols.sources) > 255:
        raise ValueError("cannot encode: more than 255 distinct classes or sources in one record")
    _check_values(floats, flags, small, len(cols.classes), len(cols.sources))
    head = _HEADER.pack(MAGIC, VERSION, n, len(ids), len(cols.classes), len(cols.sources), len(classes),
                        len(sources))
    pad = b"\x00" * (-(len(head) + len(ids) + len(classes) + len(sources)) % 8)
    # numpy's stubs declare ndarray.__buffer__ for Python 3.12+ only
    return b"".join([head, ids, classes, sources, pad, floats, flags, small])  # type: ignore[list-item]


def _block(cols: FixColumns, names: tuple[str, ...], dtype: np.dtype, n: int) -> np.ndarray:
    """The named columns as rows of one C-contiguous array of ``dtype`` (one buffer to write, one to check)."""
    out = np.empty((len(names), n), dtype)
    for i, name in enumerate(names):
        col = getattr(cols, name)
        if col.shape != (n,):
            raise ValueError(f"cannot encode: column {name} has shape {col.shape}, expected ({n},)")
        out[i] = col
    return out


def _joined(strings: Any, what: str) -> bytes:
    text = "\x00".join(strings)
    if text.count("\x00") != max(len(strings) - 1, 0):
        raise ValueError(f"cannot encode: a {what} contains NUL (\\x00)")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"cannot encode: a {what} is not valid Unicode (a lone surrogate)") from None


def _has_empty(joined: bytes, n: int) -> bool:
    """Whether ``n`` NUL-joined strings hold an empty one (C-level scans, no per-string loop)."""
    return (n == 1 and not joined) or joined[:1] == b"\x00" or joined[-1:] == b"\x00" or b"\x00\x00" in joined


# -- decoding ----------------------------------------------------------------------------------------------

def decode(value: bytes | bytearray | memoryview | None) -> FixColumns:
    """One ``fixes`` record (binary, or the old JSON form) -> columns; :class:`ValueError` naming the problem."""
    if value is None:
        raise ValueError("no value (a tombstone): not a fixes record")
    if not isinstance(value, bytes):
        value = bytes(value)
    if value[:3] == MAGIC:
        return _decode_binary(value)
    return _decode_json(value)


def decode_columns(value: bytes | None) -> FixColumns:
    """A ``fixes`` record as columns (:func:`decode`: binary, or the old JSON form).

    Raises :class:`ValueError` naming the problem for anything else (a foreign
    producer's record), so a worker can reject it instead of failing on it later.
    """
    return decode(value)


def decode_fixes(value: bytes | None) -> list[Fix]:
    """A ``fixes`` record as :class:`Fix` objects (readers off the hot path); :class:`ValueError` as above."""
    return decode(value).fixes()


def _decode_binary(value: bytes) -> FixColumns:
    size = len(value)
    if size < _HEADER.size:
        raise ValueError(f"truncated: {size} bytes, less than the {_HEADER.size}-byte header")
    _, version, n, ids_len, n_cls, n_src, cls_len, src_len = _HEADER.unpack_from(value)
    if version != VERSION:
        raise ValueError(f"unknown fixes record version {version} (this build reads version {VERSION})")
    strings_end = _HEADER.size + ids_len + cls_len + src_len
    at = strings_end + (-strings_end % 8)
    expected = at + n * ROW_BYTES
    if expected != size:  # every length is bounded by the record's size before anything is allocated
        raise ValueError(f"lengths do not add up: {n} fixes with {ids_len}+{cls_len}+{src_len} bytes of strings "
                         f"make {expected} bytes, the record has {size}"
                         + (" (truncated)" if expected > size else ""))
    if value[strings_end:at].strip(b"\x00"):
        raise ValueError("non-zero padding before the columns")
    pos = _HEADER.size
    ids = _split(value[pos:pos + ids_len], n, "vehicle id")
    if n and _has_empty(value[pos:pos + ids_len], n):
        raise ValueError("an empty vehicle id")
    pos += ids_len
    classes = tuple(_split(value[pos:pos + cls_len], n_cls, "class"))
    pos += cls_len
    sources = tuple(_split(value[pos:pos + src_len], n_src, "source"))
    if n == 0:
        return FixColumns([], *(np.empty(0, d) for d in [_F8] * 7 + [_I8] * 2 + [np.dtype("i1"), _U1, _U1]),
                          classes=classes, sources=sources)
    floats = np.frombuffer(value, _F8, _N_FLOATS * n, at).reshape(_N_FLOATS, n).copy()
    at += _N_FLOATS * n * 8
    flags = np.frombuffer(value, _I8, _N_FLAGS * n, at).reshape(_N_FLAGS, n).copy()
    at += _N_FLAGS * n * 8
    small = np.frombuffer(value, _U1, _N_SMALL * n, at).reshape(_N_SMALL, n).copy()
    _check_values(floats, flags, small, n_cls, n_src)
    arrays = [*floats, *flags, small[0].view(np.int8), small[1], small[2]]
    return FixColumns(ids, *arrays, classes=classes, sources=sources)


def _split(raw: bytes, count: int, what: str) -> list[str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what}s are not UTF-8 (byte {exc.start})") from None
    if not count:
        if text:
            raise ValueError(f"{len(raw)} bytes of {what} strings where the header says none")
        return []
    parts = text.split("\x00")
    if len(parts) != count:
        raise ValueError(f"{len(parts)} {what} strings where the header says {count}")
    return parts


def _check_values(floats: np.ndarray, flags: np.ndarray, small: np.ndarray, n_classes: int, n_sources: int) -> None:
    """What every reader may rely on (the same for encode and decode): finite positions, codes in their tables.

    Whole blocks at a time (a handful of numpy calls whatever the size); the row is looked up only to say
    which one is wrong.
    """
    if not floats.shape[1]:
        return
    required = floats[:_REQUIRED]
    if not np.isfinite(required).all():
        for name, col in zip(FLOAT_FIELDS, required):
            if not np.isfinite(col).all():
                raise ValueError(f"fix #{int(np.argmin(np.isfinite(col)))}: {name} is NaN or infinite")
    optional = floats[_REQUIRED:]
    if np.isinf(optional).any():
        row, i = divmod(int(np.argmax(np.isinf(optional))), optional.shape[1])
        raise ValueError(f"fix #{i}: {FLOAT_FIELDS[_REQUIRED + row]} is infinite")
    if flags.min() < -1:
        row, i = divmod(int(np.argmin(flags)), flags.shape[1])
        raise ValueError(f"fix #{i}: {FLAG_FIELDS[row]} {int(flags[row, i])} is negative")
    valid = small[0].view(np.int8)
    if valid.min() < -1 or valid.max() > 1:
        i = int(np.argmax((valid < -1) | (valid > 1)))
        raise ValueError(f"fix #{i}: valid must be -1 (not sent), 0 or 1, got {int(valid[i])}")
    for what, codes, table in (("class", small[1], n_classes), ("source", small[2], n_sources)):
        if codes.max() >= table:
            raise ValueError(f"fix #{int(np.argmax(codes >= table))}: {what} code {int(codes.max())} is outside "
                             f"its table of {table}")


# -- the old JSON form (mixed-version rollout) -----------------------------------------------------------------

_NUMBER = (float, int)
_OPTIONAL = (("speed_kmh", (float, int, type(None))), ("heading", (float, int, type(None))),
             ("accuracy_m", (float, int, type(None))), ("alarm_flags", (int, type(None))),
             ("status_flags", (int, type(None))), ("valid", (bool, type(None))), ("class", (str, type(None))),
             ("received_at", (float, int, type(None))), ("source", (str, type(None))))
_FLAG_MAX = 2**63


def _decode_json(value: bytes) -> FixColumns:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"neither a binary fixes record (starting {MAGIC!r}) nor JSON: {exc}"[:200]) from None
    items = obj if isinstance(obj, list) else [obj]
    for i, o in enumerate(items):
        _check_record(o, i)
    return from_fixes([Fix.from_obj(o) for o in items])


def _check_record(o: Any, i: int) -> None:
    """The types ``Fix.to_json`` writes (JSON has no NaN, so numbers are finite), flags as the columns hold them."""
    if o.__class__ is not dict:
        raise ValueError(f"fix #{i}: not an object")
    vid = o.get("vehicle_id")
    if vid.__class__ is not str or not vid:
        raise ValueError(f"fix #{i}: vehicle_id must be a non-empty string")
    for name in ("ts", "lat", "lon"):
        if o.get(name).__class__ not in _NUMBER:
            raise ValueError(f"fix #{i}: {name} must be a number")
    for name, types in _OPTIONAL:
        if o.get(name).__class__ not in types:
            raise ValueError(f"fix #{i}: {name} has the wrong type")
    for name in FLAG_FIELDS:
        v = o.get(name)
        if v is not None and not 0 <= v < _FLAG_MAX:
            raise ValueError(f"fix #{i}: {name} {v} is outside 0..2**63-1")
