"""The zone index: area j is zone j's true shape, and worked examples on the sample zones.

The queries themselves are tested against brute force in tests/geo/test_area_index.py.
"""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Point

from engine.geofence.index import ZoneIndex
from engine.geofence.zone_models import Zone, load_zone_dir, parse_feature_collection
from tests.geofence.reference import area_of

ZONES_DIR = Path(__file__).resolve().parents[2] / "zones"
TO_XY = Transformer.from_crs("EPSG:4326", "EPSG:4548", always_xy=True)


def make_zones(*geometries_and_props) -> list[Zone]:
    features = [
        {"type": "Feature", "geometry": geometry, "properties": {"id": f"z{i}", "rule": "forbid", **props}}
        for i, (geometry, props) in enumerate(geometries_and_props)
    ]
    return parse_feature_collection({"type": "FeatureCollection", "features": features}, source="t", tz="UTC")


def pairs(result):
    fix, zone = result[0], result[1]
    assert fix.dtype.kind == zone.dtype.kind == "i"
    return list(zip(fix.tolist(), zone.tolist(), strict=True))


@pytest.fixture(scope="module")
def sample():
    zones = load_zone_dir(ZONES_DIR)
    return ZoneIndex(zones), {z.id: i for i, z in enumerate(zones)}


def test_each_area_is_its_zones_shape_in_zone_order():
    zones = make_zones(
        ({"type": "LineString", "coordinates": [[118.0, 24.4], [118.01, 24.4]]}, {"width_m": 40}),
        ({"type": "Polygon", "coordinates": [[[118.0, 24.4], [118.01, 24.4], [118.01, 24.41], [118.0, 24.4]]]}, {}),
        ({"type": "Point", "coordinates": [118.185, 24.478]}, {"radius_m": 500}),
    )
    index = ZoneIndex(zones)
    assert index.zones == tuple(zones) and len(index) == 3
    for area, zone in zip(index.areas, zones, strict=True):
        assert shapely.hausdorff_distance(area, area_of(zone, TO_XY.transform)) < 1e-6


def test_a_zone_that_cannot_be_projected_is_named():
    [zone] = make_zones(({"type": "Point", "coordinates": [118.0, 24.4]}, {"radius_m": 10}))
    with pytest.raises(ValueError, match="zone 'z0' cannot be projected to EPSG:4548"):
        ZoneIndex([dataclasses.replace(zone, geometry=Point(math.nan, 24.4))])


def test_demo_truck_enters_haicang_tunnel(sample):
    index, ids = sample
    lon = np.arange(118.035, 118.0455, 0.001)
    x, y = index.project(lon, np.full(lon.shape, 24.4815))
    fix, zone = index.point_hits(x, y)
    inside = sorted(set(fix[zone == ids["haicang-tunnel"]].tolist()))
    assert inside and lon[inside[0]] >= 118.0399 and lon[inside[0] - 1] < 118.04
    assert inside == list(range(inside[0], len(lon)))


def test_segment_across_thin_zone_with_both_ends_outside_is_a_hit(sample):
    index, ids = sample
    # North -> south across the tunnel sliver (~170 m wide at lon 118.06), fixes 1 km apart.
    x, y = index.project(np.array([118.06, 118.06]), np.array([24.4870, 24.4780]))
    assert ids["haicang-tunnel"] not in index.point_hits(x, y)[1]
    fix, zone = index.segment_hits(x[:1], y[:1], x[1:], y[1:])
    assert ids["haicang-tunnel"] in zone.tolist() and set(fix.tolist()) == {0}


def test_degenerate_segment_is_a_point_and_nan_previous_is_skipped(sample):
    index, ids = sample
    tunnel = ids["haicang-tunnel"]
    x, y = index.project(np.array([118.06, 118.06, 118.06]), np.array([24.4815, 24.4900, 24.4815]))
    x0, y0 = x.copy(), y.copy()
    x0[2] = np.nan  # row 2 has no previous fix, though it is inside
    fix, zone = index.segment_hits(x0, y0, x, y)
    got = {(f, z) for f, z in pairs((fix, zone)) if z == tunnel}
    assert got == {(0, tunnel)}


def test_invalid_and_non_finite_fixes_never_hit(sample):
    index, ids = sample
    x, y = index.project(np.array([118.06, 118.06]), np.array([24.4815, 24.4815]))
    x[1] = np.nan
    fix, zone = index.point_hits(x, y)
    assert 1 not in fix.tolist() and (0, ids["haicang-tunnel"]) in pairs((fix, zone))
    f, z, d = index.distance_hits(x, y, np.array([10.0, 10.0]))
    assert 1 not in f.tolist() and d[pairs((f, z)).index((0, ids["haicang-tunnel"]))] == 0


def test_results_sorted_by_fix_then_zone_and_index_immutable(sample):
    index, ids = sample
    # A point inside the island, the Siming core and nothing else; repeated in reverse.
    x, y = index.project(np.array([118.10, 118.06, 118.10]), np.array([24.455, 24.4815, 24.455]))
    got = pairs(index.point_hits(x, y))
    assert got == sorted(got)
    assert (0, ids["xiamen-island"]) in got and (0, ids["siming-core-hazmat-daytime"]) in got
    assert isinstance(index.zones, tuple) and len(index) == len(index.zones) == len(index.areas)
    with pytest.raises(ValueError):
        index.areas[0] = None


def test_no_zones():
    empty = np.array([])
    index = ZoneIndex([])
    assert len(index) == 0 and index.zones == () and pairs(index.point_hits(empty, empty)) == []
