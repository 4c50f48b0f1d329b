"""The batch checker against real zones, with a fake clock: no Kafka needed."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from engine.core.clock import FakeClock
from engine.geofence.checker import ZoneChecker
from engine.geofence.index import ZoneIndex
from engine.geofence.zone_models import parse_feature_collection
from engine.telemetry.models import Fix

TZ = "Asia/Shanghai"
T0 = datetime(2026, 9, 8, 10, 0, tzinfo=ZoneInfo(TZ)).timestamp()  # a Tuesday, during CIFIT
TUNNEL = [[118.0400, 24.4800], [118.0800, 24.4815], [118.0800, 24.4830], [118.0400, 24.4815], [118.0400, 24.4800]]


def feature(props, geometry):
    return {"type": "Feature", "properties": props, "geometry": geometry}


@pytest.fixture(scope="module")
def zones():
    fc = {"type": "FeatureCollection", "features": [
        feature({"id": "tunnel", "name": "Tunnel", "rule": "forbid", "classes": ["hazmat"]},
                {"type": "Polygon", "coordinates": [TUNNEL]}),
        feature({"id": "fair", "name": "Fair", "rule": "forbid", "exempt": ["police"], "radius_m": 500,
                 "schedule": [{"start": "2026-09-08T00:00:00+08:00", "end": "2026-09-08T12:00:00+08:00"}]},
                {"type": "Point", "coordinates": [118.185, 24.478]}),
        feature({"id": "night", "name": "Night", "rule": "forbid",
                 "schedule": [{"days": ["tue"], "from": "22:00", "to": "05:00"}]},
                {"type": "Polygon", "coordinates": [[[118.30, 24.60], [118.31, 24.60], [118.31, 24.61],
                                                     [118.30, 24.61], [118.30, 24.60]]]}),
    ]}
    return parse_feature_collection(fc, source="test", tz=TZ)


@pytest.fixture
def checker(zones):
    return ZoneChecker(ZoneIndex(zones, crs="EPSG:4548"), tz=TZ, clock=FakeClock(T0 + 100))


def fx(vid, ts, lon, lat=24.4815, vclass="hazmat"):
    return Fix(vehicle_id=vid, ts=ts, lat=lat, lon=lon, vclass=vclass)


def run(checker, fixes, states=None):
    states = dict(states or {})
    res = checker.check(fixes, states)
    states.update(res.states)
    return res, states


def kinds(res):
    return [(a["vehicle_id"], a["kind"], a["zone_id"]) for a in res.alerts]


def test_truck_through_the_tunnel_enters_and_exits_once(checker):
    res, st = run(checker, [fx("h", T0 + 60 * i, lon) for i, lon in enumerate([118.03, 118.05, 118.06, 118.07, 118.09])])
    assert kinds(res) == [("h", "zone.enter", "tunnel"), ("h", "zone.exit", "tunnel")]
    enter, exit_ = res.alerts
    assert exit_["incident_id"] == enter["alert_id"] and exit_["duration_s"] == 180.0
    assert enter["ts"] == "2026-09-08T10:01:00.000+08:00" and enter["detected_at"].endswith("+08:00")
    assert st["h"]["zones"] == {} and st["h"]["ts"] == T0 + 240


def test_the_same_track_split_over_batches_gives_the_same_alerts(checker):
    track = [fx("h", T0 + 60 * i, lon) for i, lon in enumerate([118.03, 118.05, 118.06, 118.07, 118.09])]
    whole, _ = run(checker, track)
    states: dict = {}
    ids = []
    for f in track:
        res, states = run(checker, [f], states)
        ids += [a["alert_id"] for a in res.alerts]
    assert ids == [a["alert_id"] for a in whole.alerts]


def test_sparse_fixes_across_the_tunnel_are_a_cross(checker):
    res, _ = run(checker, [fx("h", T0, 118.03), fx("h", T0 + 300, 118.09)])
    assert kinds(res) == [("h", "zone.cross", "tunnel")]
    assert res.alerts[0]["from_lon"] == 118.03


def test_classes_and_exempt(checker):
    res, _ = run(checker, [fx("t", T0, 118.05, vclass="taxi"), fx("p", T0, 118.185, 24.478, vclass="police"),
                           fx("c", T0, 118.185, 24.478, vclass="taxi")])
    assert kinds(res) == [("c", "zone.enter", "fair")]


def test_schedules_decide_and_an_ended_window_closes_the_incident(checker):
    res, st = run(checker, [fx("c", T0 + 3600, 118.185, 24.478, vclass="taxi")])   # 11:00, fair open
    assert kinds(res) == [("c", "zone.enter", "fair")]
    res, st = run(checker, [fx("c", T0 + 3 * 3600, 118.185, 24.478, vclass="taxi")], st)  # 13:00, window over
    assert kinds(res) == [("c", "zone.exit", "fair")] and res.alerts[0]["reason"] == "schedule_ended"
    # recurring window Tuesday 22:00 -> Wednesday 05:00, in Asia/Shanghai
    res, _ = run(checker, [fx("n", T0 + 13 * 3600, 118.305, 24.605, "taxi")])   # Tue 23:00
    assert kinds(res) == [("n", "zone.enter", "night")]
    res, _ = run(checker, [fx("m", T0 + 20 * 3600, 118.305, 24.605, "taxi")])   # Wed 06:00
    assert kinds(res) == []


def test_duplicates_are_rejected_and_late_fixes_are_audited_not_moves(checker):
    res, st = run(checker, [fx("h", T0, 118.03), fx("h", T0 + 60, 118.05)])
    assert kinds(res) == [("h", "zone.enter", "tunnel")]
    res, st2 = run(checker, [fx("h", T0 + 60, 118.05), fx("h", T0 + 20, 118.035), fx("h", T0 + 50, 118.045)], st)
    assert [r.reason for r in res.rejections] == ["duplicate"] and res.late == 2
    assert kinds(res) == [("h", "zone.enter", "tunnel")] and res.alerts[0]["late"] is True  # 118.045 is inside
    assert st2["h"] == st["h"]  # live state untouched


def test_a_removed_zone_closes_its_incident(zones):
    clock = FakeClock(T0)
    res, st = run(ZoneChecker(ZoneIndex(zones), tz=TZ, clock=clock), [fx("h", T0, 118.05)])
    assert kinds(res) == [("h", "zone.enter", "tunnel")]
    without = ZoneChecker(ZoneIndex([z for z in zones if z.id != "tunnel"]), tz=TZ, clock=clock)
    res, _ = run(without, [fx("h", T0 + 10, 118.05)], st)
    assert kinds(res) == [("h", "zone.exit", "tunnel")] and res.alerts[0]["reason"] == "zone_removed"
