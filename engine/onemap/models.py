"""What the one-map sends to browsers: compact rows for vehicles, and summaries of alerts and tasks.

Only the fields a map needs leave the server: an alert summary is built from a
whitelist (a ``driver.flagged`` alert keeps no rule, reason, record or ID
number), and a task summary truncates free text. Coordinates are rounded to
1e-5 degrees (about 1 m, below GPS error).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, TypeGuard

from engine.telemetry.models import CLASSES

CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}
LEVELS = ("community", "street", "district", "city")
COORD_DIGITS = 5
TEXT_MAX = 200

#: Alert kinds that open an incident kept highlighted until a closing alert with the same ``incident_id``.
#: ``zone.dwell`` repeats an open incident; it opens one only when the opening alert is older than the history.
OPENING = frozenset({"zone.enter", "zone.overspeed", "zone.deviation", "zone.dwell", "vehicle.offline",
                     "vehicle.emergency", "vehicle.overspeed_alarm", "vehicle.fatigue_alarm"})
CLOSING = frozenset({"zone.exit", "zone.return", "zone.overspeed_end", "vehicle.online", "vehicle.emergency_cleared",
                     "vehicle.overspeed_alarm_cleared", "vehicle.fatigue_alarm_cleared"})
#: Only these open a highlighted incident: an ``info`` presence (a vehicle inside a ``watch`` zone) is not one.
INCIDENT_SEVERITIES = frozenset({"warning", "critical"})

_COMMON = ("alert_id", "kind", "severity", "ts", "detected_at")
_VEHICLE = ("vehicle_id", "class", "zone_id", "zone_name", "rule", "lat", "lon", "speed_kmh", "incident_id", "late",
            "reason", "since_at", "duration_s", "limit_kmh", "max_speed_kmh", "distance_m", "silent_s", "gap_s",
            "alarm", "alarm_bit", "alarm_flags", "ended_at", "position", "position_ts")
_TASK = ("service_request_id", "service_name", "level", "lat", "lon", "long")


class InvalidRecord(ValueError):
    """A record the one-map cannot use; ``reason`` is a short code for the metric, the message says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def coord(x: float) -> float:
    return round(float(x), COORD_DIGITS)


def alert_summary(alert: Any) -> dict[str, Any]:
    """The fields of an alert the feed and the map show (whitelisted by kind)."""
    if not isinstance(alert, dict):
        raise InvalidRecord("bad_shape", f"an alert must be a JSON object, got {type(alert).__name__}")
    for key in ("alert_id", "kind"):
        if not isinstance(alert.get(key), str) or not alert[key]:
            raise InvalidRecord("missing_field", f"alert has no {key!r}")
    kind: str = alert["kind"]
    if kind.startswith("driver."):
        fields: tuple[str, ...] = (*_COMMON, "action")  # vetting outcomes stay with the vetting API
    elif kind.startswith("task."):
        fields = (*_COMMON, *_TASK)
    else:
        fields = (*_COMMON, *_VEHICLE)
    out = {k: alert[k] for k in fields if alert.get(k) is not None}
    if "long" in out:  # Open311 spells longitude "long"
        out.setdefault("lon", out.pop("long"))
    for k in ("lat", "lon"):
        if k in out:
            if not _finite(out[k]):
                del out[k]
            else:
                out[k] = coord(out[k])
    return out


def task_summary(key: str | None, value: Any) -> dict[str, Any]:
    """An open311-style task record (a record of the ``tasks`` topic) -> what the tasks panel shows."""
    if not isinstance(value, dict):
        raise InvalidRecord("bad_shape", f"a task must be a JSON object, got {type(value).__name__}")
    tid = value.get("service_request_id") or key
    if not isinstance(tid, str) or not tid:
        raise InvalidRecord("missing_field", "task has no 'service_request_id'")
    if key and value.get("service_request_id") and value["service_request_id"] != key:
        raise InvalidRecord("key_mismatch", f"record key {key!r} differs from service_request_id "
                                            f"{value['service_request_id']!r}")
    status = value.get("status")
    if status not in ("open", "closed"):
        raise InvalidRecord("bad_status", f"task {tid}: status must be 'open' or 'closed', got {status!r}")
    level = value.get("level")
    if level is not None and level not in LEVELS:
        raise InvalidRecord("bad_level", f"task {tid}: level must be one of {', '.join(LEVELS)}, got {level!r}")
    lat, lon = value.get("lat"), value.get("long", value.get("lon"))
    if (lat is None) != (lon is None):
        raise InvalidRecord("bad_coordinates", f"task {tid}: lat and long must both be given or both be absent")
    if lat is not None and not (_finite(lat) and _finite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidRecord("bad_coordinates", f"task {tid}: lat/long must be WGS-84 degrees")
    out: dict[str, Any] = {"id": tid, "status": status, "level": level, "overdue": value.get("overdue") is True}
    if lat is not None and lon is not None:
        out["lat"], out["lon"] = coord(lat), coord(lon)
    for src, dst in (("service_code", "code"), ("service_name", "name"), ("state", "state"),
                     ("agency_responsible", "agency"), ("requested_datetime", "requested"),
                     ("updated_datetime", "updated"), ("expected_datetime", "expected")):
        if isinstance(value.get(src), str):
            out[dst] = value[src][:TEXT_MAX]
    for src in ("description", "status_notes"):
        if isinstance(value.get(src), str) and value[src]:
            text = value[src]
            out["notes" if src == "status_notes" else src] = text if len(text) <= TEXT_MAX else text[:TEXT_MAX] + "…"
    return out


def event_time(value: Any) -> float | None:
    """An alert's ``ts`` (ISO 8601 with offset, or epoch seconds) as epoch seconds; ``None`` if unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            return None
        return ts.timestamp() if ts.tzinfo else None
    return None


def _finite(x: Any) -> TypeGuard[float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
