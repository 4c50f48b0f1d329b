"""Stateless validation of gateway payloads (MQTT in) into :class:`Fix` records.

A payload is one JSON object or a JSON array of them (DESIGN.md, "Fix").
Each bad element is rejected on its own with a short ``reason`` label and a
human ``detail``; good elements of a mixed array are still accepted.
GPS quality (the fix-valid flag, accuracy) and stateful checks (duplicates,
implied speed, late fixes) belong to the worker (engine.telemetry.filters):
here ``valid`` and ``status_flags`` are only type-checked and passed on.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from engine.errors import FixRejected
from engine.settings import Settings
from engine.telemetry.models import CLASSES, Fix

RAW_KEEP_BYTES = 65536  # raw payload kept in a rejection record; larger ones keep size + head


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
        return orjson.dumps({
            "reason": self.reason, "detail": self.detail, "source": self.source, "topic": self.topic,
            "vehicle_id": self.vehicle_id, "index": self.index, "received_at": self.received_at,
            "raw": raw_text, "raw_encoding": encoding, "raw_size": len(self.raw),
            "raw_truncated": len(self.raw) > RAW_KEEP_BYTES, **self.extra,
        })


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
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise FixRejected("bad_timestamp", f"ts {value[:64]!r} is not ISO 8601") from None
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise FixRejected("bad_timestamp", f"ts {value[:64]!r} has no UTC offset (e.g. +08:00)")
        return dt.timestamp()
    raise FixRejected("bad_timestamp", f"ts must be a string or number, got {type(value).__name__}")


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


def validate_fix(obj: Any, *, topic_vehicle: str | None, settings: Settings, now: float) -> Fix:
    """One JSON element -> :class:`Fix`, or :class:`FixRejected` naming the field."""
    if not isinstance(obj, dict):
        raise FixRejected("bad_shape", f"a fix must be a JSON object, got {type(obj).__name__}")
    vid = obj.get("vehicle_id")
    if vid is None:
        raise FixRejected("missing_field", "vehicle_id is required")
    if not isinstance(vid, str) or not vid.strip() or len(vid) > 64 or any(c in vid for c in "/+#\x00"):
        raise FixRejected("bad_vehicle_id", f"vehicle_id must be 1-64 characters without / + # (got {str(vid)[:80]!r})")
    if topic_vehicle is not None and vid != topic_vehicle:
        raise FixRejected("vehicle_mismatch", f"vehicle_id {vid!r} does not match the topic's {topic_vehicle!r}")
    if "ts" not in obj:
        raise FixRejected("missing_field", "ts is required")
    ts = parse_ts(obj["ts"])
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
    if vclass is not None and vclass not in CLASSES:
        raise FixRejected("bad_class", f"class {str(vclass)[:40]!r} is not one of {', '.join(CLASSES)}")
    return Fix(vehicle_id=vid, ts=ts, lat=lat, lon=lon, vclass=vclass or "other", speed_kmh=speed,
               heading=heading, accuracy_m=accuracy, alarm_flags=flags, received_at=now, valid=valid,
               status_flags=status)


def topic_vehicle(topic: str, prefix: str) -> str | None:
    """``citywatch/fixes/{vehicle_id}`` -> vehicle_id (None for a bare prefix)."""
    rest = topic[len(prefix):].strip("/") if topic.startswith(prefix) else ""
    return rest if rest and "/" not in rest else None


def parse_payload(payload: bytes, *, topic: str, settings: Settings, now: float) -> Parsed:
    """Decode one MQTT message into accepted fixes and rejections (never raises)."""
    vehicle = topic_vehicle(topic, settings.mqtt.fixes_topic)

    def reject(reason: str, detail: str, raw: bytes = payload, index: int | None = None, vid: str | None = vehicle) -> Rejection:
        return Rejection(reason, detail, raw, topic=topic, vehicle_id=vid, index=index, received_at=now)

    if vehicle is None and topic.rstrip("/") != settings.mqtt.fixes_topic:
        return Parsed([], [reject("bad_topic", f"topic {topic[:120]!r} is not {settings.mqtt.fixes_topic}/<vehicle_id>")])
    if len(payload) > settings.bridge.max_payload_bytes:
        return Parsed([], [reject("payload_too_large", f"{len(payload)} bytes > limit {settings.bridge.max_payload_bytes}")])
    try:
        obj = orjson.loads(payload)  # rejects NaN/Infinity, invalid UTF-8 and nesting deeper than 1024
    except orjson.JSONDecodeError as exc:
        return Parsed([], [reject("bad_json", f"not valid JSON: {exc}"[:300])])
    items = obj if isinstance(obj, list) else [obj]
    if isinstance(obj, list) and len(obj) > settings.bridge.max_fixes_per_message:
        return Parsed([], [reject("too_many_fixes", f"{len(obj)} fixes > limit {settings.bridge.max_fixes_per_message}")])
    if isinstance(obj, list) and not obj:
        return Parsed([], [reject("bad_shape", "empty array")])
    fixes, rejections = [], []
    for i, item in enumerate(items):
        try:
            fixes.append(validate_fix(item, topic_vehicle=vehicle, settings=settings, now=now))
        except FixRejected as exc:
            raw = orjson.dumps(item) if isinstance(obj, list) else payload
            rejections.append(reject(exc.reason, exc.detail, raw, i if isinstance(obj, list) else None))
    return Parsed(fixes, rejections)
