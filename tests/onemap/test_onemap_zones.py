"""Zones as drawn: true shapes of circles and corridors in WGS-84, grid boundaries, schedules, bad records."""

from __future__ import annotations

import orjson
import shapely
from pyproj import Transformer
from shapely.geometry import shape

from engine.geofence.zone_store import records_from_path
from engine.onemap.zones import display_zones, grid_zones
from tests.conftest import ROOT

TZ, CRS = "Asia/Shanghai", "EPSG:4548"
T0 = 1_788_832_800.0  # 2026-09-08T10:00:00+08:00, during the CIFIT fair
TO_XY = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)


def record(zone_id: str, geometry: dict, **props) -> tuple[str, bytes]:
    feature = {"type": "Feature", "properties": {"id": zone_id, "name": zone_id.title(), **props},
               "geometry": geometry}
    return zone_id, orjson.dumps({"feature": feature, "source": "test", "loaded_at": ""})


def metres(geometry_json: dict) -> shapely.Geometry:
    return shapely.transform(shape(geometry_json), TO_XY.transform, interleaved=False)


def test_every_sample_zone_is_drawn_with_its_rule_and_severity():
    records = records_from_path(ROOT / "zones", tz=TZ, loaded_at="")
    zones, errors = display_zones(records.items(), tz=TZ, crs=CRS)
    assert errors == [] and [z.id for z in zones] == sorted(records)
    for z in zones:
        f = z.to_feature(T0)
        assert f["id"] == z.id and f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert f["properties"]["rule"] in ("forbid", "watch", "speed", "corridor")


def test_a_circle_is_drawn_as_the_area_that_is_checked():
    [z], _ = display_zones([record("c", {"type": "Point", "coordinates": [118.185, 24.478]}, rule="forbid",
                                   radius_m=500)], tz=TZ, crs=CRS)
    area = metres(z.feature["geometry"])
    centre = metres({"type": "Point", "coordinates": [118.185, 24.478]})
    ring = shapely.get_exterior_ring(area)
    dists = [centre.distance(shapely.Point(p)) for p in shapely.get_coordinates(ring)]
    assert min(dists) > 497 and max(dists) < 503


def test_a_corridor_is_drawn_its_full_width_around_the_centre_line():
    line = {"type": "LineString", "coordinates": [[118.085, 24.760], [118.095, 24.768], [118.104, 24.772]]}
    [z], _ = display_zones([record("r", line, rule="forbid", width_m=60)], tz=TZ, crs=CRS)
    area, centre = metres(z.feature["geometry"]), metres(line)
    assert abs(area.area / centre.length - 60) < 3  # area / length = width, less the rounded ends' share
    assert area.contains(centre)


def test_a_polygon_is_drawn_as_written_and_properties_are_the_display_ones():
    poly = {"type": "Polygon", "coordinates": [[[118.04, 24.48], [118.08, 24.4815], [118.08, 24.483],
                                                [118.04, 24.4815], [118.04, 24.48]]]}
    [z], _ = display_zones([record("t", poly, rule="speed", speed_limit_kmh=60, classes=["hazmat"],
                                   exempt=["police"], note="not for the map")], tz=TZ, crs=CRS)
    f = z.to_feature(T0)
    assert f["geometry"]["coordinates"] == [[[118.04, 24.48], [118.08, 24.4815], [118.08, 24.483],
                                             [118.04, 24.4815], [118.04, 24.48]]]
    assert f["properties"] == {"id": "t", "name": "T", "rule": "speed", "severity": "warning",
                               "classes": ["hazmat"], "exempt": ["police"], "speed_limit_kmh": 60.0,
                               "scheduled": False, "active": True}


def test_a_scheduled_zone_is_active_only_in_its_window():
    window = [{"start": "2026-09-08T00:00:00+08:00", "end": "2026-09-11T23:59:59+08:00"}]
    [z], _ = display_zones([record("e", {"type": "Point", "coordinates": [118.185, 24.478]}, rule="forbid",
                                   radius_m=100, schedule=window)], tz=TZ, crs=CRS)
    assert z.to_feature(T0)["properties"]["active"] is True
    assert z.to_feature(T0 + 10 * 86400)["properties"]["active"] is False


def test_grid_boundaries_are_drawn_even_though_the_geofence_does_not_check_them():
    poly = {"type": "Polygon", "coordinates": [[[118.1, 24.5], [118.11, 24.5], [118.11, 24.51], [118.1, 24.5]]]}
    [z], errors = display_zones([record("350203001001", poly, rule="grid", code="350203001001")], tz=TZ, crs=CRS)
    assert errors == []
    assert z.to_feature(T0)["properties"] == {"id": "350203001001", "name": "350203001001", "rule": "grid",
                                              "severity": "info", "code": "350203001001", "level": None,
                                              "active": True}


def test_the_grid_files_of_the_reports_service_are_drawn_by_level():
    zones, errors = grid_zones(ROOT / "zones" / "grid")
    features = orjson.loads((ROOT / "zones" / "grid" / "xiamen-grid.geojson").read_bytes())["features"]
    assert errors == [] and len(zones) == len(features)
    levels = {z.feature["properties"]["level"] for z in zones}
    assert levels == {"city", "district", "street", "community"}
    assert all(z.feature["properties"]["rule"] == "grid" and z.feature["properties"]["code"] for z in zones)


def test_grid_files_with_bad_features_draw_the_good_ones_and_a_missing_folder_draws_none(tmp_path):
    good = {"type": "Feature", "properties": {"id": "g1", "rule": "grid", "level": "community", "code": "1"},
            "geometry": {"type": "Polygon", "coordinates": [[[118.1, 24.5], [118.11, 24.5], [118.11, 24.51],
                                                             [118.1, 24.5]]]}}
    not_grid = {**good, "properties": {**good["properties"], "id": "g2", "rule": "forbid"}}
    no_id = {**good, "properties": {"rule": "grid"}}
    (tmp_path / "a.geojson").write_bytes(orjson.dumps({"type": "FeatureCollection",
                                                       "features": [good, not_grid, no_id]}))
    (tmp_path / "b.geojson").write_text("{oops")
    zones, errors = grid_zones(tmp_path)
    assert [z.id for z in zones] == ["g1"]
    assert len(errors) == 3 and "rule is 'forbid'" in errors[0] and "b.geojson" in errors[2]
    assert grid_zones(tmp_path / "missing") == ([], [])


def test_bad_records_are_skipped_with_a_reason_and_the_good_ones_drawn():
    good = record("ok", {"type": "Point", "coordinates": [118.1, 24.5]}, rule="watch", radius_m=50)
    zones, errors = display_zones([
        good, ("junk", b"not json"), ("nofeature", b"{}"),
        record("norule", {"type": "Point", "coordinates": [118.1, 24.5]}, radius_m=50),
        record("badgrid", {"type": "LineString", "coordinates": [[118.1, 24.5], [118.2, 24.5]]}, rule="grid"),
    ], tz=TZ, crs=CRS)
    assert [z.id for z in zones] == ["ok"]
    assert [e.split(":")[0] for e in errors] == ["junk", "nofeature", "norule", "badgrid"]
