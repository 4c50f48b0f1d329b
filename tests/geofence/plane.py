"""Test helpers: zones and fixes placed in metres east/north of an origin near Xiamen.

Zones go through the real loader (GeoJSON -> ``parse_feature_collection``);
positions are converted with the inverse of the CRS the index uses, so
"15 m outside" in a test is 15 m outside in the engine.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pyproj import Transformer

from engine.core.clock import FakeClock
from engine.geofence.checker import BatchResult, ZoneChecker
from engine.geofence.index import ZoneIndex
from engine.geofence.zone_models import Zone, parse_feature_collection
from engine.settings import Settings
from engine.telemetry.models import Fix

TZ = "Asia/Shanghai"
CRS = "EPSG:4548"
T0 = datetime(2026, 9, 8, 10, 0, tzinfo=ZoneInfo(TZ)).timestamp()  # Tuesday 10:00, during CIFIT
ORIGIN = (118.02, 24.46)  # west of Xiamen Island, inside the city bounds

_TO_XY = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
_TO_LONLAT = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
X0, Y0 = _TO_XY.transform(*ORIGIN)


def lonlat(east: float, north: float) -> tuple[float, float]:
    lon, lat = _TO_LONLAT.transform(X0 + east, Y0 + north)
    return lon, lat


def ring(points: list[tuple[float, float]]) -> list[list[float]]:
    out = [list(lonlat(e, n)) for e, n in points]
    return out + [out[0]]


def rect(zone_id: str, e0: float, n0: float, e1: float, n1: float, **props: Any) -> dict:
    """A rectangular zone between (e0, n0) and (e1, n1) metres."""
    return feature(zone_id, {"type": "Polygon", "coordinates": [ring([(e0, n0), (e1, n0), (e1, n1), (e0, n1)])]},
                   **props)


def circle(zone_id: str, east: float, north: float, radius_m: float, **props: Any) -> dict:
    return feature(zone_id, {"type": "Point", "coordinates": list(lonlat(east, north))}, radius_m=radius_m, **props)


def road(zone_id: str, points: list[tuple[float, float]], width_m: float, **props: Any) -> dict:
    return feature(zone_id, {"type": "LineString", "coordinates": [list(lonlat(e, n)) for e, n in points]},
                   width_m=width_m, **props)


def feature(zone_id: str, geometry: dict, **props: Any) -> dict:
    props.setdefault("rule", "forbid")
    return {"type": "Feature", "geometry": geometry, "properties": {"id": zone_id, "name": zone_id.title(), **props}}


def load(*features: dict) -> list[Zone]:
    return parse_feature_collection({"type": "FeatureCollection", "features": list(features)}, source="t", tz=TZ)


def fix(vid: str, t: float, east: float, north: float, vclass: str = "hazmat", **kw: Any) -> Fix:
    """A fix ``t`` seconds after T0 at (east, north) metres."""
    lon, lat = lonlat(east, north)
    kw.setdefault("speed_kmh", 30.0)
    return Fix(vehicle_id=vid, ts=T0 + t, lat=lat, lon=lon, vclass=vclass, **kw)


class Run:
    """A checker plus the tracks table, fed batch by batch like the agent does."""

    def __init__(self, zones: list[Zone], settings: Settings | None = None, clock: FakeClock | None = None):
        self.clock = clock or FakeClock(T0)
        self.checker = ZoneChecker(ZoneIndex(zones, crs=CRS), tz=TZ, clock=self.clock, settings=settings)
        self.states: dict[str, dict] = {}
        self.alerts: list[dict] = []
        self.rejections: list = []

    def feed(self, *fixes: Fix, positions: list[tuple[int, int]] | None = None) -> BatchResult:
        res = self.checker.check(list(fixes), self.states, positions)
        self.states.update(res.states)
        self.alerts += res.alerts
        self.rejections += res.rejections
        return res

    def each(self, fixes: list[Fix]) -> list[dict]:
        """Feed one fix per batch; the alerts they raised."""
        out = []
        for f in fixes:
            out += self.feed(f).alerts
        return out

    def kinds(self, alerts: list[dict] | None = None) -> list[tuple[str, str]]:
        return [(a["kind"], a.get("zone_id") or a["vehicle_id"]) for a in (self.alerts if alerts is None else alerts)]
