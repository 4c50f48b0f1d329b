"""The city's grid at four levels (community, street, district, city), looked up by location.

Grid files are GeoJSON FeatureCollections (``reports.grid_dir``, default
``zones/grid/``) of Polygon / MultiPolygon features with properties
``"rule": "grid"``, ``level`` and ``code`` (city 4 digits, district 6, street
9, community 12) and ``name``. ``"rule": "grid"`` is no geofence
rule, so a grid file handed to ``citywatch zones load`` is refused by name and
can never raise a vehicle alert; the geofence's ``zones.dir`` is not searched
recursively, so ``zones/grid/`` is not read by it either.

Geometry is validated as a zone's is (:func:`engine.geo.geojson.parse_geometry`)
and indexed as zones are (:class:`engine.geo.area_index.AreaIndex`, an ``STRtree``);
:meth:`Grid.locate` takes the lowest-level unit containing the point and fills
the levels above from its code (codes are hierarchical: a community's first 9
digits are its street's code), so a slightly sloppy outline never places a
report in a street of another district.

>>> grid = load_grid("zones/grid")                       # doctest: +SKIP
>>> grid.locate(24.4705, 118.1113).codes                  # doctest: +SKIP
{'community': '350203004001', 'street': '350203004', 'district': '350203', 'city': '3502'}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from shapely.geometry.base import BaseGeometry

from engine.core.errors import ZoneFileError
from engine.geo.area_index import AreaIndex
from engine.geo.areas import projected_area
from engine.geo.geojson import GeometryError, feature_id, parse_geometry

LEVELS = ("community", "street", "district", "city")  # lowest first: the order tasks escalate in
CODE_DIGITS = {"city": 4, "district": 6, "street": 9, "community": 12}
MAX_UNITS = 50_000  # per file: a zone file's default limit (zones.max_features)
MAX_POSITIONS = 20_000  # per unit: a zone's default limit (zones.max_vertices), so no outline swamps the index


@dataclass(frozen=True)
class GridUnit:
    code: str
    name: str
    level: str

    @property
    def parent_code(self) -> str | None:
        """The code of the unit one level up (``None`` for the city)."""
        i = LEVELS.index(self.level)
        return None if self.level == "city" else self.code[:CODE_DIGITS[LEVELS[i + 1]]]


@dataclass(frozen=True)
class Placement:
    """Where a point lies: the units containing it, lowest level first."""

    units: tuple[GridUnit, ...] = ()

    @property
    def codes(self) -> dict[str, str]:
        return {u.level: u.code for u in self.units}

    @property
    def names(self) -> dict[str, str]:
        return {u.level: u.name for u in self.units}

    @property
    def lowest(self) -> str | None:
        return self.units[0].level if self.units else None


@dataclass
class Grid:
    """Immutable grid: units by code and an index over their areas (projected to ``crs``)."""

    units: tuple[GridUnit, ...]
    index: AreaIndex  # area i is units[i]
    by_code: dict[str, GridUnit] = field(init=False)

    def __post_init__(self) -> None:
        self.by_code = {u.code: u for u in self.units}

    def __len__(self) -> int:
        return len(self.units)

    def project(self, lat: float, lon: float) -> tuple[float, float]:
        x, y = self.index.project(np.array([lon]), np.array([lat]))
        return float(x[0]), float(y[0])

    def locate(self, lat: float, lon: float) -> Placement:
        """The units containing ``(lat, lon)``: the lowest hit and its ancestors by code."""
        x, y = self.index.project(np.array([lon]), np.array([lat]))
        _, area_idx = self.index.point_hits(x, y)
        hits = [self.units[i] for i in area_idx]
        if not hits:
            return Placement()
        # On a shared border a point is in both neighbours: the smallest code wins, every time.
        lowest = min(hits, key=lambda u: (LEVELS.index(u.level), u.code))
        chain = [lowest]
        while (parent := chain[-1].parent_code) is not None and parent in self.by_code:
            chain.append(self.by_code[parent])
        return Placement(tuple(chain))

    def ancestors(self, code: str) -> list[GridUnit]:
        """The unit of ``code`` and every unit above it."""
        out = []
        unit = self.by_code.get(code)
        while unit is not None:
            out.append(unit)
            parent = unit.parent_code
            unit = self.by_code.get(parent) if parent else None
        return out


def load_grid(path: str | PathLike[str], *, crs: str = "EPSG:4548") -> Grid:
    """Load every ``*.geojson`` grid file in a folder (or one file); all-or-nothing.

    Raises
    ------
    ZoneFileError
        Naming the file, the feature and the field of the first problem.
    """
    root = Path(path)
    files = sorted(root.glob("*.geojson")) if root.is_dir() else [root]
    if not root.exists():
        raise ZoneFileError(str(root), "no such file or directory (setting reports.grid_dir)")
    features: list[_GridFeature] = []
    seen: dict[str, str] = {}
    for f in files:
        for feature in _load_file(f):
            code = feature.unit.code
            if code in seen:
                raise ZoneFileError(feature.source, f"grid code {code} already defined in {seen[code]}",
                                    feature.label, "code")
            seen[code] = feature.source
            features.append(feature)
    for feature in features:
        unit, parent = feature.unit, feature.unit.parent_code
        if parent is not None and parent not in seen:
            raise ZoneFileError(feature.source, f"{unit.level} {unit.code} lies in {parent}, which is not in the grid",
                                feature.label, "code")
    areas = [projected_area(feature.geometry, crs) for feature in features]
    return Grid(tuple(feature.unit for feature in features), AreaIndex(areas, crs))


class _GridFeature(NamedTuple):
    unit: GridUnit
    geometry: BaseGeometry  # lon/lat
    id: str | None
    label: str  # the feature in error messages: its id, else its code, else #index
    source: str


def _load_file(path: Path) -> list[_GridFeature]:
    """The features of one grid file, validated (ids unique within the file, as in a zone file)."""
    source = str(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ZoneFileError(source, f"cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ZoneFileError(source, f"not a JSON text: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("features"), list):
        raise ZoneFileError(source, "not a GeoJSON FeatureCollection with a 'features' list", field="features")
    if len(obj["features"]) > MAX_UNITS:
        raise ZoneFileError(source, f"{len(obj['features'])} features > limit {MAX_UNITS} grid units per file",
                            field="features")
    out: list[_GridFeature] = []
    first_seen: dict[str, int] = {}
    for i, raw in enumerate(obj["features"]):
        feature = _grid_feature(raw, i, source)
        if feature.id is not None and feature.id in first_seen:
            raise ZoneFileError(source, f"duplicate id {feature.id!r}, first used by feature #{first_seen[feature.id]}",
                                f"#{i}", "id")
        if feature.id is not None:
            first_seen[feature.id] = i
        out.append(feature)
    return out


def _grid_feature(feature: Any, index: int, source: str) -> _GridFeature:
    props = feature.get("properties") if isinstance(feature, dict) else None
    label = f"#{index}"
    if not isinstance(props, dict):
        raise ZoneFileError(source, "missing or not an object", label, "properties")
    try:
        raw_id = feature_id(feature)
    except ValueError as exc:
        raise ZoneFileError(source, str(exc), label, "id") from None
    unit_id = str(raw_id) if raw_id else None
    label = unit_id or str(props.get("code") or label)
    if props.get("rule") != "grid":
        raise ZoneFileError(source, f"a grid feature needs \"rule\": \"grid\", got {props.get('rule')!r}", label,
                            "rule")
    level = props.get("level")
    if level not in LEVELS:
        raise ZoneFileError(source, f"{level!r} is not one of {', '.join(LEVELS)}", label, "level")
    code = props.get("code")
    if not isinstance(code, str) or not code.isdigit() or len(code) != CODE_DIGITS[level]:
        raise ZoneFileError(source, f"a {level} code is {CODE_DIGITS[level]} digits, got {code!r}", label, "code")
    name = props.get("name", code)
    if not isinstance(name, str) or not name.strip():
        raise ZoneFileError(source, "must be a non-empty string", label, "name")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        kind = geometry.get("type") if isinstance(geometry, dict) else None
        raise ZoneFileError(source, f"a grid unit is a Polygon or MultiPolygon, got {kind!r}", label, "geometry.type")
    try:
        area = parse_geometry(geometry, max_positions=MAX_POSITIONS, limit_name="of a grid unit")
    except GeometryError as exc:
        raise ZoneFileError(source, exc.reason, label, exc.field) from None
    return _GridFeature(GridUnit(code=code, name=name, level=level), area, unit_id, label, source)
