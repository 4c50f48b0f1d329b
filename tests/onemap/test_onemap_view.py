"""The one-map's view without brokers: deltas, incidents, tracks, alerts, tasks, snapshots."""

from __future__ import annotations

import pytest

from engine.core.clock import FakeClock
from engine.onemap.models import InvalidRecord
from engine.onemap.settings import OneMapSettings
from engine.onemap.view import OneMapView
from engine.telemetry.models import CLASSES, Fix

T0 = 1_788_832_800.0  # 2026-09-08T10:00:00+08:00
HAZMAT, TAXI = CLASSES.index("hazmat"), CLASSES.index("taxi")


def make(**cfg) -> tuple[OneMapView, FakeClock]:
    clock = FakeClock(T0)
    return OneMapView(OneMapSettings(**cfg), clock=clock), clock


def fix(vid: str = "闽DH0001", ts: float = T0, lat: float = 24.48, lon: float = 118.04, vclass: str = "hazmat",
        **kw) -> Fix:
    return Fix(vehicle_id=vid, ts=ts, lat=lat, lon=lon, vclass=vclass, **kw)


def alert(kind: str, aid: str, inc: str | None = None, severity: str = "critical", **kw) -> dict:
    return {"alert_id": aid, "kind": kind, "severity": severity, "ts": "2026-09-08T10:00:00.000+08:00",
            "detected_at": "2026-09-08T10:00:01.000+08:00", "vehicle_id": "闽DH0001", "class": "hazmat",
            "zone_id": "haicang-tunnel", "zone_name": "Haicang Tunnel", "lat": 24.4815, "lon": 118.0441,
            "incident_id": inc, "late": False, **kw}


def task(tid: str = "T-1", status: str = "open", **kw) -> dict:
    return {"service_request_id": tid, "service_code": "road-hazard", "service_name": "Road hazard",
            "status": status, "state": "dispatched", "level": "street", "agency_responsible": "Siming roads",
            "lat": 24.45, "long": 118.08, "description": "pothole", "requested_datetime": "2026-09-08T09:00:00+08:00",
            "updated_datetime": "2026-09-08T09:10:00+08:00", "expected_datetime": "2026-09-08T21:00:00+08:00",
            "overdue": False, "status_notes": "", **kw}


def test_nothing_changed_gives_no_delta_and_keeps_the_sequence():
    view, _ = make()
    assert view.delta() is None and view.seq == 0
    assert view.snapshot()["seq"] == 0


def test_a_new_vehicle_is_announced_once_then_only_its_moves_are_sent():
    view, clock = make()
    view.apply_fixes([fix(ts=T0 - 2, lat=24.481234567, lon=118.041234567, speed_kmh=42.4, heading=270.4)])
    d = view.delta()
    assert d["seq"] == 1 and d["nv"] == [[0, "闽DH0001", HAZMAT]]
    assert d["v"] == [[0, 24.48123, 118.04123, 42, 270, 2]]  # rounded to ~1 m; age in seconds
    view.apply_fixes([fix(ts=T0 + 1, lat=24.49)])
    clock.advance(1)
    d = view.delta()
    assert "nv" not in d and d["seq"] == 2 and d["v"] == [[0, 24.49, 118.04, None, None, 0]]


def test_a_delta_carries_each_vehicle_once_with_its_latest_position():
    view, _ = make()
    view.apply_fixes([fix(ts=T0 + i, lat=24.40 + i / 100) for i in range(5)] + [fix("闽DT0002", vclass="taxi")])
    d = view.delta()
    assert [row[0] for row in d["v"]] == [0, 1]
    assert d["v"][0][1] == 24.44
    assert d["nv"] == [[0, "闽DH0001", HAZMAT], [1, "闽DT0002", TAXI]]


def test_a_fix_not_newer_than_the_last_one_never_moves_the_vehicle():
    view, _ = make()
    view.apply_fixes([fix(ts=T0, lat=24.45)])
    view.delta()
    assert view.apply_fixes([fix(ts=T0, lat=24.46), fix(ts=T0 - 30, lat=24.47)]) == 0  # duplicate, late re-upload
    assert view.delta() is None
    assert view.track("闽DH0001")["points"] == [[T0, 24.45, 118.04]]


def test_fixes_the_worker_would_reject_as_invalid_or_inaccurate_are_not_drawn():
    view, _ = make()
    assert view.apply_fixes([fix(valid=False), fix("闽D2", status_flags=0), fix("闽D3", accuracy_m=500.0)]) == 0
    assert view.delta() is None and view.vehicle_count() == 0


def test_a_class_change_re_announces_the_vehicle():
    view, _ = make()
    view.apply_fixes([fix(vclass="other")])
    view.delta()
    view.apply_fixes([fix(ts=T0 + 1, vclass="hazmat")])
    assert view.delta()["nv"] == [[0, "闽DH0001", HAZMAT]]


def test_the_track_is_bounded_and_oldest_first():
    view, _ = make(track_fixes=3)
    view.apply_fixes([fix(ts=T0 + i, lat=24.40 + i / 1000) for i in range(10)])
    assert view.track("闽DH0001")["points"] == [[T0 + 7, 24.407, 118.04], [T0 + 8, 24.408, 118.04],
                                                [T0 + 9, 24.409, 118.04]]
    assert view.track("闽D-unknown") is None


def test_a_silent_vehicle_leaves_and_its_slot_is_reused_only_after_it_was_announced_gone():
    view, clock = make(stale_s=60)
    view.apply_fixes([fix("A", ts=T0), fix("B", ts=T0)])
    view.delta()
    clock.advance(30)
    view.apply_fixes([fix("B", ts=T0 + 30)])
    view.delta()
    clock.advance(40)  # A silent 70 s, B 40 s
    view.apply_fixes([fix("C", ts=T0 + 70)])
    d = view.delta()
    assert d["g"] == [0] and d["nv"] == [[2, "C", HAZMAT]]  # C could not take A's slot in the same delta
    view.apply_fixes([fix("D", ts=T0 + 70)])
    assert view.delta()["nv"] == [[0, "D", HAZMAT]]
    assert view.track("A") is None and view.vehicle_count() == 3
    assert [row[1] for row in view.snapshot()["vehicles"]] == ["D", "B", "C"]


def test_stale_s_zero_keeps_every_vehicle():
    view, clock = make(stale_s=0)
    view.apply_fixes([fix()])
    view.delta()
    clock.advance(10 * 86400)
    assert view.delta() is None and view.vehicle_count() == 1


def test_an_incident_opens_on_the_enter_alert_and_closes_on_its_exit():
    view, _ = make()
    view.apply_alert(alert("zone.enter", "inc-1", "inc-1", since_at="2026-09-08T09:59:58.000+08:00"))
    d = view.delta()
    assert [a["kind"] for a in d["a"]] == ["zone.enter"]
    assert d["io"] == [{"id": "inc-1", "kind": "zone.enter", "severity": "critical",
                        "since": "2026-09-08T09:59:58.000+08:00", "vehicle_id": "闽DH0001", "class": "hazmat",
                        "zone_id": "haicang-tunnel", "zone_name": "Haicang Tunnel", "lat": 24.4815, "lon": 118.0441}]
    assert [i["id"] for i in view.snapshot()["incidents"]] == ["inc-1"]
    view.apply_alert(alert("zone.exit", "exit-1", "inc-1", severity="info", reason="left"))
    d = view.delta()
    assert d["ic"] == ["inc-1"] and view.snapshot()["incidents"] == []


@pytest.mark.parametrize(("opening", "closing"), [("zone.overspeed", "zone.overspeed_end"),
                                                  ("zone.deviation", "zone.return"),
                                                  ("vehicle.offline", "vehicle.online")])
def test_every_kind_of_incident_closes_with_its_own_closing_alert(opening, closing):
    view, _ = make()
    view.apply_alert(alert(opening, "o", "inc", severity="warning"))
    assert view.delta()["io"][0]["kind"] == opening
    view.apply_alert(alert(closing, "c", "inc", severity="info"))
    assert view.delta()["ic"] == ["inc"]


def test_an_incident_opened_and_closed_within_one_tick_sends_only_the_alerts():
    view, _ = make()
    view.apply_alert(alert("zone.enter", "inc-1", "inc-1"))
    view.apply_alert(alert("zone.exit", "exit-1", "inc-1", severity="info"))
    d = view.delta()
    assert len(d["a"]) == 2 and "io" not in d and "ic" not in d


def test_late_crossing_approach_and_watch_presence_alerts_open_no_incident():
    view, _ = make()
    view.apply_alert(alert("zone.enter", "late-1", "late-1", late=True))
    view.apply_alert(alert("zone.cross", "x-1", "x-1"))
    view.apply_alert(alert("zone.approach", "ap-1", "ap-1", severity="warning"))
    view.apply_alert(alert("zone.enter", "w-1", "w-1", severity="info", zone_id="xiamen-island"))
    d = view.delta()
    assert len(d["a"]) == 4 and "io" not in d


def test_a_dwell_alert_opens_its_incident_when_the_opening_alert_is_older_than_the_history():
    view, _ = make()
    view.apply_alert(alert("zone.dwell", "dwell-3", "inc-9"))
    assert view.delta()["io"][0]["id"] == "inc-9"
    view.apply_alert(alert("zone.dwell", "dwell-4", "inc-9"))
    assert "io" not in view.delta()


def test_replayed_alerts_are_shown_once_and_never_reopen_a_closed_incident():
    view, _ = make()
    view.apply_alert(alert("zone.enter", "inc-1", "inc-1"))
    view.apply_alert(alert("zone.exit", "exit-1", "inc-1", severity="info"))
    view.delta()
    assert view.apply_alert(alert("zone.enter", "inc-1", "inc-1")) is False
    assert view.delta() is None
    view.apply_alert(alert("zone.dwell", "dwell-1", "inc-1"))  # a repeat of the closed incident, new id
    assert "io" not in view.delta() and view.snapshot()["incidents"] == []


def at(minute: int) -> str:
    return f"2026-09-08T10:{minute:02d}:00.000+08:00"


def test_the_feed_keeps_the_newest_alerts_by_event_time_newest_first():
    view, _ = make(alerts_kept=3)
    for i in range(5):
        view.apply_alert(alert("zone.approach", f"a{i}", severity="warning", ts=at(i)))
    assert [a["alert_id"] for a in view.snapshot()["alerts"]] == ["a4", "a3", "a2"]
    assert [a["alert_id"] for a in view.delta()["a"]] == [f"a{i}" for i in range(5)]  # arrival order in a delta


def test_history_read_partition_by_partition_still_gives_the_newest_alerts():
    view, _ = make(alerts_kept=3)
    for aid, minute in [("p0-new", 50), ("p0-old", 10), ("p1-newest", 55), ("p1-mid", 30), ("p1-oldest", 1)]:
        view.apply_alert(alert("zone.approach", aid, severity="warning", ts=at(minute)))
    assert [a["alert_id"] for a in view.snapshot()["alerts"]] == ["p1-newest", "p0-new", "p1-mid"]
    assert "p1-oldest" not in [a["alert_id"] for a in view.delta()["a"]]  # older than the whole feed: not sent


def test_an_alert_too_old_for_the_feed_still_closes_its_incident():
    view, _ = make(alerts_kept=1)
    view.apply_alert(alert("zone.enter", "inc-1", "inc-1", ts=at(5)))
    view.apply_alert(alert("zone.approach", "ap", severity="warning", ts=at(59)))
    view.delta()
    view.apply_alert(alert("zone.exit", "exit-1", "inc-1", severity="info", ts=at(6)))
    d = view.delta()
    assert d["ic"] == ["inc-1"] and "a" not in d


def test_driver_alerts_carry_no_rule_reason_records_or_id_number_to_the_map():
    view, _ = make()
    view.apply_alert({"alert_id": "d-1", "kind": "driver.flagged", "severity": "critical", "ts": "x",
                      "detected_at": "y", "driver_key": "ab" * 32, "id_number": "3502**********123X",
                      "rule": "art14.drug_use", "reason": "Registered for drug use ...", "records": ["R1"],
                      "action": "suspended", "subject": "ab" * 32})
    [a] = view.snapshot()["alerts"]
    assert a == {"alert_id": "d-1", "kind": "driver.flagged", "severity": "critical", "ts": "x", "detected_at": "y",
                 "action": "suspended"}


@pytest.mark.parametrize(("record", "reason"), [([1, 2], "bad_shape"), ({"kind": "zone.enter"}, "missing_field"),
                                                ({"alert_id": "", "kind": "x"}, "missing_field")])
def test_a_record_that_is_not_an_alert_is_refused_with_a_reason(record, reason):
    view, _ = make()
    with pytest.raises(InvalidRecord) as err:
        view.apply_alert(record)
    assert err.value.reason == reason
    assert view.delta() is None


def test_alert_coordinates_are_rounded_and_non_numbers_dropped():
    view, _ = make()
    view.apply_alert(alert("zone.approach", "a", lat=24.481234567, lon="nan"))
    [a] = view.snapshot()["alerts"]
    assert a["lat"] == 24.48123 and "lon" not in a


def test_open_tasks_are_listed_changed_and_removed_when_closed_or_deleted():
    view, _ = make()
    view.apply_task("T-1", task("T-1"))
    view.apply_task("T-2", task("T-2", level="city", overdue=True, lat=None, long=None))
    d = view.delta()
    assert [t["id"] for t in d["t"]] == ["T-1", "T-2"]
    t1, t2 = d["t"]
    assert t1 == {"id": "T-1", "status": "open", "level": "street", "overdue": False, "lat": 24.45, "lon": 118.08,
                  "code": "road-hazard", "name": "Road hazard", "state": "dispatched", "agency": "Siming roads",
                  "requested": "2026-09-08T09:00:00+08:00", "updated": "2026-09-08T09:10:00+08:00",
                  "expected": "2026-09-08T21:00:00+08:00", "description": "pothole"}
    assert t2["overdue"] is True and "lat" not in t2
    view.apply_task("T-1", task("T-1", status="closed"))
    view.apply_task("T-2", None)  # tombstone
    d = view.delta()
    assert d["tc"] == ["T-1", "T-2"] and view.snapshot()["tasks"] == []
    view.apply_task("T-3", task("T-3", status="closed"))  # closed before it was ever seen open
    assert view.delta() is None


def test_long_task_text_is_truncated():
    view, _ = make()
    view.apply_task("T-1", task("T-1", description="x" * 5000))
    assert len(view.snapshot()["tasks"][0]["description"]) == 201


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("T-1", "not an object", "bad_shape"),
    (None, {**task(), "service_request_id": None}, "missing_field"),
    ("T-9", task("T-1"), "key_mismatch"),
    ("T-1", task(status="pending"), "bad_status"),
    ("T-1", task(level="province"), "bad_level"),
    ("T-1", task(lat=95.0), "bad_coordinates"),
    ("T-1", task(long=None), "bad_coordinates"),
])
def test_a_bad_task_record_is_refused_naming_what_is_wrong(key, value, reason):
    view, _ = make()
    with pytest.raises(InvalidRecord) as err:
        view.apply_task(key, value)
    assert err.value.reason == reason and str(err.value)
    assert view.delta() is None


def test_the_snapshot_holds_everything_and_the_next_delta_follows_it():
    view, _ = make()
    view.apply_fixes([fix(speed_kmh=50.0, heading=90.0)])
    view.apply_alert(alert("zone.enter", "inc-1", "inc-1"))
    view.apply_task("T-1", task())
    view.delta()
    snap = view.snapshot()
    assert snap["seq"] == 1 and snap["classes"] == list(CLASSES)
    assert snap["vehicles"] == [[0, "闽DH0001", HAZMAT, 24.48, 118.04, 50, 90, 0]]
    assert [len(snap[k]) for k in ("alerts", "incidents", "tasks")] == [1, 1, 1]
    view.apply_fixes([fix(ts=T0 + 1)])
    assert view.delta()["seq"] == snap["seq"] + 1


def test_grid_boundaries_are_sent_with_the_zones_and_a_zone_of_the_same_id_wins():
    from engine.onemap.zones import DisplayZone

    view, _ = make()
    square = {"type": "Polygon", "coordinates": [[[118.1, 24.5], [118.2, 24.5], [118.2, 24.6], [118.1, 24.5]]]}
    grid = [DisplayZone(g, None, {"type": "Feature", "id": g, "geometry": square,
                                  "properties": {"id": g, "rule": "grid"}}) for g in ("g1", "same")]
    view.set_grid(grid)
    assert [f["id"] for f in view.delta()["zones"]] == ["g1", "same"]
    view.set_zones([DisplayZone("same", None, {"type": "Feature", "id": "same", "geometry": square,
                                               "properties": {"id": "same", "rule": "watch"}})])
    assert [(f["id"], f["properties"]["rule"]) for f in view.snapshot()["zones"]] == [("same", "watch"), ("g1", "grid")]
