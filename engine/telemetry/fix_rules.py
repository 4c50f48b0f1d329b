"""The rules one fix object must pass, and what a payload's MQTT topic says about its vehicle and gateway.

:func:`validate_fix` is the definition every payload path answers to; :class:`Origin` carries a payload's
topic facts and writes its rejections.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from engine.core.errors import FixRejected
from engine.mqtt.settings import MqttSettings
from engine.telemetry.models import CLASSES, Fix
from engine.telemetry.rejection import Rejection
from engine.telemetry.settings import TelemetryConfig

TOPIC_CHARS = re.compile("[/+#\x00]")  # not in a vehicle id: it is a topic level
MIN_TS = 946684800.0  # 2000-01-01T00:00:00Z: JT/T 808 time (BCD YYMMDD) cannot say anything earlier


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


def validate_fix(obj: Any, *, topic_vehicle: str | None, settings: TelemetryConfig, now: float,
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
    if vid.__class__ is not str or not vid.strip() or TOPIC_CHARS.search(vid):
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


class Origin:
    """What a payload's topic says (vehicle, gateway and its vehicle prefixes) and how its rejections are written."""

    __slots__ = ("payload", "topic", "now", "vehicle", "prefixes", "bad_topic", "extra")

    def __init__(self, payload: bytes, topic: str, settings: TelemetryConfig, now: float):
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

    def check(self, item: Any, settings: TelemetryConfig) -> Fix:
        return validate_fix(item, topic_vehicle=self.vehicle, settings=settings, now=self.now,
                            vehicle_prefixes=self.prefixes)
