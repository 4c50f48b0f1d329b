"""Stateless validation of gateway payloads (MQTT in) into fixes, as columns, and rejections.

A payload is one JSON object or a JSON array of them (README "Contracts", "Fixes in").
Each bad element is rejected on its own with a short ``reason`` label and a
human ``detail``; good elements of a mixed array are still accepted.
GPS quality (the fix-valid flag, accuracy) and stateful checks (duplicates,
implied speed, late fixes) belong to the worker (engine.telemetry.filters):
here ``valid`` and ``status_flags`` are only type-checked and passed on.

Size limits are settings (``bridge.max_payload_bytes``, ``max_fixes_per_message``,
``max_json_depth``, ``max_vehicle_id_chars``, ``max_field_chars``); a rejection
for one of them names the setting. Topics: ``<fixes_topic>/<vehicle_id>``, a
mixed array on ``<fixes_topic>``, or under a gateway's prefix
(``mqtt.auth.gateways``: ``<prefix>/<vehicle_id>`` or a mixed array on
``<prefix>``), where the gateway's ``vehicles`` prefixes, if set, bound which
vehicles it may report (``foreign_vehicle``).

Two paths give the same answer. The per-element one (orjson, then :func:`validate_fix`
on each element) is the definition and writes every rejection. The columnar one
decodes with msgspec straight into typed fields and runs each check over whole
numpy columns; whatever it cannot vouch for goes the per-element way: the whole
payload (a JSON type it does not take, a limit, a single fix that fails) or just
the failing elements of an array, so reasons, details, indexes and raw elements
are the per-element path's.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from operator import is_not, methodcaller
from typing import Annotated, Any

import msgspec
import numpy as np
import orjson

from engine.core.errors import FixRejected
from engine.core.limits import too_deep
from engine.settings import MqttSettings, Settings
from engine.telemetry.columns import MISSING_FLAGS, FixColumns, from_fixes
from engine.telemetry.models import CLASSES, Fix

RAW_KEEP_BYTES = 65536  # raw payload kept in a rejection record; larger ones keep size + head
_TOPIC_CHARS = re.compile("[/+#\x00]")  # not in a vehicle id: it is a topic level
MIN_TS = 946684800.0  # 2000-01-01T00:00:00Z: JT/T 808 time (BCD YYMMDD) cannot say anything earlier

#: Every reason the bridge gives (``fixes.rejected`` / ``citywatch_fixes_rejected_total{reason}``).
REASONS = frozenset({
    "bad_json", "bad_shape", "bad_topic", "missing_field", "bad_type", "bad_vehicle_id", "vehicle_mismatch",
    "foreign_vehicle", "bad_timestamp", "future_timestamp", "bad_coordinates", "null_island", "out_of_area",
    "bad_speed", "bad_heading", "bad_accuracy", "bad_class", "field_too_long", "payload_too_large",
    "too_many_fixes", "too_deep", "internal_error"})


@dataclass(slots=True)
class Rejection:
    """A rejected input, as written to ``fixes.rejected``."""

    reason: str
    detail: str
    raw: bytes
    topic: str = ""
    vehicle_id: str | None = None
    index: int | None = None
    received_at: float | None = None
    source: str = "mqtt"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        try:
            raw_text, encoding = self.raw[:RAW_KEEP_BYTES].decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            raw_text, encoding = base64.b64encode(self.raw[:RAW_KEEP_BYTES]).decode("ascii"), "base64"
        doc = {
            "reason": self.reason, "detail": self.detail, "source": self.source, "topic": self.topic,
            "vehicle_id": self.vehicle_id, "index": self.index, "received_at": self.received_at,
            "raw": raw_text, "raw_encoding": encoding, "raw_size": len(self.raw),
            "raw_truncated": len(self.raw) > RAW_KEEP_BYTES, **self.extra,
        }
        try:
            return orjson.dumps(doc)
        except TypeError:  # a string that is not valid UTF-8 (a lone surrogate): write it escaped
            return orjson.dumps({k: v.encode("utf-8", "backslashreplace").decode() if isinstance(v, str) else v
                                 for k, v in doc.items()})


@dataclass(slots=True)
class Parsed:
    fixes: FixColumns             # the accepted fixes, in payload order
    rejections: list[Rejection]


def parse_ts(value: Any) -> float:
    """ISO 8601 with an explicit offset, or epoch seconds -> epoch seconds."""
    if isinstance(value, bool):
        raise FixRejected("bad_timestamp", f"ts must be ISO 8601 with offset or epoch seconds, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise FixRejected("bad_timestamp", f"ts epoch seconds must be positive, got {value!r}")
        if value > 1e11:
            raise FixRejected("bad_timestamp", f"ts {value!r} looks like milliseconds; send epoch seconds")
        ts = float(value)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise FixRejected("bad_timestamp", f"ts {value[:64]!r} is not ISO 8601") from None
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise FixRejected("bad_timestamp", f"ts {value[:64]!r} has no UTC offset (e.g. +08:00)")
        ts = dt.timestamp()
    else:
        raise FixRejected("bad_timestamp", f"ts must be a string or number, got {type(value).__name__}")
    if ts < MIN_TS:
        raise FixRejected("bad_timestamp", f"ts {str(value)[:64]!r} is before 2000-01-01")
    return ts



def _number(obj: dict[str, Any], name: str, *, required: bool, lo: float, hi: float, reason: str) -> float | None:
    if name not in obj or obj[name] is None:
        if required:
            raise FixRejected("missing_field", f"{name} is required")
        return None
    v = obj[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise FixRejected("bad_type", f"{name} must be a number, got {type(v).__name__}")
    if not math.isfinite(v) or not lo <= v <= hi:
        raise FixRejected(reason, f"{name} {v!r} is outside {lo}..{hi}")
    return float(v)


def validate_fix(obj: Any, *, topic_vehicle: str | None, settings: Settings, now: float,
                 vehicle_prefixes: tuple[str, ...] = ()) -> Fix:
    """One JSON element -> :class:`Fix`, or :class:`FixRejected` naming the field.

    ``vehicle_prefixes``: the vehicle ids the publishing gateway may report (empty = any).
    """
    if not isinstance(obj, dict):
        raise FixRejected("bad_shape", f"a fix must be a JSON object, got {type(obj).__name__}")
    limits = settings.bridge
    vid = obj.get("vehicle_id")
    if vid is None:
        raise FixRejected("missing_field", "vehicle_id is required")
    if vid.__class__ is not str or not vid.strip() or _TOPIC_CHARS.search(vid):
        raise FixRejected("bad_vehicle_id", f"vehicle_id must be a non-empty string without / + # (got {str(vid)[:80]!r})")
    if len(vid) > limits.max_vehicle_id_chars:
        raise FixRejected("bad_vehicle_id", f"vehicle_id is {len(vid)} characters > limit "
                                            f"bridge.max_vehicle_id_chars ({limits.max_vehicle_id_chars})")
    if topic_vehicle is not None and vid != topic_vehicle:
        raise FixRejected("vehicle_mismatch", f"vehicle_id {vid!r} does not match the topic's {topic_vehicle!r}")
    if vehicle_prefixes and not vid.startswith(vehicle_prefixes):
        raise FixRejected("foreign_vehicle", f"vehicle_id {vid!r} is not among this gateway's vehicles "
                                             f"({', '.join(vehicle_prefixes)}...)")
    if "ts" not in obj:
        raise FixRejected("missing_field", "ts is required")
    ts_raw = obj["ts"]
    if isinstance(ts_raw, str) and len(ts_raw) > limits.max_field_chars:
        raise FixRejected("field_too_long", f"ts is {len(ts_raw)} characters > limit bridge.max_field_chars "
                                            f"({limits.max_field_chars})")
    ts = parse_ts(ts_raw)
    if ts > now + settings.worker.future_tolerance_s:
        raise FixRejected("future_timestamp", f"ts is {ts - now:.0f} s ahead of the clock")
    lat = _number(obj, "lat", required=True, lo=-90, hi=90, reason="bad_coordinates")
    lon = _number(obj, "lon", required=True, lo=-180, hi=180, reason="bad_coordinates")
    assert lat is not None and lon is not None
    b = settings.city.bounds
    if lat == 0 and lon == 0:
        raise FixRejected("null_island", "lat/lon 0,0 is a terminal without a fix")
    if not (b.lat_min <= lat <= b.lat_max and b.lon_min <= lon <= b.lon_max):
        raise FixRejected("out_of_area", f"{lat:.5f},{lon:.5f} is outside the city bounds")
    speed = _number(obj, "speed_kmh", required=False, lo=0, hi=settings.worker.max_speed_kmh, reason="bad_speed")
    heading = _number(obj, "heading", required=False, lo=0, hi=360, reason="bad_heading")
    accuracy = _number(obj, "accuracy_m", required=False, lo=0, hi=1e6, reason="bad_accuracy")
    flags = obj.get("alarm_flags")
    if flags is not None and (isinstance(flags, bool) or not isinstance(flags, int) or not 0 <= flags < 2**32):
        raise FixRejected("bad_type", f"alarm_flags must be a 32-bit unsigned integer, got {flags!r}"[:160])
    valid = obj.get("valid")
    if valid is not None and not isinstance(valid, bool):
        raise FixRejected("bad_type", f"valid must be true or false, got {valid!r}"[:160])
    status = obj.get("status_flags")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 0 <= status < 2**32):
        raise FixRejected("bad_type", f"status_flags must be a 32-bit unsigned integer, got {status!r}"[:160])
    vclass = obj.get("class")
    if isinstance(vclass, str) and len(vclass) > limits.max_field_chars:
        raise FixRejected("field_too_long", f"class is {len(vclass)} characters > limit bridge.max_field_chars "
                                            f"({limits.max_field_chars})")
    if vclass is not None and vclass not in CLASSES:
        raise FixRejected("bad_class", f"class {str(vclass)[:40]!r} is not one of {', '.join(CLASSES)}")
    return Fix(vehicle_id=vid, ts=ts, lat=lat, lon=lon, vclass=vclass or "other", speed_kmh=speed,
               heading=heading, accuracy_m=accuracy, alarm_flags=flags, received_at=now, valid=valid,
               status_flags=status)


class TopicMap:
    """Which vehicle (and gateway) an MQTT topic speaks for, from ``mqtt`` settings."""

    def __init__(self, mqtt: MqttSettings):
        self.mqtt = mqtt
        self.fixes = mqtt.fixes_topic.rstrip("/")
        self.gateways = {mqtt.gateway_prefix(name): (name, gw.vehicle_prefixes)
                         for name, gw in mqtt.auth.gateways.items()}

    def parse(self, topic: str) -> tuple[str | None, str | None, tuple[str, ...]]:
        """``(vehicle_id or None for a mixed array, gateway name or None, its vehicle prefixes)``.

        Raises :class:`FixRejected` (``bad_topic``) for a topic that is neither form.
        """
        bare = topic.rstrip("/")
        if bare in self.gateways:
            return None, *self.gateways[bare]
        head, _, last = bare.rpartition("/")
        if last and head in self.gateways:
            return last, *self.gateways[head]
        if last and head == self.fixes:
            return last, None, ()
        if bare == self.fixes:
            return None, None, ()
        raise FixRejected("bad_topic", f"topic {topic[:120]!r} is not {self.fixes}/<vehicle_id> or a gateway's "
                                       "<prefix>/<vehicle_id>")


_topic_maps: list[TopicMap] = []  # one entry: the map of the settings last seen (a process has one)


def topic_map(mqtt: MqttSettings) -> TopicMap:
    if not _topic_maps or _topic_maps[0].mqtt is not mqtt:
        _topic_maps[:] = [TopicMap(mqtt)]
    return _topic_maps[0]


def topic_vehicle(topic: str, prefix: str) -> str | None:
    """``citywatch/fixes/{vehicle_id}`` -> vehicle_id (None for a bare prefix)."""
    rest = topic[len(prefix):].strip("/") if topic.startswith(prefix) else ""
    return rest if rest and "/" not in rest else None


class _Origin:
    """What a payload's topic says (vehicle, gateway and its vehicle prefixes) and how its rejections are written."""

    __slots__ = ("payload", "topic", "now", "vehicle", "prefixes", "bad_topic", "extra")

    def __init__(self, payload: bytes, topic: str, settings: Settings, now: float):
        self.payload, self.topic, self.now = payload, topic, now
        try:
            self.vehicle, gateway, self.prefixes = topic_map(settings.mqtt).parse(topic)
        except FixRejected as exc:
            self.vehicle, gateway, self.prefixes = topic_vehicle(topic, settings.mqtt.fixes_topic), None, ()
            self.bad_topic: FixRejected | None = exc
        else:
            self.bad_topic = None
        self.extra = {"gateway": gateway} if gateway else {}

    def reject(self, reason: str, detail: str, raw: bytes | None = None, index: int | None = None) -> Rejection:
        return Rejection(reason, detail, self.payload if raw is None else raw, topic=self.topic,
                         vehicle_id=self.vehicle, index=index, received_at=self.now, extra=self.extra)

    def check(self, item: Any, settings: Settings) -> Fix:
        return validate_fix(item, topic_vehicle=self.vehicle, settings=settings, now=self.now,
                            vehicle_prefixes=self.prefixes)


def parse_payload(payload: bytes, *, topic: str, settings: Settings, now: float) -> Parsed:
    """Decode one MQTT message into accepted fixes (as columns) and rejections (never raises).

    The usual payload is decoded by msgspec straight into typed fields and every check runs over whole
    columns (:func:`_parse_columns`). Whatever that path cannot vouch for goes the per-element way
    (:func:`parse_payload_slow` for the whole payload, :func:`validate_fix` for one element of an
    array), so every rejection's reason, detail, index and raw element are the per-element path's.
    """
    origin = _Origin(payload, topic, settings, now)
    parsed = _parse_columns(origin, settings)
    return parsed if parsed is not None else _parse_elements(origin, settings)


def parse_payload_columns(payload: bytes, *, topic: str, settings: Settings, now: float) -> Parsed | None:
    """The columnar path alone: its answer, or None where it hands the payload to the per-element path."""
    return _parse_columns(_Origin(payload, topic, settings, now), settings)


def parse_payload_slow(payload: bytes, *, topic: str, settings: Settings, now: float) -> Parsed:
    """The per-element path alone: orjson, then :func:`validate_fix` on each element (the fast path's fallback)."""
    return _parse_elements(_Origin(payload, topic, settings, now), settings)


def _parse_elements(origin: _Origin, settings: Settings) -> Parsed:
    limits, payload = settings.bridge, origin.payload

    def reject(reason: str, detail: str) -> Parsed:  # the whole payload
        return Parsed(FixColumns.empty(), [origin.reject(reason, detail)])

    if origin.bad_topic is not None:
        return reject(origin.bad_topic.reason, origin.bad_topic.detail)
    if len(payload) > limits.max_payload_bytes:
        return reject("payload_too_large", f"{len(payload)} bytes > limit bridge.max_payload_bytes "
                                           f"({limits.max_payload_bytes})")
    try:
        obj = orjson.loads(payload)  # rejects NaN/Infinity, invalid UTF-8 and nesting deeper than 1024
    except orjson.JSONDecodeError as exc:
        return reject("bad_json", f"not valid JSON: {exc}"[:300])
    is_list = isinstance(obj, list)
    items = obj if is_list else [obj]
    if is_list and len(obj) > limits.max_fixes_per_message:
        return reject("too_many_fixes", f"{len(obj)} fixes > limit bridge.max_fixes_per_message "
                                        f"({limits.max_fixes_per_message})")
    if is_list and not obj:
        return reject("bad_shape", "empty array")
    # A flat payload (an object, or an array of objects, holding scalars) has exactly one opening
    # bracket per fix plus the array's: only a payload with more is walked to measure its depth.
    opens = payload.count(b"{") + payload.count(b"[")
    if opens > limits.max_json_depth and (opens != len(items) + is_list or not all(type(i) is dict for i in items)) \
            and too_deep(payload, obj, limits.max_json_depth):
        return reject("too_deep", f"JSON nested deeper than limit bridge.max_json_depth "
                                  f"({limits.max_json_depth})")
    fixes, rejections = [], []
    for i, item in enumerate(items):
        try:
            fixes.append(origin.check(item, settings))
        except FixRejected as exc:
            raw = orjson.dumps(item) if is_list else payload
            rejections.append(origin.reject(exc.reason, exc.detail, raw, i if is_list else None))
    return Parsed(from_fixes(fixes), rejections)


# -- the columnar path ----------------------------------------------------------------------------------------

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


def _decode(payload: bytes) -> tuple[list[_WireFix] | _WireFix, Any] | None:
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


def _nested(payload: bytes, flat: int, limit: int) -> bool:
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
_limits_seen: list[tuple[Settings, _Limits]] = []  # one entry: the limits of the settings last seen


def _limits(settings: Settings) -> _Limits:
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


def _parse_columns(origin: _Origin, settings: Settings) -> Parsed | None:
    """The fast path; None hands the whole payload to the per-element path."""
    payload, bridge = origin.payload, settings.bridge
    if origin.bad_topic is not None or len(payload) > bridge.max_payload_bytes:
        return None
    both = _decode(payload)
    if both is None:
        return None
    decoded, plain = both
    is_list = isinstance(decoded, list)
    items = decoded if is_list else [decoded]
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
    cols = FixColumns(list(ids), *m[:6], received_at, flags[0], flags[1],
                      np.fromiter(map(_VALID_CODES.__getitem__, valid), np.int8, n),
                      np.array(codes, np.uint8),
                      np.zeros(n, np.uint8), classes=CLASSES, sources=_SOURCES)
    if np.count_nonzero(ok) == n:
        return Parsed(cols, [])
    return _with_rejections(cols, ok, _orjson(payload, plain), origin, settings)


def _one_row(w: _WireFix, origin: _Origin, settings: Settings) -> Parsed | None:
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
    cols = FixColumns([f.vehicle_id], *(floats[i:i + 1] for i in range(7)), flags[0:1], flags[1:2],
                      np.array((_VALID_CODES[f.valid],), np.int8), np.array((_CLASS_CODES[f.vclass],), np.uint8),
                      np.zeros(1, np.uint8), classes=CLASSES, sources=_SOURCES)
    return Parsed(cols, [])


def _vehicle_ids_ok(ids: tuple[str | None, ...], origin: _Origin, max_chars: int, ok: np.ndarray) -> None:
    """Clear ``ok`` on rows whose vehicle id :func:`validate_fix` refuses (each check per row only if one fails)."""
    n = len(ids)
    try:
        joined = " ".join(ids)
    except TypeError:  # a None (absent) among them
        ok &= np.fromiter(map(is_not, ids, repeat(None)), bool, n)
        ids = tuple(v if v is not None else "" for v in ids)
        joined = " ".join(ids)
    if origin.vehicle is not None and ids.count(origin.vehicle) != n:
        ok &= np.fromiter(map(origin.vehicle.__eq__, ids), bool, n)
    lengths = np.fromiter(map(len, ids), np.intp, n)
    if lengths.min() == 0 or lengths.max() > max_chars:
        ok &= (lengths > 0) & (lengths <= max_chars)
    if any(map(str.isspace, ids)):
        ok &= ~np.fromiter(map(str.isspace, ids), bool, n)
    if _TOPIC_CHARS.search(joined):
        ok &= np.fromiter((_TOPIC_CHARS.search(v) is None for v in ids), bool, n)
    if origin.prefixes and not all(allowed := list(map(methodcaller("startswith", origin.prefixes), ids))):
        ok &= np.array(allowed)


def _timestamps(values: tuple[float | str | None, ...], max_chars: int) -> list[float | None]:
    """``ts`` with each ISO string as epoch seconds, NaN where :func:`parse_ts` (or the length limit) refuses it.

    Numbers stay as they are (checked with the others, in one vectorised step) but for those above 1e11,
    which :func:`parse_ts` refuses as milliseconds and an ISO string may legitimately exceed.
    """
    return [_iso_seconds(v, max_chars) if v.__class__ is str else v if v is None or v <= 1e11 else math.nan
            for v in values]


def _iso_seconds(value: str, max_chars: int) -> float:
    if len(value) > max_chars:
        return math.nan
    try:
        return parse_ts(value)
    except (FixRejected, OverflowError):
        return math.nan


def _with_rejections(cols: FixColumns, ok: np.ndarray, items: Any, origin: _Origin,
                     settings: Settings) -> Parsed | None:
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
