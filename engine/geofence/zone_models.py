"""The geofence's published zone model: :class:`Zone`, and zone files and zone records validated into zones.

Other domains may import this module (the one-map draws zones from their records) and nothing else of the
geofence's: how zones are indexed, checked and kept on the ``zones`` topic is the geofence's own business.

Every problem raises :class:`~engine.core.errors.ZoneFileError` naming the file
(or the record), the feature (its id, or ``#index`` when the id is unusable) and the field.
Loading is all-or-nothing: a bad file yields no zones at all. Size limits
(``zones.max_file_bytes``, ``max_features``, ``max_vertices``) are enforced
with an error naming the limit. Geometry is validated by :mod:`engine.geo.geojson`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from shapely.geometry.base import BaseGeometry

from engine.core.errors import ZoneFileError
from engine.geo.geojson import GeometryError, feature_id, parse_geometry
from engine.geofence.schedule import Schedule, ScheduleError, parse_schedule, resolve_tz
from engine.geofence.settings import ZonesSettings

RULES = ("forbid", "speed", "corridor", "watch")
SEVERITIES = ("info", "warning", "critical")
DEFAULT_SEVERITY = {"forbid": "critical", "speed": "warning", "corridor": "warning", "watch": "info"}
DEFAULT_TZ = "Asia/Shanghai"


@dataclass(frozen=True)
class Zone:
    """One validated zone; ``geometry`` is WGS-84 lon/lat exactly as written in the file."""

    id: str
    name: str
    rule: str
    classes: frozenset[str] | None  # None = applies to every class
    exempt: frozenset[str]
    schedule: Schedule
    severity: str
    geometry: BaseGeometry  # Polygon, MultiPolygon, Point (circle) or LineString (corridor)
    radius_m: float | None
    width_m: float | None
    speed_limit_kmh: float | None
    approach_m: float | None
    dwell_s: float | None
    source: str
    dwell_repeat_s: float | None = None  # repeat zone.dwell this often while the violation lasts
    vehicles: frozenset[str] | None = None  # corridor: the vehicles assigned to the route

    def applies_to(self, vehicle_class: str) -> bool:
        """Whether the rule concerns ``vehicle_class`` (``exempt`` wins over ``classes``)."""
        if vehicle_class in self.exempt:
            return False
        return self.classes is None or vehicle_class in self.classes

    def applies(self, vehicle_id: str, vehicle_class: str) -> bool:
        """Whether the rule concerns this vehicle: its class, and for a corridor its assignment."""
        if self.vehicles is not None and vehicle_id not in self.vehicles:
            return False
        return self.applies_to(vehicle_class)


class _Invalid(Exception):
    """A feature problem before the file and feature are known."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


def load_zone_dir(path: str | PathLike[str], *, tz: str | ZoneInfo = DEFAULT_TZ,
                  limits: ZonesSettings | None = None) -> list[Zone]:
    """Load every ``*.geojson`` in a directory (sorted by name), or one file.

    Zone ids must be unique across the whole set.

    Raises
    ------
    ZoneFileError
        On the first problem in any file; nothing is returned.
    ValueError
        If ``tz`` is not a known time zone.
    """
    root = Path(path)
    if root.is_file():
        return load_zone_file(root, tz=tz, limits=limits)
    if not root.is_dir():
        raise ZoneFileError(str(root), "no such file or directory")
    zones: list[Zone] = []
    seen: dict[str, str] = {}
    for file in sorted(root.glob("*.geojson")):
        for zone in load_zone_file(file, tz=tz, limits=limits):
            if zone.id in seen:
                raise ZoneFileError(str(file), f"duplicate id, already defined in {seen[zone.id]}", zone.id, "id")
            seen[zone.id] = zone.source
            zones.append(zone)
    return zones


def load_zone_file(path: str | PathLike[str], *, tz: str | ZoneInfo = DEFAULT_TZ,
                   limits: ZonesSettings | None = None) -> list[Zone]:
    """Load one GeoJSON FeatureCollection file."""
    source, limits = str(path), limits or ZonesSettings()
    try:
        size = Path(path).stat().st_size
        if size > limits.max_file_bytes:
            raise ZoneFileError(source, f"file is {size} bytes > limit zones.max_file_bytes ({limits.max_file_bytes})")
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ZoneFileError(source, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ZoneFileError(source, f"not UTF-8 text (byte {exc.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ZoneFileError(source, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ZoneFileError(source, "invalid JSON: nested too deeply") from None
    return parse_feature_collection(obj, source=source, tz=tz, limits=limits)


def parse_feature_collection(obj: Any, *, source: str, tz: str | ZoneInfo = DEFAULT_TZ,
                             limits: ZonesSettings | None = None) -> list[Zone]:
    """Validate a decoded FeatureCollection into zones (ids unique within it)."""
    zone_tz, limits = resolve_tz(tz), limits or ZonesSettings()
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
        raise ZoneFileError(source, "not a GeoJSON FeatureCollection", field="type")
    features = obj.get("features")
    if not isinstance(features, list):
        raise ZoneFileError(source, "'features' must be a list", field="features")
    if len(features) > limits.max_features:
        raise ZoneFileError(source, f"{len(features)} features > limit zones.max_features ({limits.max_features})",
                            field="features")
    zones: list[Zone] = []
    first_seen: dict[str, int] = {}
    for index, feature in enumerate(features):
        label = _label(feature, index)
        try:
            zone = _parse_feature(feature, source, zone_tz, limits.max_vertices)
        except (_Invalid, GeometryError) as exc:
            raise ZoneFileError(source, exc.reason, label, exc.field) from None
        if zone.id in first_seen:
            reason = f"duplicate id {zone.id!r}, first used by feature #{first_seen[zone.id]}"
            raise ZoneFileError(source, reason, f"#{index}", "id")
        first_seen[zone.id] = index
        zones.append(zone)
    return zones


def zone_from_record(zone_id: str, value: Mapping[str, Any] | bytes, *, tz: str) -> Zone:
    """One record of the ``zones`` topic -> :class:`Zone`, validated as a zone file's feature would be.

    The record (``{"feature": <GeoJSON Feature>, "source": <file>, ...}``, written by
    :mod:`engine.geofence.zone_store`) is the contract by which other domains see the zones; it lives here
    beside the model so they need nothing else of the geofence's. Raises :class:`ZoneFileError` if it is not
    valid, or if ``zone_id`` (the record's key) is not the feature's id.
    """
    rec = orjson.loads(value) if isinstance(value, (bytes, str)) else value
    if not isinstance(rec, Mapping) or not isinstance(rec.get("feature"), Mapping):
        raise ZoneFileError(f"zones topic key {zone_id}", "record has no 'feature' object")
    source = str(rec.get("source") or f"zones topic key {zone_id}")
    [zone] = parse_feature_collection({"type": "FeatureCollection", "features": [rec["feature"]]},
                                      source=source, tz=tz)
    if zone.id != zone_id:
        raise ZoneFileError(source, f"record key {zone_id!r} differs from the feature's id {zone.id!r}",
                            feature=zone.id, field="properties.id")
    return zone


def _label(feature: Any, index: int) -> str:
    try:
        zone_id = feature_id(feature)
    except ValueError:
        zone_id = None
    return zone_id if isinstance(zone_id, str) and zone_id.strip() else f"#{index}"


def _parse_feature(feature: Any, source: str, tz: ZoneInfo, max_vertices: int) -> Zone:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise _Invalid("type", "not a GeoJSON Feature")
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise _Invalid("properties", "missing or not an object")
    try:
        zone_id = feature_id(feature)
    except ValueError as exc:
        raise _Invalid("id", str(exc)) from None
    if not isinstance(zone_id, str) or not zone_id.strip():
        raise _Invalid("id", "required, a non-empty string (properties.id or the Feature's id)")
    name = props.get("name", zone_id)
    if not isinstance(name, str):
        raise _Invalid("name", "must be a string")
    rule = props.get("rule")
    if rule not in RULES:
        raise _Invalid("rule", f"{rule!r} is not one of {', '.join(RULES)}")
    severity = props.get("severity", DEFAULT_SEVERITY[rule])
    if severity not in SEVERITIES:
        raise _Invalid("severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
    numbers = {
        key: _number(props, key, positive=key in ("radius_m", "width_m", "speed_limit_kmh"))
        for key in ("radius_m", "width_m", "speed_limit_kmh", "approach_m", "dwell_s")
    }
    if rule == "speed" and numbers["speed_limit_kmh"] is None:
        raise _Invalid("speed_limit_kmh", "required for rule 'speed'")
    dwell_repeat_s = _number(props, "dwell_repeat_s", positive=True)
    vehicles = _vehicle_ids(props.get("vehicles"))
    if rule == "corridor" and vehicles is None:
        raise _Invalid("vehicles", "required for rule 'corridor': the ids of the vehicles assigned to the route")
    if rule != "corridor" and vehicles is not None:
        raise _Invalid("vehicles", f"only a corridor zone takes vehicles, not rule {rule!r}")
    geometry = parse_geometry(feature.get("geometry"), max_positions=max_vertices, limit_name="zones.max_vertices")
    _check_sizes(geometry.geom_type, numbers["radius_m"], numbers["width_m"])
    try:
        schedule = parse_schedule(props.get("schedule"), tz)
    except ScheduleError as exc:
        raise _Invalid(exc.field, exc.reason) from None
    return Zone(
        id=zone_id,
        name=name,
        rule=rule,
        classes=_classes(props, "classes", allow_empty=False),
        exempt=_classes(props, "exempt", allow_empty=True) or frozenset(),
        schedule=schedule,
        severity=severity,
        geometry=geometry,
        source=source,
        dwell_repeat_s=dwell_repeat_s,
        vehicles=vehicles,
        **numbers,
    )


def _number(props: dict, key: str, *, positive: bool) -> float | None:
    value = props.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Invalid(key, f"must be a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise _Invalid(key, f"must be {'positive' if positive else 'non-negative'}, got {value!r}")
    return float(value)


def _classes(props: dict, key: str, *, allow_empty: bool) -> frozenset[str] | None:
    value = props.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _Invalid(key, "must be a list of non-empty strings")
    if not value and not allow_empty:
        raise _Invalid(key, "empty list matches no vehicle; omit it to apply to all classes")
    return frozenset(value)


def _vehicle_ids(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise _Invalid("vehicles", "must be a non-empty list of vehicle ids (strings)")
    return frozenset(value)


def _check_sizes(kind: str, radius_m: float | None, width_m: float | None) -> None:
    if kind == "Point" and radius_m is None:
        raise _Invalid("radius_m", "a Point zone needs a positive radius_m (a circle)")
    if kind != "Point" and radius_m is not None:
        raise _Invalid("radius_m", f"only a Point zone takes radius_m, not a {kind}")
    if kind == "LineString" and width_m is None:
        raise _Invalid("width_m", "a LineString zone needs a positive width_m (a corridor)")
    if kind != "LineString" and width_m is not None:
        raise _Invalid("width_m", f"only a LineString zone takes width_m, not a {kind}")
