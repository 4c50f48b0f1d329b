"""The grid at four levels: the sample loads, lookups at every level, bad grid files are named, no vehicle alerts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.casework.grid import CODE_DIGITS, LEVELS, load_grid
from engine.core.errors import ZoneFileError
from engine.geofence.zone_models import load_zone_dir, load_zone_file
from tests.casework.factories import AIRPORT, CEC, MAINLAND, STATION, grid
from tests.conftest import ROOT

SAMPLE = ROOT / "zones" / "grid" / "xiamen-grid.geojson"


@pytest.mark.parametrize("where,codes", [
    (STATION, {"community": "350203004001", "street": "350203004", "district": "350203", "city": "3502"}),
    (CEC, {"community": "350203009001", "street": "350203009", "district": "350203", "city": "3502"}),
    (AIRPORT, {"community": "350206001002", "street": "350206001", "district": "350206", "city": "3502"}),
    (MAINLAND, {"city": "3502"}),
    ((24.39, 117.89), {"city": "3502"}),
])
def test_lookup_at_every_level(where, codes):
    placement = grid().locate(*where)
    assert placement.codes == codes and list(placement.codes) == [lvl for lvl in LEVELS if lvl in codes]
    assert placement.lowest == next(iter(codes))
    assert all(placement.names[level] for level in codes)


def test_outside_the_city_is_nowhere():
    assert grid().locate(39.9, 116.4).units == ()


def test_sample_is_consistent():
    g = grid()
    assert {u.level for u in g.units} == set(LEVELS) and len(g) == 18
    for u in g.units:
        assert len(u.code) == CODE_DIGITS[u.level]
        assert [a.level for a in g.ancestors(u.code)] == list(LEVELS[LEVELS.index(u.level):])


def test_where_units_overlap_the_smallest_code_wins_and_levels_above_follow_the_code(tmp_path):
    big = {"type": "Polygon", "coordinates": [[[117.9, 24.39], [118.4, 24.39], [118.4, 24.89], [117.9, 24.39]]]}
    g = load_grid(write(tmp_path, [
        unit("city", "3502", big), unit("district", "350203", big), unit("district", "350206", big),
        unit("street", "350203004"), unit("street", "350206001"),
        unit("community", "350206001002"), unit("community", "350203004001")]))
    placement = g.locate(24.45, 118.08)
    assert placement.codes == {"community": "350203004001", "street": "350203004", "district": "350203",
                               "city": "3502"}


def test_grid_features_cannot_become_vehicle_zones():
    with pytest.raises(ZoneFileError) as exc:
        load_zone_file(SAMPLE)
    assert exc.value.field == "rule" and "'grid' is not one of" in exc.value.reason
    assert not any(z.id.startswith("grid-") for z in load_zone_dir(ROOT / "zones"))  # zones.dir is not recursive


def write(tmp_path: Path, features: list[dict]) -> Path:
    p = tmp_path / "g.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return p


SQUARE = {"type": "Polygon", "coordinates": [[[118.0, 24.4], [118.1, 24.4], [118.1, 24.5], [118.0, 24.4]]]}


def unit(level: str, code: str, geometry: dict | None = None, **props) -> dict:
    return {"type": "Feature", "geometry": geometry or SQUARE,
            "properties": {"rule": "grid", "level": level, "code": code, "name": code, **props}}


@pytest.mark.parametrize("features,field,reason", [
    ([unit("city", "3502", rule="forbid")], "rule", "needs \"rule\": \"grid\""),
    ([unit("county", "3502")], "level", "not one of"),
    ([unit("district", "3502")], "code", "6 digits"),
    ([unit("city", "3502"), unit("community", "350203004001")], "code", "not in the grid"),
    ([unit("city", "3502", {"type": "Point", "coordinates": [118.0, 24.4]})], "geometry.type", "Polygon"),
    ([unit("city", "3502"), unit("city", "3502", id="again")], "code", "already defined"),
    ([unit("city", "3502", id="a"), unit("district", "350203", id="a")], "id", "duplicate id 'a'"),
    ([unit("city", "3502", {"type": "Polygon", "coordinates": [[[118.0, 24.4], [118.1, 24.4], [118.1, 24.5]]]})],
     "geometry.coordinates[0]", "at least 4"),
])
def test_bad_grid_files_name_file_feature_and_field(tmp_path, features, field, reason):
    with pytest.raises(ZoneFileError) as exc:
        load_grid(write(tmp_path, features))
    assert exc.value.field == field and reason in exc.value.reason and exc.value.path.endswith("g.geojson")


def test_missing_grid_dir_is_named():
    with pytest.raises(ZoneFileError, match="reports.grid_dir"):
        load_grid("/nonexistent/grid")
