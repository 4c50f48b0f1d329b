"""The columnar path of payload validation: msgspec decodes straight into typed fields, checks run over columns.

Whatever it cannot vouch for it hands back (``None``) or sends through :func:`engine.telemetry.fix_rules.validate_fix`
element by element, so every rejection reads as the per-element path's (:mod:`engine.telemetry.validation`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import is_not, methodcaller
from typing import Annotated, Any, cast

import msgspec
import numpy as np
import orjson

from engine.core.errors import FixRejected
from engine.core.limits import too_deep
from engine.telemetry.columns import MISSING_FLAGS, FixColumns
from engine.telemetry.fix_rules import MIN_TS, TOPIC_CHARS, Origin, parse_ts
from engine.telemetry.models import CLASSES
from engine.telemetry.rejection import Parsed
from engine.telemetry.settings import TelemetryConfig

#: msgspec takes integers of any size; orjson refuses those beyond a float (and a repeated key hides them
#: from the checks): any outside 64 bits fails the decode (then the slow path answers, e.g. bad_type).
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class _WireFix(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A fix object as msgspec decodes it: each field typed only as tightly as the columns need.

    An absent field and null both read as None (a required one then fails its row's checks); a value of
    another JSON type fails the whole payload's decode, which then goes the per-element way.
    """

    vehicle_id: str | None = None
    ts: float | str | None = None
    lat: float | None = None
    lon: float | None = None
    speed_kmh: float | None = None
    heading: float | None = None
    accuracy_m: float | None = None
    alarm_flags: _Int64 | None = None
    status_flags: _Int64 | None = None
    valid: bool | None = None
    vclass: str | None = msgspec.field(default=None, name="class")


class _LooseWireFix(_WireFix, forbid_unknown_fields=False):
    """The same, skipping fields the bridge does not read."""


_STRICT = msgspec.json.Decoder(list[_WireFix] | _WireFix)
_LOOSE = msgspec.json.Decoder(list[_LooseWireFix] | _LooseWireFix)
_VALID_CODES = {None: -1, False: 0, True: 1}
_CLASS_CODES = {c: i for i, c in enumerate(CLASSES)}
_SOURCES = ("mqtt",)


def _decode(payload: bytes) -> tuple[list[_WireFix] | list[_LooseWireFix] | _WireFix, Any] | None:
    """msgspec's decode and, when it skipped fields, orjson's; None where either refuses the payload.

    msgspec checks every value it decodes as orjson does (valid UTF-8, numbers within a float, no lone
    surrogate) but not the values of fields it skips: a payload with such fields is decoded by orjson
    too, to the same verdict as the per-element path (orjson's answer is then reused, not decoded again).
    """
    try:
        return _STRICT.decode(payload), None
    except msgspec.ValidationError as exc:
        if not str(exc).startswith("Object contains unknown field"):  # (any other wording: the slow path)
            return None
    except (msgspec.DecodeError, RecursionError):
        return None
    try:
        plain = orjson.loads(payload)
        return _LOOSE.decode(payload), plain
    except (orjson.JSONDecodeError, msgspec.DecodeError, RecursionError):
        return None


def _nested(payload: bytes, flat: int, limit: int) -> np.bool_:
    """Whether the payload has more opening brackets than a flat one (``flat``: its objects and array) and
    more than ``limit``: the per-element path then measures its depth (brackets in strings count too)."""
    raw = np.frombuffer(payload, np.uint8)
    opens = np.count_nonzero((raw == ord("{")) | (raw == ord("[")))
    return opens > limit and opens != flat


def _orjson(payload: bytes, plain: Any) -> Any:
    """orjson's decode of the payload (already made, or now); None for JSON it refuses."""
    if plain is not None:
        return plain
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None


@dataclass(frozen=True)
class _Limits:
    """Per-settings constants of the vectorised checks: each numeric row's accepted range."""

    lo: np.ndarray           # (8, 1): ts, lat, lon, speed_kmh, heading, accuracy_m, alarm_flags, status_flags
    hi: np.ndarray           # (8, 1); ts's upper bound is set per message (from ``now``)
    null_island: bool        # whether 0,0 lies within the lat/lon ranges (else it cannot pass them)
    class_codes: dict[str | None, int]  # accepted ``class`` -> index into CLASSES (absent: "other")


_NO_CLASS = 255  # the code of a class validate_fix refuses (a row that is not kept)
_OPTIONAL_ROWS = np.array([[False], [False], [False], [True], [True], [True], [True], [True]])
_limits_seen: list[tuple[TelemetryConfig, _Limits]] = []  # one entry: the limits of the settings last seen


def _limits(settings: TelemetryConfig) -> _Limits:
    if _limits_seen and _limits_seen[0][0] is settings:
        return _limits_seen[0][1]
    b, w, max_chars = settings.city.bounds, settings.worker, settings.bridge.max_field_chars
    # Inside -90..90 (-180..180) and inside the city bounds: inside both at once.
    lat_lo, lat_hi, lon_lo, lon_hi = max(-90, b.lat_min), min(90, b.lat_max), max(-180, b.lon_min), min(180, b.lon_max)
    flags_hi = 2**32 - 1  # integers: <= 2**32 - 1 is < 2**32
    codes: dict[str | None, int] = {c: i for i, c in enumerate(CLASSES) if len(c) <= max_chars}
    codes[None] = CLASSES.index("other")
    limits = _Limits(np.array([[MIN_TS], [lat_lo], [lon_lo], [0], [0], [0], [0], [0]], np.float64),
                     np.array([[math.inf], [lat_hi], [lon_hi], [w.max_speed_kmh], [360], [1e6], [flags_hi], [flags_hi]],
                              np.float64),
                     lat_lo <= 0 <= lat_hi and lon_lo <= 0 <= lon_hi, codes)
    _limits_seen[:] = [(settings, limits)]
    return limits


def parse_columns(origin: Origin, settings: TelemetryConfig) -> Parsed | None:
    """The fast path; None hands the whole payload to the per-element path."""
    payload, bridge = origin.payload, settings.bridge
    if origin.bad_topic is not None or len(payload) > bridge.max_payload_bytes:
        return None
    both = _decode(payload)
    if both is None:
        return None
    decoded, plain = both
    items: Sequence[_WireFix] = decoded if (is_list := isinstance(decoded, list)) else [decoded]
    n = len(items)
    if is_list and not 0 < n <= bridge.max_fixes_per_message:
        return None
    # Decoded without skipping a field, a payload holds scalars only: it is 2 deep at most.
    if (plain is not None or bridge.max_json_depth < 2) and _nested(payload, n + is_list, bridge.max_json_depth):
        plain = _orjson(payload, plain)
        if plain is None or too_deep(payload, plain, bridge.max_json_depth):
            return None
    if n == 1:  # one fix (the usual message): row checks cost less than a dozen numpy calls on one row
        return _one_row(items[0], origin, settings)
    limits = _limits(settings)
    fields = zip(*map(msgspec.structs.astuple, items))  # one tuple per field, in _WireFix's order
    ts: Sequence[float | str | None]
    ids, ts, lat, lon, speed, heading, accuracy, alarm, status, valid, vclass = fields
    has_iso = str in set(map(type, ts))
    if has_iso:
        ts = _timestamps(ts, bridge.max_field_chars)
    hi = limits.hi.copy()
    future = origin.now + settings.worker.future_tolerance_s
    hi[0, 0] = future if has_iso else min(future, 1e11)  # a number above 1e11 looks like milliseconds
    # One matrix for every numeric field: row k is field k, None (absent or null) is NaN.
    m = np.empty((8, n), np.float64)
    for k, values in enumerate((ts, lat, lon, speed, heading, accuracy, alarm, status)):
        try:
            m[k] = np.fromiter(values, np.float64, n)
        except TypeError:  # a None in it
            m[k] = np.array(values, np.float64)
    inside = (m >= limits.lo) & (m <= hi)  # NaN: never
    passed = inside | (_OPTIONAL_ROWS & np.isnan(m))  # an optional field may be absent
    ok = np.logical_and.reduce(passed, axis=0)
    if limits.null_island:
        ok &= (m[1] != 0) | (m[2] != 0)
    codes = list(map(limits.class_codes.get, vclass, repeat(_NO_CLASS)))
    if _NO_CLASS in codes:
        ok &= np.array(codes) != _NO_CLASS
    _vehicle_ids_ok(ids, origin, bridge.max_vehicle_id_chars, ok)
    flags = np.where(inside[6:], m[6:], MISSING_FLAGS).astype(np.int64)
    received_at = np.empty(n, np.float64)
    received_at.fill(origin.now)
    arrays = [*m[:6], received_at, flags[0], flags[1], np.fromiter(map(_VALID_CODES.__getitem__, valid), np.int8, n),
              np.array(codes, np.uint8), np.zeros(n, np.uint8)]
    cols = FixColumns(list(ids), *arrays, classes=CLASSES, sources=_SOURCES)
    if np.count_nonzero(ok) == n:
        return Parsed(cols, [])
    return _with_rejections(cols, ok, _orjson(payload, plain), origin, settings)


def _one_row(w: _WireFix, origin: Origin, settings: TelemetryConfig) -> Parsed | None:
    """One decoded fix through :func:`validate_fix` itself (to it an absent field and null are the same)."""
    try:
        f = origin.check({"vehicle_id": w.vehicle_id, "ts": w.ts, "lat": w.lat, "lon": w.lon, "speed_kmh": w.speed_kmh,
                          "heading": w.heading, "accuracy_m": w.accuracy_m, "alarm_flags": w.alarm_flags,
                          "status_flags": w.status_flags, "valid": w.valid, "class": w.vclass}, settings)
    except FixRejected:
        return None  # the per-element path says why
    floats = np.array((f.ts, f.lat, f.lon, f.speed_kmh, f.heading, f.accuracy_m, f.received_at), np.float64)
    flags = np.array((MISSING_FLAGS if f.alarm_flags is None else f.alarm_flags,
                      MISSING_FLAGS if f.status_flags is None else f.status_flags), np.int64)
    arrays: list[np.ndarray] = [*(floats[i:i + 1] for i in range(7)), flags[0:1], flags[1:2],
                                np.array((_VALID_CODES[f.valid],), np.int8),
                                np.array((_CLASS_CODES[f.vclass],), np.uint8), np.zeros(1, np.uint8)]
    cols = FixColumns([f.vehicle_id], *arrays, classes=CLASSES, sources=_SOURCES)
    return Parsed(cols, [])


def _vehicle_ids_ok(ids: tuple[str | None, ...], origin: Origin, max_chars: int, ok: np.ndarray) -> None:
    """Clear ``ok`` on rows whose vehicle id :func:`validate_fix` refuses (each check per row only if one fails)."""
    n = len(ids)
    names = cast("tuple[str, ...]", ids)  # until the join finds a None (TypeError): then rebuilt without
    try:
        joined = " ".join(names)
    except TypeError:  # a None (absent) among them
        ok &= np.fromiter(map(is_not, ids, repeat(None)), np.bool_, n)
        names = tuple(v if v is not None else "" for v in ids)
        joined = " ".join(names)
    if origin.vehicle is not None and names.count(origin.vehicle) != n:
        ok &= np.fromiter(map(origin.vehicle.__eq__, names), np.bool_, n)
    lengths = np.fromiter(map(len, names), np.intp, n)
    if lengths.min() == 0 or lengths.max() > max_chars:
        ok &= (lengths > 0) & (lengths <= max_chars)
    if any(map(str.isspace, names)):
        ok &= ~np.fromiter(map(str.isspace, names), np.bool_, n)
    if TOPIC_CHARS.search(joined):
        ok &= np.fromiter((TOPIC_CHARS.search(v) is None for v in names), np.bool_, n)
    if origin.prefixes and not all(allowed := list(map(methodcaller("startswith", origin.prefixes), names))):
        ok &= np.array(allowed)


def _timestamps(values: Sequence[float | str | None], max_chars: int) -> list[float | None]:
    """``ts`` with each ISO string as epoch seconds, NaN where :func:`parse_ts` (or the length limit) refuses it.

    Numbers stay as they are (checked with the others, in one vectorised step) but for those above 1e11,
    which :func:`parse_ts` refuses as milliseconds and an ISO string may legitimately exceed.
    """
    return [(v if v <= 1e11 else math.nan) if isinstance(v, float) else v if v is None else _iso_seconds(v, max_chars)
            for v in values]


def _iso_seconds(value: str, max_chars: int) -> float:
    if len(value) > max_chars:
        return math.nan
    try:
        return parse_ts(value)
    except (FixRejected, OverflowError):
        return math.nan


def _with_rejections(cols: FixColumns, ok: np.ndarray, items: Any, origin: Origin,
                     settings: TelemetryConfig) -> Parsed | None:
    """An array where some rows failed a check: those go through :func:`validate_fix` on orjson's decode."""
    if not isinstance(items, list) or len(items) != len(cols):
        return None
    rejections = []
    for i in np.flatnonzero(~ok).tolist():
        try:
            origin.check(items[i], settings)
        except FixRejected as exc:
            rejections.append(origin.reject(exc.reason, exc.detail, orjson.dumps(items[i]), i))
        else:
            return None  # the checks above refused a row validate_fix accepts: the per-element path decides
    return Parsed(cols.take(np.flatnonzero(ok)), rejections)
