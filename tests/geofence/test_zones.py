import copy
import json
from datetime import datetime
from pathlib import Path

import pytest
import shapely

from engine.core.errors import ZoneFileError
from engine.geofence.zone_models import (
    Zone,
    load_zone_dir,
    load_zone_file,
    parse_feature_collection,
)

ZONES_DIR = Path(__file__).resolve().parents[2] / "zones"
TUNNEL = [[118.0400, 24.4800], [118.0800, 24.4815], [118.0800, 24.4830], [118.0400, 24.4815], [118.0400, 24.4800]]


def feature(geometry=None, **props):
    props.setdefault("id", "z1")
    props.setdefault("rule", "forbid")
    geometry = geometry or {"type": "Polygon", "coordinates": [TUNNEL]}
    return {"type": "Feature", "properties": props, "geometry": geometry}


def collection(*features):
    return {"type": "FeatureCollection", "features": list(features)}


def parse(*features):
    return parse_feature_collection(collection(*features), source="test.geojson", tz="Asia/Shanghai")


def rejects(obj, *, feature, field, match=None):
    with pytest.raises(ZoneFileError) as info:
        parse_feature_collection(obj, source="test.geojson", tz="Asia/Shanghai")
    err = info.value
    assert (err.path, err.feature, err.field) == ("test.geojson", feature, field), str(err)
    assert "test.geojson" in str(err)
    if match:
        assert match in err.reason, err.reason
    return err


# --- valid zones ---------------------------------------------------------------------------


def test_minimal_polygon_defaults():
    (zone,) = parse(feature())
    assert isinstance(zone, Zone)
    assert zone.id == zone.name == "z1"
    assert zone.classes is None and zone.exempt == frozenset()
    assert zone.severity == "critical"
    assert zone.schedule.windows == ()
    assert zone.geometry.equals(shapely.Polygon(TUNNEL))
    assert zone.source == "test.geojson"
    assert (zone.radius_m, zone.width_m, zone.speed_limit_kmh, zone.approach_m, zone.dwell_s) == (None,) * 5


@pytest.mark.parametrize(
    ("rule", "severity"), [("forbid", "critical"), ("speed", "warning"), ("corridor", "warning"), ("watch", "info")]
)
def test_default_severity_by_rule(rule, severity):
    (zone,) = parse(feature(rule=rule, speed_limit_kmh=60, **({"vehicles": ["闽DH0001"]} if rule == "corridor" else {})))
    assert zone.severity == severity


def test_all_kinds_and_properties():
    zones = parse(
        feature(
            id="circle",
            geometry={"type": "Point", "coordinates": [118.185, 24.478]},
            radius_m=500,
            exempt=["police"],
            severity="warning",
            approach_m=100,
            dwell_s=30,
        ),
        feature(
            id="road",
            geometry={"type": "LineString", "coordinates": [[118.1, 24.8], [118.2, 24.8, 5.0]]},
            width_m=40,
            rule="corridor",
            classes=["hazmat"],
            vehicles=["闽DH0001", "闽DH0002"],
        ),
        feature(
            id="holes",
            geometry={
                "type": "MultiPolygon",
                "coordinates": [
                    [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], [[2, 2], [4, 2], [4, 4], [2, 2]]],
                    [[[20, 20], [21, 20], [21, 21], [20, 20]]],
                ],
            },
            rule="speed",
            speed_limit_kmh=60,
        ),
    )
    circle, road, holes = zones
    assert circle.radius_m == 500.0 and circle.geometry.geom_type == "Point"
    assert (circle.approach_m, circle.dwell_s, circle.severity) == (100.0, 30.0, "warning")
    assert road.width_m == 40.0 and road.geometry.geom_type == "LineString"
    assert road.vehicles == {"闽DH0001", "闽DH0002"} and circle.vehicles is None and circle.dwell_repeat_s is None
    assert not road.geometry.has_z
    assert holes.geometry.geom_type == "MultiPolygon" and len(holes.geometry.geoms[0].interiors) == 1
    assert holes.speed_limit_kmh == 60.0


def test_applies_to_classes_and_exempt():
    everyone, hazmat, event = parse(
        feature(id="a"),
        feature(id="b", classes=["hazmat", "taxi"], exempt=["taxi"]),
        feature(id="c", exempt=["police", "fire"]),
    )
    assert everyone.applies_to("taxi") and everyone.applies_to("hazmat")
    assert hazmat.applies_to("hazmat")
    assert not hazmat.applies_to("taxi")  # exempt wins over classes
    assert not hazmat.applies_to("bus")
    assert event.applies_to("bus") and not event.applies_to("police")


def test_corridor_applies_to_its_assigned_vehicles_only():
    (route,) = parse(feature(rule="corridor", vehicles=["闽DH0001"], exempt=["police"], dwell_repeat_s=60))
    assert route.applies("闽DH0001", "hazmat") and not route.applies("闽DH0002", "hazmat")
    assert not route.applies("闽DH0001", "police")  # exempt still wins
    assert route.dwell_repeat_s == 60.0
    (everyone,) = parse(feature())
    assert everyone.applies("any", "taxi")


def test_zone_is_immutable():
    (zone,) = parse(feature())
    with pytest.raises(AttributeError):
        zone.rule = "watch"


def test_sample_dir_loads():
    zones = load_zone_dir(ZONES_DIR)
    by_id = {z.id: z for z in zones}
    assert {"haicang-tunnel", "cifit-exhibition-centre", "xiamen-island", "siming-core-hazmat-daytime"} <= set(by_id)
    kinds = {z.geometry.geom_type for z in zones}
    assert {"Polygon", "Point", "LineString"} <= kinds
    tunnel = by_id["haicang-tunnel"]
    assert list(tunnel.geometry.exterior.coords) == [tuple(p) for p in TUNNEL]
    assert tunnel.applies_to("hazmat") and not tunnel.applies_to("taxi")
    cifit = by_id["cifit-exhibition-centre"]
    assert cifit.radius_m == 500 and not cifit.applies_to("police") and cifit.applies_to("taxi")
    assert cifit.schedule.active(datetime.fromisoformat("2026-09-09T12:00:00+08:00"))
    assert not cifit.schedule.active(datetime.fromisoformat("2026-09-12T12:00:00+08:00"))
    assert by_id["xiamen-island"].rule == "watch" and by_id["xiamen-island"].severity == "info"
    for path in sorted(ZONES_DIR.glob("*.geojson")):
        assert load_zone_file(path)  # each file on its own
        for raw in json.loads(path.read_text())["features"]:
            assert raw["properties"].get("note"), raw["properties"]["id"]


def test_single_file_path_works_for_load_zone_dir(tmp_path):
    path = tmp_path / "one.geojson"
    path.write_text(json.dumps(collection(feature())))
    assert [z.id for z in load_zone_dir(path)] == ["z1"]
    assert load_zone_file(path)[0].source == str(path)


def test_dir_loads_files_sorted_and_ignores_other_files(tmp_path):
    (tmp_path / "b.geojson").write_text(json.dumps(collection(feature(id="b"))))
    (tmp_path / "a.geojson").write_text(json.dumps(collection(feature(id="a"))))
    (tmp_path / "readme.txt").write_text("not a zone file")
    assert [z.id for z in load_zone_dir(tmp_path)] == ["a", "b"]


# --- rejected zones ----------------------------------------------------------------------


def test_duplicate_ids_across_files_rejected(tmp_path):
    (tmp_path / "a.geojson").write_text(json.dumps(collection(feature(id="same"))))
    (tmp_path / "b.geojson").write_text(json.dumps(collection(feature(id="other"), feature(id="same"))))
    with pytest.raises(ZoneFileError) as info:
        load_zone_dir(tmp_path)
    err = info.value
    assert (err.path, err.feature, err.field) == (str(tmp_path / "b.geojson"), "same", "id")
    assert "a.geojson" in err.reason


def test_duplicate_ids_in_one_file_rejected():
    rejects(collection(feature(id="x"), feature(id="x")), feature="#1", field="id", match="duplicate")


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.geojson"
    path.write_text('{"type": "FeatureCollection",\n "features": [,]}')
    with pytest.raises(ZoneFileError) as info:
        load_zone_file(path)
    assert info.value.path == str(path)
    assert "line 2, column 15" in info.value.reason


def test_missing_file_and_dir_rejected(tmp_path):
    with pytest.raises(ZoneFileError, match="cannot read"):
        load_zone_file(tmp_path / "nope.geojson")
    with pytest.raises(ZoneFileError, match="no such"):
        load_zone_dir(tmp_path / "nope")


def test_bad_file_loads_nothing(tmp_path):
    (tmp_path / "a.geojson").write_text(json.dumps(collection(feature(id="good"))))
    (tmp_path / "b.geojson").write_text(json.dumps(collection(feature(id="ok"), feature(id="bad", rule="nope"))))
    with pytest.raises(ZoneFileError) as info:
        load_zone_dir(tmp_path)
    assert (info.value.feature, info.value.field) == ("bad", "rule")


@pytest.mark.parametrize("obj", [[], {"type": "Feature"}, {"features": []}, "x"])
def test_not_a_feature_collection(obj):
    rejects(obj, feature=None, field="type")


def test_features_not_a_list():
    rejects({"type": "FeatureCollection", "features": {}}, feature=None, field="features")


def point(**props):
    return feature(geometry={"type": "Point", "coordinates": [118.1, 24.5]}, **props)


def line(**props):
    return feature(geometry={"type": "LineString", "coordinates": [[118.1, 24.5], [118.2, 24.5]]}, **props)


def without(feat, key):
    feat = copy.deepcopy(feat)
    del feat["properties"][key]
    return feat


def poly(coords):
    return {"type": "Polygon", "coordinates": coords}


BOWTIE = [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]

# (feature, expected feature label, expected field, text expected in the reason)
BAD_FEATURES = [
    ({"type": "Feature", "geometry": None}, "#0", "properties", None),
    ({"type": "Thing", "properties": {"id": "z1"}}, "z1", "type", None),
    (without(feature(), "id"), "#0", "id", "required"),
    (feature(id=7), "#0", "id", None),
    (feature(id=""), "#0", "id", None),
    (feature(name=3), "z1", "name", None),
    (without(feature(), "rule"), "z1", "rule", None),
    (feature(rule="ban"), "z1", "rule", "'ban'"),
    (feature(severity="high"), "z1", "severity", "'high'"),
    (feature(rule="speed"), "z1", "speed_limit_kmh", "required"),
    (feature(rule="speed", speed_limit_kmh="60"), "z1", "speed_limit_kmh", None),
    (feature(rule="speed", speed_limit_kmh=0), "z1", "speed_limit_kmh", "positive"),
    (feature(approach_m=-1), "z1", "approach_m", "non-negative"),
    (feature(dwell_s=True), "z1", "dwell_s", None),
    (feature(dwell_s=float("nan")), "z1", "dwell_s", "finite"),
    (feature(dwell_repeat_s=0), "z1", "dwell_repeat_s", "positive"),
    (feature(rule="corridor"), "z1", "vehicles", "required"),
    (feature(rule="corridor", vehicles=[]), "z1", "vehicles", "non-empty"),
    (feature(rule="corridor", vehicles=["闽DH0001", 7]), "z1", "vehicles", None),
    (feature(vehicles=["闽DH0001"]), "z1", "vehicles", "only a corridor"),
    (feature(classes="hazmat"), "z1", "classes", None),
    (feature(classes=["hazmat", 3]), "z1", "classes", None),
    (feature(classes=[]), "z1", "classes", "empty"),
    (feature(exempt=[""]), "z1", "exempt", None),
    (
        feature(schedule=[{"start": "2026-09-08T00:00:00", "end": "2026-09-09T00:00:00+08:00"}]),
        "z1",
        "schedule[0].start",
        "offset",
    ),
    (feature(schedule=[{"days": ["mon"], "from": "25:00", "to": "01:00"}]), "z1", "schedule[0].from", None),
    (feature(schedule="always"), "z1", "schedule", None),
    (feature(geometry={"type": "GeometryCollection", "geometries": []}), "z1", "geometry.type", "GeometryCollection"),
    ({"type": "Feature", "properties": {"id": "z1", "rule": "forbid"}}, "z1", "geometry", None),
    (point(), "z1", "radius_m", "Point"),
    (point(radius_m=0), "z1", "radius_m", "positive"),
    (point(radius_m=-5), "z1", "radius_m", None),
    (feature(radius_m=100), "z1", "radius_m", "Polygon"),
    (line(), "z1", "width_m", "LineString"),
    (line(width_m=0), "z1", "width_m", None),
    (point(radius_m=10, width_m=10), "z1", "width_m", "Point"),
    (
        feature(geometry={"type": "LineString", "coordinates": [[118.1, 24.5], [118.1, 24.5]]}, width_m=5),
        "z1",
        "geometry.coordinates",
        "zero length",
    ),
    (
        feature(geometry={"type": "LineString", "coordinates": [[118.1, 24.5]]}, width_m=5),
        "z1",
        "geometry.coordinates",
        "at least 2",
    ),
    (
        feature(geometry={"type": "Point", "coordinates": [181, 24.5]}, radius_m=5),
        "z1",
        "geometry.coordinates",
        "outside WGS-84",
    ),
    (
        feature(geometry={"type": "Point", "coordinates": [118, -91]}, radius_m=5),
        "z1",
        "geometry.coordinates",
        "outside WGS-84",
    ),
    (
        feature(geometry={"type": "Point", "coordinates": [float("inf"), 24]}, radius_m=5),
        "z1",
        "geometry.coordinates",
        None,
    ),
    (
        feature(geometry={"type": "Point", "coordinates": ["118", 24]}, radius_m=5),
        "z1",
        "geometry.coordinates",
        "numbers",
    ),
    (feature(geometry={"type": "Point", "coordinates": [118]}, radius_m=5), "z1", "geometry.coordinates", None),
    (
        feature(geometry=poly([[[0, 0], [1, 0], [1, 1], [0, 1], [0, 91]]])),
        "z1",
        "geometry.coordinates[0][4]",
        "outside WGS-84",
    ),
    (feature(geometry=poly([[[0, 0], [1, 0], [1, 1], [0, 1]]])), "z1", "geometry.coordinates[0]", "not closed"),
    (feature(geometry=poly([[[0, 0], [1, 0], [0, 0]]])), "z1", "geometry.coordinates[0]", "at least 4"),
    (feature(geometry=poly([])), "z1", "geometry.coordinates", "no rings"),
    (feature(geometry=poly([[0, 0], [1, 0], [1, 1], [0, 0]])), "z1", "geometry.coordinates[0][0]", None),
    (feature(geometry=poly(BOWTIE)), "z1", "geometry", "Self-intersection"),
    (
        feature(geometry=poly([[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]], [[5, 5], [6, 5], [6, 6], [5, 5]]])),
        "z1",
        "geometry",
        "Hole lies outside shell",
    ),
    (feature(geometry={"type": "MultiPolygon", "coordinates": []}), "z1", "geometry.coordinates", None),
    (
        feature(
            geometry={
                "type": "MultiPolygon",
                "coordinates": [[[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]], [[[1, 1], [3, 1], [3, 3], [1, 3], [1, 1]]]],
            }
        ),
        "z1",
        "geometry",
        "invalid polygon",
    ),
    (
        feature(geometry={"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 1]]]]}),
        "z1",
        "geometry.coordinates[0][0]",
        "not closed",
    ),
]


@pytest.mark.parametrize(("feat", "label", "field", "match"), BAD_FEATURES)
def test_bad_feature_rejected_naming_file_feature_field(feat, label, field, match):
    # The bad feature sits after a good one: the whole collection is rejected.
    good = feature(id="good")
    rejects(collection(good, feat), feature=label.replace("#0", "#1"), field=field, match=match)


# --- RFC 7946 details ----------------------------------------------------------------------


@pytest.mark.parametrize("top_level,expected", [("z-top", "z-top"), (42, "42")])
def test_a_features_top_level_id_is_the_zone_id(top_level, expected):
    raw = feature()
    del raw["properties"]["id"]
    raw["id"] = top_level
    (zone,) = parse(raw)
    assert zone.id == expected


def test_the_same_id_in_both_places_is_fine_and_different_ones_are_refused():
    same = feature(id="z1") | {"id": "z1"}
    assert parse(same)[0].id == "z1"
    rejects(collection(feature(id="z1") | {"id": "z2"}), feature="#0", field="id", match="differ")


@pytest.mark.parametrize("bad", [True, ["z1"], {"id": "z1"}])
def test_a_top_level_id_that_is_not_a_string_or_number_is_refused(bad):
    raw = feature()
    del raw["properties"]["id"]
    raw["id"] = bad
    rejects(collection(raw), feature="#0", field="id", match="string or a number")


def test_no_id_anywhere_is_refused():
    raw = feature()
    del raw["properties"]["id"]
    rejects(collection(raw), feature="#0", field="id", match="required")


def _polygons(geometry):
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    if geometry["type"] == "MultiPolygon":
        return geometry["coordinates"]
    return []


def test_shipped_polygons_wind_counter_clockwise_with_clockwise_holes():
    files = sorted(ZONES_DIR.rglob("*.geojson"))
    assert any(p.parent.name == "grid" for p in files) and any(p.parent == ZONES_DIR for p in files)
    checked = 0
    for path in files:
        for raw in json.loads(path.read_text(encoding="utf-8"))["features"]:
            for rings in _polygons(raw["geometry"]):
                for i, ring in enumerate(rings):
                    ccw = shapely.LinearRing(ring).is_ccw
                    assert ccw == (i == 0), f"{path.name} {raw['properties']['id']} ring {i} winds the wrong way"
                    checked += 1
    assert checked >= 22  # 4 sample zone polygons and 18 grid units
