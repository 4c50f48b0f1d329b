"""Stateless validation of gateway payloads (MQTT in) into :class:`Fix` records.

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
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from engine.errors import FixRejected
from engine.limits import too_deep
from engine.settings import MqttSettings, Settings
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
    fixes: list[Fix]
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


def parse_payload(payload: bytes, *, topic: str, settings: Settings, now: float) -> Parsed:
    """Decode one MQTT message into accepted fixes and rejections (never raises)."""
    limits = settings.bridge
    try:
        vehicle, gateway, vehicle_prefixes = topic_map(settings.mqtt).parse(topic)
    except FixRejected as exc:
        vehicle, gateway, vehicle_prefixes = topic_vehicle(topic, settings.mqtt.fixes_topic), None, ()
        bad_topic: FixRejected | None = exc
    else:
        bad_topic = None
    extra = {"gateway": gateway} if gateway else {}

    def reject(reason: str, detail: str, raw: bytes = payload, index: int | None = None, vid: str | None = vehicle) -> Rejection:
        return Rejection(reason, detail, raw, topic=topic, vehicle_id=vid, index=index, received_at=now, extra=extra)

    if bad_topic is not None:
        return Parsed([], [reject(bad_topic.reason, bad_topic.detail)])
    if len(payload) > limits.max_payload_bytes:
        return Parsed([], [reject("payload_too_large", f"{len(payload)} bytes > limit bridge.max_payload_bytes "
                                                       f"({limits.max_payload_bytes})")])
    try:
        obj = orjson.loads(payload)  # rejects NaN/Infinity, invalid UTF-8 and nesting deeper than 1024
    except orjson.JSONDecodeError as exc:
        return Parsed([], [reject("bad_json", f"not valid JSON: {exc}"[:300])])
    is_list = isinstance(obj, list)
    items = obj if is_list else [obj]
    if is_list and len(obj) > limits.max_fixes_per_message:
        return Parsed([], [reject("too_many_fixes", f"{len(obj)} fixes > limit bridge.max_fixes_per_message "
                                                    f"({limits.max_fixes_per_message})")])
    if is_list and not obj:
        return Parsed([], [reject("bad_shape", "empty array")])
    # A flat payload (an object, or an array of objects, holding scalars) has exactly one opening
    # bracket per fix plus the array's: only a payload with more is walked to measure its depth.
    opens = payload.count(b"{") + payload.count(b"[")
    if opens > limits.max_json_depth and (opens != len(items) + is_list or not all(type(i) is dict for i in items)) \
            and too_deep(payload, obj, limits.max_json_depth):
        return Parsed([], [reject("too_deep", f"JSON nested deeper than limit bridge.max_json_depth "
                                              f"({limits.max_json_depth})")])
    fixes, rejections = [], []
    for i, item in enumerate(items):
        try:
            fixes.append(validate_fix(item, topic_vehicle=vehicle, settings=settings, now=now,
                                      vehicle_prefixes=vehicle_prefixes))
        except FixRejected as exc:
            raw = orjson.dumps(item) if is_list else payload
            rejections.append(reject(exc.reason, exc.detail, raw, i if is_list else None))
    return Parsed(fixes, rejections)
