"""Zones as the map draws them: GeoJSON features in WGS-84 with their true shape.

A circle (Point + ``radius_m``) and a corridor (LineString + ``width_m``) are
buffered in the city's metric CRS by the function the zone index uses
(:func:`engine.geo.areas.projected_area`, with fewer segments per circle and
simplified to ``SIMPLIFY_M``: a drawing, not a check), then brought back to
WGS-84, so what the operator sees is the area that is checked. Records are
validated by the geofence's published zone model
(:func:`engine.geofence.zone_models.zone_from_record`). Grid boundaries
(``"rule": "grid"``, no geofence rule) come from the grid files the reports
service uses (:func:`grid_zones`), or from the zones topic should one be put
there; they are drawn as written.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from engine.core.errors import ZoneFileError
from engine.geo.areas import projected_area
from engine.geo.geojson import feature_id
from engine.geo.projection import geometry_to_lonlat
from engine.geofence.zone_models import Zone, zone_from_record

QUAD_SEGS = 16
SIMPLIFY_M = 1.0


class DisplayZone:
    """One zone ready to draw; ``active(now)`` says whether its schedule is open."""

    __slots__ = ("id", "zone", "feature")

    def __init__(self, zone_id: str, zone: Zone | None, feature: dict[str, Any]):
        self.id, self.zone, self.feature = zone_id, zone, feature

    def active(self, now: float) -> bool:
        if self.zone is None:
            return True
        return self.zone.schedule.active(datetime.fromtimestamp(now, UTC))

    def to_feature(self, now: float) -> dict[str, Any]:
        f = dict(self.feature)
        f["properties"] = {**f["properties"], "active": self.active(now)}
        return f


def display_zones(records: Iterable[tuple[str, bytes]], *, tz: str, crs: str) -> tuple[list[DisplayZone], list[str]]:
    """Zone records (``zones`` topic values) -> zones to draw, sorted by id, and errors for records skipped."""
    out, errors = [], []
    for zone_id, value in records:
        try:
            out.append(display_zone(zone_id, value, tz=tz, crs=crs))
        except (ZoneFileError, ValueError, TypeError, KeyError, orjson.JSONDecodeError) as exc:
            errors.append(f"{zone_id}: {exc}")
    out.sort(key=lambda z: z.id)
    return out, errors


def display_zone(zone_id: str, value: bytes, *, tz: str, crs: str) -> DisplayZone:
    rec = orjson.loads(value)
    feature = rec.get("feature") if isinstance(rec, dict) else None
    props = feature.get("properties") if isinstance(feature, dict) else None
    if isinstance(feature, dict) and isinstance(props, dict) and props.get("rule") == "grid":
        return _grid(zone_id, feature)
    zone = zone_from_record(zone_id, rec, tz=tz)
    geometry = _area_wgs84(zone, crs)
    properties = {"id": zone.id, "name": zone.name, "rule": zone.rule, "severity": zone.severity,
                  "classes": sorted(zone.classes) if zone.classes is not None else None,
                  "exempt": sorted(zone.exempt), "speed_limit_kmh": zone.speed_limit_kmh,
                  "scheduled": bool(zone.schedule.windows)}
    return DisplayZone(zone.id, zone, {"type": "Feature", "id": zone.id, "properties": properties,
                                       "geometry": _rounded(geometry)})


def grid_zones(path: str | Path) -> tuple[list[DisplayZone], list[str]]:
    """Grid boundaries (``"rule": "grid"`` features, e.g. ``reports.grid_dir``) to draw; errors for ones skipped.

    A missing folder gives no grid (the toggle then shows none); a bad feature is skipped, the rest drawn.
    """
    root = Path(path)
    files = sorted(root.glob("*.geojson")) if root.is_dir() else [root] if root.is_file() else []
    out, errors = [], []
    for f in files:
        try:
            features = orjson.loads(f.read_bytes())["features"]
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            errors.append(f"{f}: not a GeoJSON FeatureCollection ({exc})")
            continue
        for i, feature in enumerate(features):
            try:
                props = feature["properties"]
                if props.get("rule") != "grid":
                    raise ValueError(f"rule is {props.get('rule')!r}, not 'grid'")
                unit_id = feature_id(feature)
                if unit_id is None:
                    raise ValueError("no id (properties.id or the Feature's id)")
                out.append(_grid(str(unit_id), feature))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                errors.append(f"{f} feature #{i}: {exc}")
    out.sort(key=lambda z: z.id)
    return out, errors


def _grid(zone_id: str, feature: dict[str, Any]) -> DisplayZone:
    props = feature["properties"]
    if (feature_id(feature) or zone_id) != zone_id:
        raise ValueError(f"record key {zone_id!r} differs from the feature's id {feature_id(feature)!r}")
    geometry = shape(feature["geometry"])
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or not geometry.is_valid:
        raise ValueError(f"grid {zone_id!r}: geometry must be a valid Polygon or MultiPolygon")
    properties = {"id": zone_id, "name": str(props.get("name") or zone_id), "rule": "grid", "severity": "info",
                  "code": props.get("code") or props.get("grid_code"), "level": props.get("level")}
    return DisplayZone(zone_id, None, {"type": "Feature", "id": zone_id, "properties": properties,
                                       "geometry": _rounded(geometry)})


def _area_wgs84(zone: Zone, crs: str) -> BaseGeometry:
    """A polygon as written; a circle or corridor as its area, drawn in lon/lat."""
    if zone.radius_m is None and zone.width_m is None:
        return zone.geometry
    area = projected_area(zone.geometry, crs, radius_m=zone.radius_m, width_m=zone.width_m, quad_segs=QUAD_SEGS)
    return geometry_to_lonlat(shapely.simplify(area, SIMPLIFY_M), crs)


def _rounded(geometry: BaseGeometry) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(mapping(shapely.transform(geometry, lambda xy: np.round(xy, 6)))))  # lists, not tuples
