"""The fix record as it travels on the Kafka ``fixes`` topic, and vehicle classes."""

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
            received_at=d.get("received_at"), source=d.get("source", "mqtt"),
            valid=d.get("valid"), status_flags=d.get("status_flags"),
        )


def decode_fixes(value: bytes | None) -> list[Fix]:
    """A ``fixes`` message holds one fix object or an array of them.

    Raises :class:`ValueError` naming the problem for anything else (a foreign
    producer's record), so a worker can reject it instead of failing on it later.
    """
    try:
        obj = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}"[:200]) from None
    items = obj if isinstance(obj, list) else [obj]
    for i, o in enumerate(items):
        _check_record(o, i)
    return [Fix.from_obj(o) for o in items]


_NUMBER = (float, int)
_OPTIONAL = (("speed_kmh", (float, int, type(None))), ("heading", (float, int, type(None))),
             ("accuracy_m", (float, int, type(None))), ("alarm_flags", (int, type(None))),
             ("status_flags", (int, type(None))), ("valid", (bool, type(None))), ("class", (str, type(None))),
             ("received_at", (float, int, type(None))), ("source", (str, type(None))))


def _check_record(o: Any, i: int) -> None:
    """The types ``Fix.to_json`` writes (JSON has no NaN, so numbers are finite); cheap on the hot path."""
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
