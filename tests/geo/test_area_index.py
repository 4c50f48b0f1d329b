"""The area index against brute force: point, segment and distance queries, areas, edge cases, input checks."""

import math

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod, Transformer
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from engine.geo.area_index import AreaIndex
from engine.geo.areas import projected_area
from engine.geo.geojson import parse_geometry

CRS = "EPSG:4548"
# Independent reference projection: scalar pyproj calls, one coordinate at a time.
TO_XY = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
# Random areas and fixes live in a ~6 x 5.5 km box west of Xiamen Island.
LON0, LON1, LAT0, LAT1 = 118.00, 118.06, 24.45, 24.50
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A shape: a lon/lat geometry and the sizes that make it an area (radius_m for a Point, width_m for a LineString).
Shape = tuple[BaseGeometry, float | None, float | None]


def shape(geometry: dict, radius_m: float | None = None, width_m: float | None = None) -> Shape:
    return parse_geometry(geometry, max_positions=10_000), radius_m, width_m


def make_index(shapes: list[Shape], crs: str = CRS) -> AreaIndex:
    return AreaIndex([projected_area(g, crs, radius_m=r, width_m=w) for g, r, w in shapes], crs)


def xy(lon, lat):
    return TO_XY.transform(lon, lat)


def reference_area(s: Shape) -> BaseGeometry:
    """The area in metres, built vertex by vertex with scalar pyproj calls, without the index's code."""
    g, radius_m, width_m = s

    def ring(coords):
        return [xy(lon, lat) for lon, lat in coords]

    def polygon(p):
        return Polygon(ring(p.exterior.coords), [ring(h.coords) for h in p.interiors])

    if isinstance(g, Point):
        return Point(xy(g.x, g.y)).buffer(radius_m, quad_segs=32)
    if isinstance(g, LineString):
        return LineString(ring(g.coords)).buffer(width_m / 2, quad_segs=32)
    return polygon(g) if isinstance(g, Polygon) else MultiPolygon([polygon(p) for p in g.geoms])


def brute_force(shapes, geometries):
    """Every (row, area) pair whose geometry intersects the area; None rows skipped."""
    areas = [reference_area(s) for s in shapes]
    return [
        (i, j)
        for i, geometry in enumerate(geometries)
        if geometry is not None
        for j, area in enumerate(areas)
        if area.intersects(geometry)
    ]


def pairs(result):
    fix, area = result[0], result[1]
    assert fix.dtype.kind == area.dtype.kind == "i"
    return list(zip(fix.tolist(), area.tolist(), strict=True))


# --- hypothesis strategies: areas as GeoJSON, through the real parser --------------------

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
def area_shape(draw) -> Shape:
    kind = draw(st.sampled_from(["polygon", "multipolygon", "circle", "corridor"]))
    lon, lat = draw(lons), draw(lats)
    if kind == "polygon":
        return shape({"type": "Polygon", "coordinates": draw(polygon_rings(lon, lat))})
    if kind == "multipolygon":
        parts = [draw(polygon_rings(lon, lat)), draw(polygon_rings(lon + 0.025, lat))]
        return shape({"type": "MultiPolygon", "coordinates": parts})
    if kind == "circle":
        return shape({"type": "Point", "coordinates": [lon, lat]}, radius_m=draw(st.floats(5, 1500)))
    steps = draw(st.lists(st.tuples(st.floats(-0.01, 0.01), st.floats(-0.01, 0.01)), min_size=1, max_size=4))
    coords = [[lon, lat]]
    for dlon, dlat in steps:
        coords.append([coords[-1][0] + dlon, coords[-1][1] + dlat])
    if LineString(coords).length == 0:
        coords[-1][0] += 0.001
    return shape({"type": "LineString", "coordinates": coords}, width_m=draw(st.floats(1, 200)))


shape_sets = st.lists(area_shape(), min_size=0, max_size=8)
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
@given(shapes=shape_sets, points=fixes)
def test_point_hits_equal_brute_force(shapes, points):
    index = make_index(shapes)
    lon, lat = (np.array([p[i] for p in points], dtype=float) for i in (0, 1))
    x, y = index.project(lon, lat)
    expected = brute_force(shapes, [Point(xy(a, b)) for a, b in points])
    assert pairs(index.point_hits(x, y)) == expected


@PROPERTY
@given(shapes=shape_sets, rows=segments())
def test_segment_hits_equal_brute_force(shapes, rows):
    index = make_index(shapes)
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
    assert pairs(index.segment_hits(x0, y0, x1, y1)) == brute_force(shapes, geometries)


@PROPERTY
@given(shapes=shape_sets, points=fixes, max_m=st.floats(0, 2000))
def test_distance_hits_equal_brute_force(shapes, points, max_m):
    index = make_index(shapes)
    x, y = index.project(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    fix, area, dist = index.distance_hits(x, y, max_m)
    areas = [reference_area(s) for s in shapes]
    expected = {
        (i, j): a.distance(Point(xy(*p)))
        for i, p in enumerate(points)
        for j, a in enumerate(areas)
        if a.distance(Point(xy(*p))) <= max_m
    }
    assert pairs((fix, area)) == sorted(expected)
    assert np.allclose(dist, [expected[k] for k in sorted(expected)], rtol=0, atol=1e-6)


@PROPERTY
@given(shapes=shape_sets, points=fixes)
def test_signed_distance_is_minus_depth_inside_and_distance_outside(shapes, points):
    if not shapes or not points:
        return
    index = make_index(shapes)
    x, y = index.project(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    area = np.arange(len(points)) % len(shapes)
    got = index.signed_distance(x, y, area)
    for k, (p, j) in enumerate(zip(points, area.tolist(), strict=True)):
        ref, point = reference_area(shapes[j]), Point(xy(*p))
        want = -ref.boundary.distance(point) if ref.intersects(point) else ref.distance(point)
        assert got[k] == pytest.approx(want, abs=1e-6)


@PROPERTY
@given(shapes=shape_sets)
def test_areas_match_reference_projection(shapes):
    index = make_index(shapes)
    for area, s in zip(index.areas, shapes, strict=True):
        assert shapely.hausdorff_distance(area, reference_area(s)) < 1e-6


# --- worked examples ---------------------------------------------------------------------


def test_segment_across_narrow_corridor():
    index = make_index([shape({"type": "LineString", "coordinates": [[118.0, 24.4], [118.0, 24.5]]}, width_m=4)])
    cx, cy = index.project(np.array([118.0]), np.array([24.45]))
    x0, x1, y = cx - 50, cx + 50, cy
    assert pairs(index.point_hits(np.r_[x0, x1], np.r_[y, y])) == []
    assert pairs(index.segment_hits(x0, y, x1, y)) == [(0, 0)]
    assert pairs(index.segment_hits(x0, y, x0 + 47.9, y)) == []  # stops 0.1 m short of the edge


def test_boundary_counts_as_inside():
    square = [[118.0, 24.4], [118.01, 24.4], [118.01, 24.41], [118.0, 24.41], [118.0, 24.4]]
    index = make_index([shape({"type": "Polygon", "coordinates": [square]})])
    vx, vy = np.array(index.areas[0].exterior.coords).T
    assert pairs(index.point_hits(vx, vy)) == [(i, 0) for i in range(len(vx))]
    # A segment that only touches the boundary at its end.
    assert pairs(index.segment_hits(vx[:1] - 10, vy[:1], vx[:1], vy[:1])) == [(0, 0)]


def test_circle_radius_is_ground_metres_and_corridor_caps_are_round():
    geod = Geod(ellps="WGS84")
    index = make_index([
        shape({"type": "Point", "coordinates": [118.185, 24.478]}, radius_m=500),
        shape({"type": "LineString", "coordinates": [[118.0, 24.4], [118.01, 24.4]]}, width_m=40),
    ])
    for azimuth in (0, 90, 180, 270, 45):
        lons, lats, _ = geod.fwd([118.185] * 2, [24.478] * 2, [azimuth] * 2, [497, 503])
        x, y = index.project(np.array(lons), np.array(lats))
        assert pairs(index.point_hits(x, y)) == [(0, 0)], azimuth
    # 15 m past the east end on the axis: inside a round cap (radius 20 m), outside a flat one.
    lon, lat, _ = geod.fwd(118.01, 24.4, 90, 15)
    x, y = index.project(np.array([lon]), np.array([lat]))
    assert pairs(index.point_hits(x, y)) == [(0, 1)]


def test_a_geometry_with_no_finite_projection_is_refused():
    with pytest.raises(ValueError, match="cannot be projected to EPSG:4548"):
        projected_area(Point(math.nan, 24.4), CRS, radius_m=10)


def test_invalid_and_non_finite_fixes_never_hit():
    index = make_index([shape({"type": "Point", "coordinates": [118.06, 24.4815]}, radius_m=100)])
    x, y = index.project(np.array([118.06, 118.06]), np.array([24.4815, 24.4815]))
    x[1] = np.nan
    assert pairs(index.point_hits(x, y)) == [(0, 0)]
    f, a, d = index.distance_hits(x, y, np.array([10.0, 10.0]))
    assert pairs((f, a)) == [(0, 0)] and d.tolist() == [0.0]
    f, a, d = index.distance_hits(x[:1], y[:1], -1.0)
    assert pairs((f, a)) == [] and d.size == 0  # a negative limit reaches nothing


def test_empty_index_and_empty_inputs():
    empty = np.array([])
    pts = np.array([600_000.0, 610_000.0]), np.array([2_709_000.0, 2_709_100.0])
    one = make_index([shape({"type": "Point", "coordinates": [118.06, 24.4815]}, radius_m=1e6)])
    for index in (make_index([]), one):
        for result in (
            index.point_hits(empty, empty),
            index.segment_hits(empty, empty, empty, empty),
            index.distance_hits(empty, empty, 100.0),
        ):
            assert all(len(a) == 0 for a in result)
            assert result[0].dtype.kind == result[1].dtype.kind == "i"
        assert index.signed_distance(empty, empty, empty).size == 0
    none = make_index([])
    assert len(none) == 0
    assert pairs(none.point_hits(*pts)) == []
    assert pairs(none.segment_hits(*pts, *pts)) == []
    assert pairs(none.distance_hits(*pts, 1e9)[:2]) == []


def test_results_sorted_by_fix_then_area_and_index_immutable():
    big = shape({"type": "Point", "coordinates": [118.06, 24.4815]}, radius_m=5000)
    small = shape({"type": "Point", "coordinates": [118.06, 24.4815]}, radius_m=50)
    index = make_index([small, big])
    x, y = index.project(np.array([118.20, 118.06, 118.06, 118.07]), np.array([24.455, 24.4815, 24.4815, 24.48]))
    assert pairs(index.point_hits(x, y)) == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 1)]
    assert len(index) == len(index.areas) == 2 and index.crs == CRS
    with pytest.raises(ValueError):
        index.areas[0] = None


def test_bad_input_shapes_rejected():
    index = make_index([])
    with pytest.raises(ValueError):
        index.point_hits(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError):
        index.segment_hits(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        index.signed_distance(np.zeros(2), np.zeros(2), np.zeros(3))
