"""GeoJSON (RFC 7946) Feature ids and geometry objects, validated into shapely.

Zone files and grid files are GeoJSON written by hand or by a GIS export, so every problem is reported with
the path of the member at fault (``geometry.coordinates[0][3]``) for the caller to put in front of the file
and feature. A geometry is refused before it is built when it has more positions than the caller allows: a
bad file can be megabytes, and shapely and the ``STRtree`` should never see it.
"""

from __future__ import annotations

import math
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from engine.core.errors import CitywatchError

# GeoJSON type -> nesting depth of its "coordinates" (0 = one position).
GEOMETRY_TYPES = {"Point": 0, "LineString": 1, "Polygon": 2, "MultiPolygon": 3}


class GeometryError(CitywatchError, ValueError):
    """A GeoJSON geometry is not valid; ``field`` is the path of the bad member, ``reason`` what is wrong."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def feature_id(feature: Any) -> str | None:
    """A Feature's id: ``properties.id``, else the Feature's own top-level ``id`` (RFC 7946 section 3.2: a
    string or a number; a number is taken as its decimal text). None when neither is there.

    Raises :class:`ValueError` when both are given and differ, or the top-level one is neither string nor number.

    >>> feature_id({"type": "Feature", "id": 7, "properties": {}})
    '7'
    """
    if not isinstance(feature, dict):
        return None
    props = feature.get("properties")
    inner = props.get("id") if isinstance(props, dict) else None
    outer = feature.get("id")
    if outer is not None:
        if isinstance(outer, bool) or not isinstance(outer, (str, int, float)):
            raise ValueError(f"a Feature's id is a string or a number, got {_short(outer)}")
        if isinstance(outer, float):
            outer = int(outer) if outer.is_integer() else repr(outer)
        outer = str(outer)
    if inner is not None and outer is not None and inner != outer:
        raise ValueError(f"the Feature's id {outer!r} and properties.id {_short(inner)} differ")
    return inner if inner is not None else outer


def parse_geometry(raw: Any, *, max_positions: int, limit_name: str = "max_positions") -> BaseGeometry:
    """A Feature's ``geometry`` member -> a valid shapely Point, LineString, Polygon or MultiPolygon in lon/lat.

    Positions must be ``[lon, lat]`` (an altitude is dropped) within WGS-84 bounds, rings closed with at
    least four positions, a LineString of non-zero length, polygons valid. ``limit_name`` names the limit in
    the message, so an operator knows which setting to raise.

    >>> parse_geometry({"type": "Point", "coordinates": [118.1, 24.5, 3.0]}, max_positions=10).wkt
    'POINT (118.1 24.5)'

    Raises
    ------
    GeometryError
        Naming the member (``geometry``, ``geometry.type``, ``geometry.coordinates[i]...``) and the problem.
    """
    if not isinstance(raw, dict):
        raise GeometryError("geometry", "missing or not an object")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in GEOMETRY_TYPES:
        raise GeometryError("geometry.type", f"{str(kind)[:40]!r} not supported; use {', '.join(GEOMETRY_TYPES)}")
    n = _count_positions(raw.get("coordinates"), GEOMETRY_TYPES[kind])
    if n > max_positions:
        raise GeometryError("geometry.coordinates", f"{n} positions > limit {limit_name} ({max_positions})")
    coords = _coordinates(raw.get("coordinates"), GEOMETRY_TYPES[kind], "geometry.coordinates")
    if kind == "Point":
        return shapely.Point(coords)
    if kind == "LineString":
        line = _line(coords, 2, "geometry.coordinates")
        if line.length == 0:
            raise GeometryError("geometry.coordinates", "LineString has zero length")
        return line
    if kind == "Polygon":
        geometry: BaseGeometry = _polygon(coords, "geometry.coordinates")
    else:
        if not coords:
            raise GeometryError("geometry.coordinates", "MultiPolygon has no polygons")
        where = "geometry.coordinates[{}]"
        geometry = shapely.MultiPolygon([_polygon(p, where.format(i)) for i, p in enumerate(coords)])
    if not shapely.is_valid(geometry):
        raise GeometryError("geometry", f"invalid polygon: {shapely.is_valid_reason(geometry)}")
    return geometry


def _short(value: Any) -> str:
    """``repr`` cut to a readable length (a bad value can be megabytes)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _polygon(rings: list[Any], where: str) -> shapely.Polygon:
    if not rings:
        raise GeometryError(where, "Polygon has no rings")
    closed = [_line(ring, 4, f"{where}[{i}]") for i, ring in enumerate(rings)]
    for i, ring in enumerate(closed):
        if not ring.is_closed:
            raise GeometryError(f"{where}[{i}]", "ring is not closed (first position != last)")
    return shapely.Polygon(closed[0].coords, [r.coords for r in closed[1:]])


def _line(positions: list[Any], minimum: int, where: str) -> shapely.LineString:
    if len(positions) < minimum:
        raise GeometryError(where, f"needs at least {minimum} positions, got {len(positions)}")
    return shapely.LineString(positions)


def _count_positions(raw: Any, depth: int) -> int:
    """Positions in a coordinates array of the given nesting (anything malformed counts 0 or 1: checked later)."""
    if depth == 0 or not isinstance(raw, list):
        return 1
    return sum(_count_positions(item, depth - 1) for item in raw) if depth > 1 else len(raw)


def _coordinates(raw: Any, depth: int, where: str) -> Any:
    """Check nesting and every position; return nested lists of (lon, lat)."""
    if depth == 0:
        return _position(raw, where)
    if not isinstance(raw, list):
        raise GeometryError(where, "must be a list")
    return [_coordinates(item, depth - 1, f"{where}[{i}]") for i, item in enumerate(raw)]


def _position(raw: Any, where: str) -> tuple[float, float]:
    if not isinstance(raw, list) or len(raw) not in (2, 3):
        raise GeometryError(where, f"a position must be [lon, lat], got {_short(raw)}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        raise GeometryError(where, f"coordinates must be numbers, got {_short(raw)}")
    lon, lat = float(raw[0]), float(raw[1])
    if not (math.isfinite(lon) and -180 <= lon <= 180 and math.isfinite(lat) and -90 <= lat <= 90):
        raise GeometryError(where, f"[{lon}, {lat}] is outside WGS-84 lon [-180, 180], lat [-90, 90]")
    return lon, lat
