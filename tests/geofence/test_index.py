import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod, Transformer
from shapely.geometry import LineString, Point

from engine.geofence.index import ZoneIndex
from engine.geofence.zones import Zone, load_zone_dir, parse_feature_collection
from tests.geofence.reference import area_of

ZONES_DIR = Path(__file__).resolve().parents[2] / "zones"
# Independent reference projection: scalar pyproj calls, one coordinate at a time.
TO_XY = Transformer.from_crs("EPSG:4326", "EPSG:4548", always_xy=True)
# Random zones and fixes live in a ~6 x 5.5 km box west of Xiamen Island.
LON0, LON1, LAT0, LAT1 = 118.00, 118.06, 24.45, 24.50
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_zones(*geometries_and_props) -> list[Zone]:
    features = [
        {"type": "Feature", "geometry": geometry, "properties": {"id": f"z{i}", "rule": "forbid", **props}}
        for i, (geometry, props) in enumerate(geometries_and_props)
    ]
    return parse_feature_collection({"type": "FeatureCollection", "features": features}, source="t", tz="UTC")


def xy(lon, lat):
    return TO_XY.transform(lon, lat)


def reference_area(zone: Zone):
    """The zone's area in metres, built without the index's code."""
    return area_of(zone, xy)


def brute_force(zones, geometries):
    """Every (row, zone) pair whose geometry intersects the zone area; None rows skipped."""
    areas = [reference_area(z) for z in zones]
    return [
        (i, j)
        for i, geometry in enumerate(geometries)
        if geometry is not None
        for j, area in enumerate(areas)
        if area.intersects(geometry)
    ]


def pairs(result):
    fix, zone = result[0], result[1]
    assert fix.dtype.kind == zone.dtype.kind == "i"
    return list(zip(fix.tolist(), zone.tolist(), strict=True))


# --- hypothesis strategies: zones as GeoJSON, through the real loader ---------------------

lons = st.floats(LON0, LON1)
lats = st.floats(LAT0, LAT1)


@st.composite
def star(draw, lon, lat, r_min, r_max, n_min=5, n_max=10):
    """A simple star-shaped ring around (lon, lat): increasing angles, gaps < 180 degrees."""
    n = draw(st.integers(n_min, n_max))
    fractions = draw(st.lists(st.floats(0, 0.99), min_size=n, max_size=n))
    radii = draw(st.lists(st.floats(r_min, r_max), min_size=n, max_size=n))
    ring = [
        [lon + r * math.cos(2 * math.pi * (k + f) / n), lat + r * math.sin(2 * math.pi * (k + f) / n)]
        for k, (f, r) in enumerate(zip(fractions, radii, strict=True))
    ]
    return ring + [ring[0]], min(radii)


@st.composite
def polygon_rings(draw, lon, lat):
    shell, r_min = draw(star(lon, lat, 0.001, 0.01))
    if not draw(st.booleans()):
        return [shell]
    hole, _ = draw(star(lon, lat, 0.1 * r_min, 0.28 * r_min, n_min=3, n_max=6))
    return [shell, hole[::-1]]


@st.composite
def zone_geometry(draw):
    kind = draw(st.sampled_from(["polygon", "multipolygon", "circle", "corridor"]))
    lon, lat = draw(lons), draw(lats)
    if kind == "polygon":
        return {"type": "Polygon", "coordinates": draw(polygon_rings(lon, lat))}, {}
    if kind == "multipolygon":
        parts = [draw(polygon_rings(lon, lat)), draw(polygon_rings(lon + 0.025, lat))]
        return {"type": "MultiPolygon", "coordinates": parts}, {}
    if kind == "circle":
        return {"type": "Point", "coordinates": [lon, lat]}, {"radius_m": draw(st.floats(5, 1500))}
    steps = draw(st.lists(st.tuples(st.floats(-0.01, 0.01), st.floats(-0.01, 0.01)), min_size=1, max_size=4))
    coords = [[lon, lat]]
    for dlon, dlat in steps:
        coords.append([coords[-1][0] + dlon, coords[-1][1] + dlat])
    if LineString(coords).length == 0:
        coords[-1][0] += 0.001
    return {"type": "LineString", "coordinates": coords}, {"width_m": draw(st.floats(1, 200))}


zone_sets = st.lists(zone_geometry(), min_size=0, max_size=8).map(lambda gs: make_zones(*gs))
fixes = st.lists(st.tuples(lons, lats), max_size=40)


@st.composite
def segments(draw):
    """Rows (lon0, lat0, lon1, lat1): moving, standing still, or with no previous fix (NaN)."""
    rows = []
    for _ in range(draw(st.integers(0, 40))):
        lon1, lat1 = draw(lons), draw(lats)
        kind = draw(st.sampled_from(["move", "move", "short", "still", "first"]))
        if kind == "move":
            rows.append((draw(lons), draw(lats), lon1, lat1))
        elif kind == "short":
            rows.append((lon1 + draw(st.floats(-0.003, 0.003)), lat1 + draw(st.floats(-0.003, 0.003)), lon1, lat1))
        elif kind == "still":
            rows.append((lon1, lat1, lon1, lat1))
        else:
            rows.append((math.nan, math.nan, lon1, lat1))
    return rows


# --- property tests against brute force --------------------------------------------------


@PROPERTY
@given(zones=zone_sets, points=fixes)
def test_point_hits_equal_brute_force(zones, points):
    index = ZoneIndex(zones)
    lon, lat = (np.array([p[i] for p in points], dtype=float) for i in (0, 1))
    x, y = index.project(lon, lat)
    expected = brute_force(zones, [Point(xy(a, b)) for a, b in points])
    assert pairs(index.point_hits(x, y)) == expected


@PROPERTY
@given(zones=zone_sets, rows=segments())
def test_segment_hits_equal_brute_force(zones, rows):
    index = ZoneIndex(zones)
    cols = [np.array([r[i] for r in rows], dtype=float) for i in range(4)]
    x0, y0 = index.project(cols[0], cols[1])
    x1, y1 = index.project(cols[2], cols[3])
    geometries = []
    for lon0, lat0, lon1, lat1 in rows:
        if math.isnan(lon0):
            geometries.append(None)
        elif (lon0, lat0) == (lon1, lat1):
            geometries.append(Point(xy(lon1, lat1)))
        else:
            geometries.append(LineString([xy(lon0, lat0), xy(lon1, lat1)]))
    assert pairs(index.segment_hits(x0, y0, x1, y1)) == brute_force(zones, geometries)


@PROPERTY
@given(zones=zone_sets, points=fixes, max_m=st.floats(0, 2000))
def test_distance_hits_equal_brute_force(zones, points, max_m):
    index = ZoneIndex(zones)
    x, y = index.project(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    fix, zone, dist = index.distance_hits(x, y, max_m)
    areas = [reference_area(z) for z in zones]
    expected = {
        (i, j): area.distance(Point(xy(*p)))
        for i, p in enumerate(points)
        for j, area in enumerate(areas)
        if area.distance(Point(xy(*p))) <= max_m
    }
    assert pairs((fix, zone)) == sorted(expected)
    assert np.allclose(dist, [expected[k] for k in sorted(expected)], rtol=0, atol=1e-6)


@PROPERTY
@given(zones=zone_sets)
def test_areas_match_reference_projection(zones):
    index = ZoneIndex(zones)
    for area, zone in zip(index.areas, zones, strict=True):
        assert shapely.hausdorff_distance(area, reference_area(zone)) < 1e-6


# --- worked examples ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample():
    zones = load_zone_dir(ZONES_DIR)
    return ZoneIndex(zones), {z.id: i for i, z in enumerate(zones)}


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


def test_segment_across_narrow_corridor():
    (road,) = make_zones(({"type": "LineString", "coordinates": [[118.0, 24.4], [118.0, 24.5]]}, {"width_m": 4}))
    index = ZoneIndex([road])
    cx, cy = index.project(np.array([118.0]), np.array([24.45]))
    x0, x1, y = cx - 50, cx + 50, cy
    assert pairs(index.point_hits(np.r_[x0, x1], np.r_[y, y])) == []
    assert pairs(index.segment_hits(x0, y, x1, y)) == [(0, 0)]
    assert pairs(index.segment_hits(x0, y, x0 + 47.9, y)) == []  # stops 0.1 m short of the edge


def test_degenerate_segment_is_a_point_and_nan_previous_is_skipped(sample):
    index, ids = sample
    tunnel = ids["haicang-tunnel"]
    x, y = index.project(np.array([118.06, 118.06, 118.06]), np.array([24.4815, 24.4900, 24.4815]))
    x0, y0 = x.copy(), y.copy()
    x0[2] = np.nan  # row 2 has no previous fix, though it is inside
    fix, zone = index.segment_hits(x0, y0, x, y)
    got = {(f, z) for f, z in pairs((fix, zone)) if z == tunnel}
    assert got == {(0, tunnel)}


def test_boundary_counts_as_inside():
    (square,) = make_zones(
        (
            {
                "type": "Polygon",
                "coordinates": [[[118.0, 24.4], [118.01, 24.4], [118.01, 24.41], [118.0, 24.41], [118.0, 24.4]]],
            },
            {},
        )
    )
    index = ZoneIndex([square])
    vx, vy = np.array(index.areas[0].exterior.coords).T
    assert pairs(index.point_hits(vx, vy)) == [(i, 0) for i in range(len(vx))]
    # A segment that only touches the boundary at its end.
    assert pairs(index.segment_hits(vx[:1] - 10, vy[:1], vx[:1], vy[:1])) == [(0, 0)]


def test_circle_radius_is_ground_metres_and_corridor_caps_are_round():
    geod = Geod(ellps="WGS84")
    circle, road = make_zones(
        ({"type": "Point", "coordinates": [118.185, 24.478]}, {"radius_m": 500}),
        ({"type": "LineString", "coordinates": [[118.0, 24.4], [118.01, 24.4]]}, {"width_m": 40}),
    )
    index = ZoneIndex([circle, road])
    for azimuth in (0, 90, 180, 270, 45):
        lons, lats, _ = geod.fwd([118.185] * 2, [24.478] * 2, [azimuth] * 2, [497, 503])
        x, y = index.project(np.array(lons), np.array(lats))
        assert pairs(index.point_hits(x, y)) == [(0, 0)], azimuth
    # 15 m past the east end on the axis: inside a round cap (radius 20 m), outside a flat one.
    lon, lat, _ = geod.fwd(118.01, 24.4, 90, 15)
    x, y = index.project(np.array([lon]), np.array([lat]))
    assert pairs(index.point_hits(x, y)) == [(0, 1)]


def test_project_is_metres_east_north_in_epsg_4548(sample):
    index, _ = sample
    x, y = index.project(np.array([117.0, 118.06]), np.array([24.48, 24.48]))
    assert abs(x[0] - 500_000) < 1e-6  # central meridian 117 E, false easting 500 km
    assert 105_000 < x[1] - x[0] < 110_000  # 1.06 degrees of longitude at 24.5 N
    assert 2.70e6 < y[0] < 2.72e6  # northing, not swapped with easting
    utm_x, utm_y = ZoneIndex([], crs="EPSG:32650").project(np.array([118.06]), np.array([24.48]))
    assert utm_y[0] == pytest.approx(y[1] * 0.9996, abs=1)  # UTM 50N: same meridian, scale 0.9996


def test_invalid_and_non_finite_fixes_never_hit(sample):
    index, ids = sample
    x, y = index.project(np.array([118.06, 118.06]), np.array([24.4815, 24.4815]))
    x[1] = np.nan
    fix, zone = index.point_hits(x, y)
    assert 1 not in fix.tolist() and (0, ids["haicang-tunnel"]) in pairs((fix, zone))
    f, z, d = index.distance_hits(x, y, np.array([10.0, 10.0]))
    assert 1 not in f.tolist() and d[pairs((f, z)).index((0, ids["haicang-tunnel"]))] == 0


def test_empty_zones_and_empty_inputs():
    empty = np.array([])
    pts = np.array([600_000.0, 610_000.0]), np.array([2_709_000.0, 2_709_100.0])
    for index in (ZoneIndex([]), ZoneIndex(load_zone_dir(ZONES_DIR))):
        for result in (
            index.point_hits(empty, empty),
            index.segment_hits(empty, empty, empty, empty),
            index.distance_hits(empty, empty, 100.0),
        ):
            assert all(len(a) == 0 for a in result)
            assert result[0].dtype.kind == result[1].dtype.kind == "i"
    assert len(ZoneIndex([])) == 0
    assert pairs(ZoneIndex([]).point_hits(*pts)) == []
    assert pairs(ZoneIndex([]).segment_hits(*pts, *pts)) == []
    assert pairs(ZoneIndex([]).distance_hits(*pts, 1e9)[:2]) == []


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


def test_bad_input_shapes_rejected(sample):
    index, _ = sample
    with pytest.raises(ValueError):
        index.point_hits(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError):
        index.segment_hits(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)))
