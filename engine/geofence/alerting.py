"""Zone events -> alert payloads (the alert contract: README "Contracts", "Alerts out").

Every zone alert carries the contract fields (``alert_id``, ``kind``,
``severity``, ``ts``, ``detected_at``, ``vehicle_id``, ``class``, ``zone_id``,
``zone_name``, ``lat``, ``lon``) plus ``rule``, ``speed_kmh``,
``incident_id`` and ``late``; the event's own fields follow, with event times
(keys ending ``_at``) written ISO 8601 in the city's time zone.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from engine.alerts.models import make_alert
from engine.core.clock import to_iso
from engine.geofence.transitions import ZoneEvent
from engine.geofence.zone_models import Zone
from engine.telemetry.models import Fix


def zone_alert(ev: ZoneEvent, zone: Zone | None, fix: Fix, speed: float | None, now: float, tz: ZoneInfo, *,
               prev: tuple[float, float] | None = None, late: bool = False) -> dict[str, Any]:
    """The alert for ``ev``, raised by ``fix`` (``prev``: the previous fix's lat/lon, for a crossing)."""
    fields: dict[str, Any] = {
        "vehicle_id": fix.vehicle_id, "class": fix.vclass, "zone_id": ev.zone_id,
        "zone_name": zone.name if zone else ev.zone_id, "rule": zone.rule if zone else None,
        "lat": fix.lat, "lon": fix.lon, "speed_kmh": None if speed is None else round(speed, 1),
        "incident_id": ev.incident_id, "late": late,
    }
    for key, value in ev.fields.items():
        fields[key] = to_iso(value, tz) if key.endswith("_at") and value is not None else value
    if ev.kind == "zone.cross" and prev is not None:
        fields["from_lat"], fields["from_lon"] = prev
    return make_alert(ev.kind, ev.severity, alert_id=ev.alert_id, subject=fix.vehicle_id, ts=fix.ts,
                      detected_at=now, tz=tz, **fields)
