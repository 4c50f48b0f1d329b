"""One GPS fix as a Python object, and the vehicle classes.

The Kafka ``fixes`` record and its readers are :mod:`engine.telemetry.wire`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

CLASSES = ("hazmat", "police", "fire", "ambulance", "taxi", "bus", "ride_hailing", "other")


@dataclass(slots=True)
class Fix:
    """One accepted GPS fix, normalised: ``ts`` is epoch seconds (UTC), WGS-84 degrees."""

    vehicle_id: str
    ts: float
    lat: float
    lon: float
    vclass: str = "other"
    speed_kmh: float | None = None
    heading: float | None = None
    accuracy_m: float | None = None
    alarm_flags: int | None = None
    received_at: float | None = None
    source: str = "mqtt"
    valid: bool | None = None          # the terminal's own "fix valid" flag, when it sends one
    status_flags: int | None = None    # JT/T 808 status bits (bit 1 = fix valid)

    def to_json(self) -> bytes:
        # A flat dict by hand: dataclasses.asdict deep-copies and was half the bridge's CPU (profiled).
        return orjson.dumps({
            "vehicle_id": self.vehicle_id, "ts": self.ts, "lat": self.lat, "lon": self.lon, "class": self.vclass,
            "speed_kmh": self.speed_kmh, "heading": self.heading, "accuracy_m": self.accuracy_m,
            "alarm_flags": self.alarm_flags, "received_at": self.received_at, "source": self.source,
            "valid": self.valid, "status_flags": self.status_flags})

    @classmethod
    def from_obj(cls, d: dict[str, Any]) -> Fix:
        return cls(
            vehicle_id=d["vehicle_id"], ts=d["ts"], lat=d["lat"], lon=d["lon"],
            vclass=d.get("class") or "other", speed_kmh=d.get("speed_kmh"), heading=d.get("heading"),
            accuracy_m=d.get("accuracy_m"), alarm_flags=d.get("alarm_flags"),
            received_at=d.get("received_at"), source=d.get("source") or "mqtt",
            valid=d.get("valid"), status_flags=d.get("status_flags"),
        )
