"""GeoJSON geometry parsing: what is accepted, and every refusal naming the member at fault."""

import pytest

from engine.geo.geojson import GeometryError, feature_id, parse_geometry

RING = [[118.0, 24.4], [118.1, 24.4], [118.1, 24.5], [118.0, 24.4]]


def parse(raw, max_positions=100):
    return parse_geometry(raw, max_positions=max_positions, limit_name="test.max")


def test_each_supported_type_becomes_its_shapely_geometry():
    assert parse({"type": "Point", "coordinates": [118.0, 24.4, 12.5]}).coords[0] == (118.0, 24.4)
    assert parse({"type": "LineString", "coordinates": RING[:2]}).length > 0
    hole = [[118.05, 24.42], [118.07, 24.42], [118.07, 24.44], [118.05, 24.42]]
    assert len(parse({"type": "Polygon", "coordinates": [RING, hole]}).interiors) == 1
    assert len(parse({"type": "MultiPolygon", "coordinates": [[RING]]}).geoms) == 1


@pytest.mark.parametrize("raw,field,reason", [
    (None, "geometry", "missing or not an object"),
    ({"type": "GeometryCollection"}, "geometry.type", "not supported"),
    ({"type": "Point", "coordinates": [118.0]}, "geometry.coordinates", "must be [lon, lat]"),
    ({"type": "Point", "coordinates": [118.0, True]}, "geometry.coordinates", "must be numbers"),
    ({"type": "Point", "coordinates": [181.0, 24.4]}, "geometry.coordinates", "outside WGS-84"),
    ({"type": "LineString", "coordinates": [[118.0, 24.4]]}, "geometry.coordinates", "at least 2"),
    ({"type": "LineString", "coordinates": [[118.0, 24.4]] * 2}, "geometry.coordinates", "zero length"),
    ({"type": "Polygon", "coordinates": []}, "geometry.coordinates", "no rings"),
    ({"type": "Polygon", "coordinates": [RING[:3] + [[118.0, 24.41]]]}, "geometry.coordinates[0]", "not closed"),
    ({"type": "Polygon", "coordinates": [RING, "x"]}, "geometry.coordinates[1]", "must be a list"),
    ({"type": "MultiPolygon", "coordinates": []}, "geometry.coordinates", "no polygons"),
    ({"type": "MultiPolygon", "coordinates": [[RING[:3]]]}, "geometry.coordinates[0][0]", "at least 4"),
    ({"type": "Polygon", "coordinates": [[[118.0, 24.4], [118.1, 24.5], [118.1, 24.4], [118.0, 24.5],
                                          [118.0, 24.4]]]}, "geometry", "invalid polygon"),
])
def test_refusals_name_the_member(raw, field, reason):
    with pytest.raises(GeometryError) as exc:
        parse(raw)
    assert exc.value.field == field and reason in exc.value.reason


def test_too_many_positions_are_refused_before_parsing_naming_the_limit():
    with pytest.raises(GeometryError, match=r"4 positions > limit test.max \(3\)") as exc:
        parse({"type": "Polygon", "coordinates": [RING]}, max_positions=3)
    assert exc.value.field == "geometry.coordinates"
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize("feature,expected", [
    ({"properties": {"id": "a"}}, "a"),
    ({"id": "a", "properties": {}}, "a"),
    ({"id": 7.0, "properties": {"id": "7"}}, "7"),
    ({"id": 1.5, "properties": None}, "1.5"),
    ({"properties": {}}, None),
    ("not a feature", None),
])
def test_feature_id(feature, expected):
    assert feature_id(feature) == expected


@pytest.mark.parametrize("feature", [{"id": "a", "properties": {"id": "b"}}, {"id": ["a"], "properties": {}},
                                     {"id": True, "properties": {}}])
def test_a_conflicting_or_odd_feature_id_is_refused(feature):
    with pytest.raises(ValueError):
        feature_id(feature)
