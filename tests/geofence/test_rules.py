"""Zone rules, incidents and hysteresis through the checker, in metres, with a fake clock."""

from __future__ import annotations

import pytest

from engine.geofence.index import ZoneIndex
from engine.geofence.intake import log_position
from engine.settings import Settings
from tests.geofence.plane import CRS, Run, circle, fix, load, rect, road

CONTRACT = ("alert_id", "kind", "severity", "ts", "detected_at", "vehicle_id", "class", "zone_id", "zone_name",
            "lat", "lon")


def drive(vid, points, *, t0=0.0, dt=10.0, **kw):
    """Fixes every ``dt`` s through ``points`` (east, north)."""
    return [fix(vid, t0 + dt * i, e, n, **kw) for i, (e, n) in enumerate(points)]


def line(e0, e1, step, north=100.0):
    return [(float(e), north) for e in range(e0, e1 + 1, step)]


# --- forbid: incidents -----------------------------------------------------------------------------


@pytest.fixture
def ban():
    return load(rect("ban", 0, 0, 200, 200, classes=["hazmat"], exempt=["police"]))


def test_violation_opens_one_incident_and_the_exit_closes_it_with_the_duration(ban):
    r = Run(ban)
    r.each(drive("h", line(-140, 360, 50)))   # inside from e=10 (t=30); 210 is 10 m out (t=70), 260 is 60 m out
    assert r.kinds() == [("zone.enter", "ban"), ("zone.exit", "ban")]
    enter, exit_ = r.alerts
    assert all(k in enter for k in CONTRACT)
    assert enter["severity"] == "critical" and exit_["severity"] == "info"
    assert exit_["incident_id"] == enter["incident_id"] == enter["alert_id"] != exit_["alert_id"]
    assert exit_["reason"] == "left" and exit_["duration_s"] == 40.0   # left at the first fix outside (t=70)
    assert exit_["since_at"] == enter["ts"]


def test_ids_are_stable_whatever_the_batching(ban):
    track = drive("h", line(-150, 350, 50))
    offsets = [(100 + i, 0) for i in range(len(track))]
    one = Run(ban)
    one.feed(*track, positions=offsets)
    each = Run(ban)
    for f, pos in zip(track, offsets):
        each.feed(f, positions=[pos])
    assert [a["alert_id"] for a in one.alerts] == [a["alert_id"] for a in each.alerts]
    assert each.states["h"]["pos"] == log_position(100 + len(track) - 1, 0)
    replay = Run(ban)
    replay.states = dict(each.states)
    replay.feed(*track, positions=offsets)   # a rebalance replays the log on restored state: nothing new
    assert replay.alerts == [] and {r.reason for r in replay.rejections} == {"duplicate"}
    assert replay.states == each.states


def test_exempt_and_other_classes_raise_nothing(ban):
    r = Run(ban)
    r.feed(*drive("p", line(-150, 350, 50), vclass="police"), *drive("t", line(-150, 350, 50), vclass="taxi"))
    assert r.alerts == []


# --- hysteresis -------------------------------------------------------------------------------------


def test_truck_parked_on_the_boundary_raises_one_incident_not_fifty(ban):
    r = Run(ban)
    noise = [(-8, 3), (6, -4), (-12, 5), (9, 1), (-3, -9), (11, 6), (-10, -2), (4, 8), (-7, 7), (13, -5)]
    fixes = [fix("h", 30 * i, noise[i % 10][0], 100 + noise[i % 10][1], speed_kmh=0) for i in range(50)]
    r.each(fixes)                     # the west edge is e=0: fixes 3-13 m either side of it
    assert r.kinds() == [("zone.enter", "ban")]
    r.each([fix("h", 1500 + 30 * i, -100 - 50 * i, 100, speed_kmh=20) for i in range(2)])
    assert r.kinds() == [("zone.enter", "ban"), ("zone.exit", "ban")]


def test_moving_along_the_boundary_leaves_after_n_fixes_and_does_not_flap(ban):
    r = Run(ban)
    # Inside, then creeping north just outside the east edge (e=200), 5-12 m out: a soft exit after 3 fixes.
    r.each([fix("h", 0, 150, 100), fix("h", 10, 190, 110), fix("h", 20, 205, 120), fix("h", 30, 208, 130)])
    assert r.kinds() == [("zone.enter", "ban")]
    r.each([fix("h", 40, 212, 140)])
    assert r.kinds() == [("zone.enter", "ban"), ("zone.exit", "ban")]
    assert r.alerts[-1]["ended_at"] == "2026-09-08T10:00:20.000+08:00"   # the first of the fixes outside
    # Noise back over the edge by a few metres does not re-enter (it never got clear of the margin) ...
    r.each([fix("h", 50, 196, 150), fix("h", 60, 205, 160), fix("h", 70, 197, 170), fix("h", 80, 210, 180)])
    assert len(r.alerts) == 2
    # ... but three moving fixes inside in a row, or one deeper than the margin, do.
    r.each([fix("h", 90, 195, 170), fix("h", 100, 194, 160), fix("h", 110, 196, 150)])
    assert r.kinds()[2:] == [("zone.enter", "ban")]


def test_a_fix_outside_by_more_than_the_margin_leaves_at_once(ban):
    r = Run(ban)
    r.each([fix("h", 0, 100, 100), fix("h", 10, 216, 100)])
    assert r.kinds() == [("zone.enter", "ban"), ("zone.exit", "ban")]


def test_re_entry_deeper_than_the_margin_is_immediate(ban):
    r = Run(ban)
    r.each([fix("h", 0, 100, 100), fix("h", 10, 205, 100), fix("h", 20, 206, 110), fix("h", 30, 207, 120)])
    assert r.kinds() == [("zone.enter", "ban"), ("zone.exit", "ban")]
    r.each([fix("h", 40, 180, 120)])   # 20 m deep
    assert r.kinds()[2:] == [("zone.enter", "ban")]


def test_first_entry_is_never_delayed_even_one_metre_deep_for_one_fix(ban):
    r = Run(ban)
    r.each([fix("h", 0, -100, 100), fix("h", 10, 1, 100), fix("h", 20, -100, 120)])
    assert r.kinds() == [("zone.enter", "ban"), ("zone.exit", "ban")]


def test_sparse_fixes_across_a_thin_zone_are_a_crossing():
    r = Run(load(road("portal", [(0, -500), (0, 500)], 20)))
    r.each([fix("h", 0, -300, 0), fix("h", 30, 300, 0)])
    assert r.kinds() == [("zone.cross", "portal")]
    cross = r.alerts[0]
    assert cross["severity"] == "critical" and cross["from_lon"] < cross["lon"] and cross["from_at"]


def test_noise_beside_a_zone_after_a_crossing_is_not_more_crossings():
    r = Run(load(road("portal", [(0, -500), (0, 500)], 20)))
    r.each([fix("h", 0, -300, 0), fix("h", 30, 18, 0)])          # crossed, ends 8 m past the edge
    r.each([fix("h", 60, -14, 0, speed_kmh=0), fix("h", 90, 16, 0, speed_kmh=0), fix("h", 120, -13, 2, speed_kmh=0)])
    assert r.kinds() == [("zone.cross", "portal")]
    r.each([fix("h", 150, 300, 0), fix("h", 200, -300, 0)])     # clear of the margin, then across again
    assert r.kinds() == [("zone.cross", "portal")] * 2


def test_hysteresis_is_a_setting(ban):
    s = Settings().replace(geofence={"exit_margin_m": 50, "exit_fixes": 1})
    r = Run(ban, settings=s)
    r.each([fix("h", 0, 100, 100), fix("h", 10, 230, 100)])    # 30 m out: within 50 m, but 1 fix is enough
    assert r.kinds() == [("zone.enter", "ban"), ("zone.exit", "ban")]


# --- dwell ------------------------------------------------------------------------------------------


@pytest.fixture
def depot():
    return load(rect("depot", 0, 0, 200, 200, rule="forbid", dwell_s=120, dwell_repeat_s=300))


def test_a_short_visit_under_dwell_s_raises_nothing(depot):
    r = Run(depot)
    r.each(drive("h", [(-50, 100), (50, 100), (100, 100), (150, 100), (260, 100)], dt=20))
    assert r.alerts == []


def test_dwell_raises_after_dwell_s_then_repeats_without_bursts(depot):
    r = Run(depot)
    r.each([fix("h", 0, -50, 100), fix("h", 30, 100, 100), fix("h", 120, 100, 100, speed_kmh=0)])
    assert r.alerts == []                                           # inside 90 s
    r.each([fix("h", 160, 100, 100, speed_kmh=0)])                  # 130 s
    assert r.kinds() == [("zone.enter", "depot")]
    enter = r.alerts[0]
    assert enter["dwell_s"] == 130 and enter["since_at"].endswith("10:00:30.000+08:00")
    r.each([fix("h", 400, 100, 100, speed_kmh=0), fix("h", 1500, 100, 100, speed_kmh=0)])
    dwell = [a for a in r.alerts if a["kind"] == "zone.dwell"]
    assert [d["repeat"] for d in dwell] == [4]    # 1470 s inside = dwell_s + 4.5 repeats: one alert, the latest
    assert dwell[0]["incident_id"] == enter["alert_id"] and dwell[0]["severity"] == "critical"
    r.each([fix("h", 1600, 100, 100, speed_kmh=0), fix("h", 1800, 100, 100, speed_kmh=0)])   # repeat 5 at 1650
    r.each([fix("h", 1810, 400, 100)])
    assert r.kinds()[-2:] == [("zone.dwell", "depot"), ("zone.exit", "depot")]
    assert r.alerts[-1]["duration_s"] == 1780


# --- speed ------------------------------------------------------------------------------------------


@pytest.fixture
def slow():
    return load(rect("slow", 0, 0, 2000, 200, rule="speed", speed_limit_kmh=60))


def test_overspeed_longer_than_the_minimum_is_one_incident(slow):
    r = Run(slow)
    speeds = [50, 70, 75, 80, 72, 55, 50, 50]
    r.each([fix("h", 3 * i, 100 + 20 * i, 100, speed_kmh=v) for i, v in enumerate(speeds)])
    assert r.kinds() == [("zone.overspeed", "slow"), ("zone.overspeed_end", "slow")]
    start, end = r.alerts
    assert start["severity"] == "warning" and start["limit_kmh"] == 60 and start["ts"].endswith(":09.000+08:00")
    assert end["incident_id"] == start["alert_id"] and end["reason"] == "slowed" and end["severity"] == "info"
    assert end["duration_s"] == 12 and end["max_speed_kmh"] == 80     # over from t=3 to t=15


def test_a_brief_spike_is_not_overspeed(slow):
    r = Run(slow)
    r.each([fix("h", 3 * i, 100 + 20 * i, 100, speed_kmh=v) for i, v in enumerate([50, 90, 50, 90, 50, 50])])
    assert r.alerts == []


def test_speed_is_implied_from_positions_when_the_terminal_sends_none(slow):
    r = Run(slow)
    r.each([fix("h", 10 * i, 100 + 250 * i, 100, speed_kmh=None) for i in range(5)])   # 90 km/h
    assert r.kinds() == [("zone.overspeed", "slow")] and r.alerts[0]["speed_kmh"] == pytest.approx(90, abs=0.5)


def test_leaving_the_zone_closes_the_overspeed(slow):
    r = Run(slow)
    r.each([fix("h", 10 * i, 1500 + 250 * i, 100, speed_kmh=90) for i in range(4)])
    assert r.kinds() == [("zone.overspeed", "slow"), ("zone.overspeed_end", "slow")]
    assert r.alerts[1]["reason"] == "left"


# --- corridor ---------------------------------------------------------------------------------------


@pytest.fixture
def route():
    return load(road("route", [(0, 0), (2000, 0)], 40, rule="corridor", vehicles=["R1"],
                     schedule=[{"start": "2026-09-08T09:00:00+08:00", "end": "2026-09-08T12:00:00+08:00"}]))


def test_assigned_vehicle_on_its_route_is_quiet_and_others_are_ignored(route):
    r = Run(route)
    wobble = [(100 * i, (-1) ** i * 12) for i in range(15)]             # noise around the centre line
    r.each(drive("R1", wobble) + drive("X", [(100 * i, 500) for i in range(5)]))
    assert r.alerts == []


def test_deviation_opens_and_return_closes(route):
    r = Run(route)
    r.each(drive("R1", [(0, 0), (100, 0), (200, 80), (300, 200), (400, 60), (500, 0)]))
    assert r.kinds() == [("zone.deviation", "route"), ("zone.return", "route")]
    dev, ret = r.alerts
    assert dev["severity"] == "warning" and dev["distance_m"] == pytest.approx(60, abs=0.5)
    assert ret["incident_id"] == dev["alert_id"] and ret["reason"] == "returned" and ret["duration_s"] == 30


def test_drifting_just_outside_the_corridor_deviates_after_n_moving_fixes(route):
    r = Run(route)
    r.each(drive("R1", [(0, 0), (100, 25), (200, 28), (300, 26)]))  # 5-8 m outside the 20 m half-width
    assert r.kinds() == [("zone.deviation", "route")]
    assert r.alerts[0]["since_at"].endswith(":10.000+08:00")


def test_outside_the_schedule_the_route_is_not_enforced(route):
    r = Run(route)
    r.each(drive("R1", [(0, 500), (100, 500)], t0=3 * 3600))          # 13:00
    assert r.alerts == []


# --- approach ---------------------------------------------------------------------------------------


@pytest.fixture
def guarded():
    return load(rect("ban", 0, 0, 200, 200, classes=["hazmat"], approach_m=100))


def test_approach_warns_once_per_approach(guarded):
    r = Run(guarded)
    # Comes within 100 m, wobbles around the 100 m line, stays out: one warning.
    r.each(drive("h", [(-300, 100), (-150, 100), (-90, 100), (-105, 100), (-95, 100), (-110, 100), (-85, 100)]))
    assert r.kinds() == [("zone.approach", "ban")]
    a = r.alerts[0]
    assert a["severity"] == "warning" and a["distance_m"] == 90 and a["approach_m"] == 100
    # Away beyond approach_m + margin re-arms; coming back warns again.
    r.each(drive("h", [(-300, 100), (-80, 100)], t0=100))
    assert r.kinds() == [("zone.approach", "ban")] * 2


def test_approach_re_arms_after_entering_and_leaving_but_not_on_the_way_out(guarded):
    r = Run(guarded)
    r.each(drive("h", [(-150, 100), (-50, 100), (50, 100), (250, 100), (260, 100), (330, 100), (280, 100)]))
    assert r.kinds() == [("zone.approach", "ban"), ("zone.enter", "ban"), ("zone.exit", "ban"),
                         ("zone.approach", "ban")]


def test_no_approach_for_vehicles_the_zone_does_not_concern(guarded):
    r = Run(guarded)
    r.each(drive("t", [(-150, 100), (-50, 100)], vclass="taxi"))
    assert r.alerts == []


# --- zones removed, schedules ending --------------------------------------------------------------


def test_set_index_closes_incidents_of_removed_zones_on_the_next_fix(ban):
    other = load(circle("fair", 5000, 5000, 300))
    r = Run(ban + other)
    r.each([fix("h", 0, 100, 100)])
    r.checker.set_index(ZoneIndex(other, crs=CRS))
    assert r.checker.index.zones == tuple(other)
    r.each([fix("h", 10, 110, 100)])
    assert r.kinds() == [("zone.enter", "ban"), ("zone.exit", "ban")]
    assert r.alerts[1]["reason"] == "zone_removed" and r.states["h"]["zones"] == {}


def test_every_open_incident_closes_with_the_reason_when_its_zone_goes():
    zones = load(rect("slow", 0, 0, 2000, 200, rule="speed", speed_limit_kmh=60),
                 road("route", [(0, 1000), (2000, 1000)], 40, rule="corridor", vehicles=["R1"]))
    r = Run(zones)
    r.each([fix("h", 10 * i, 100 * i, 100, speed_kmh=90) for i in range(3)] +
           drive("R1", [(0, 1300), (100, 1300)]))
    assert sorted(r.kinds()) == [("zone.deviation", "route"), ("zone.overspeed", "slow")]
    r.checker.set_index(ZoneIndex([], crs=CRS))
    r.alerts.clear()
    r.each([fix("h", 100, 500, 100, speed_kmh=90), fix("R1", 100, 300, 1300)])
    assert sorted(r.kinds()) == [("zone.overspeed_end", "slow"), ("zone.return", "route")]
    assert {a["reason"] for a in r.alerts} == {"zone_removed"}
