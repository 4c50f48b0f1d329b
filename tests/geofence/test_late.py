"""Late (re-uploaded) fixes: audited with ``late: true``, never moves, never touching live state."""

from __future__ import annotations

import pytest

from engine.telemetry.settings import FilterSettings
from tests.geofence.plane import Run, fix, load, rect, road


@pytest.fixture
def zones():
    return load(rect("ban", 0, 0, 200, 200, classes=["hazmat"]),
                rect("slowban", 1000, 0, 1200, 200, dwell_s=300),
                road("route", [(-3000, 1000), (3000, 1000)], 40, rule="corridor", vehicles=["h"]))


def test_a_coverage_gap_is_caught_live_as_a_crossing_and_audited_when_the_buffer_arrives(zones):
    r = Run(zones)
    r.each([fix("h", 0, 100, 1000), fix("h", 30, 100, 900)])          # leaves its route southwards
    assert r.kinds() == [("zone.deviation", "route")]
    r.alerts.clear()
    # Through the tunnel: no coverage. The next live fix is on the far side; the segment crosses the ban.
    r.feed(fix("h", 120, 100, -500))
    assert r.kinds() == [("zone.cross", "ban")]
    live_state = r.states["h"]
    r.alerts.clear()
    # The terminal re-uploads what it buffered: six fixes, three of them inside the ban.
    buffered = [fix("h", t, 100, n) for t, n in [(45, 700), (60, 400), (75, 180), (85, 100), (95, 20), (105, -200)]]
    res = r.feed(*buffered)
    assert res.late == 6 and res.rejections == [] and res.checked == 6
    assert r.states["h"] == live_state                                # not a move
    late = [a for a in r.alerts if a["zone_id"] == "ban"]
    assert [(a["kind"], a["late"]) for a in late] == [("zone.enter", True)]   # one alert for the gap
    assert late[0]["late_fixes"] == 3 and late[0]["last_late_at"] > late[0]["ts"]
    assert {a["zone_id"] for a in r.alerts} == {"ban", "route"}      # route: outside by > margin, also audited
    assert all(a["late"] for a in r.alerts)


def test_watch_zones_are_not_audited():
    r = Run(load(rect("watched", -2000, -2000, 2000, 2000, rule="watch")))
    r.feed(fix("k", 600, 0, 0))
    r.alerts.clear()
    res = r.feed(fix("k", 100, 10, 0))
    assert res.late == 1 and r.alerts == []


def test_the_same_late_fixes_again_give_the_same_ids(zones):
    r = Run(zones)
    r.feed(fix("h", 600, 100, 1000))
    first = r.feed(fix("h", 100, 100, 100), fix("h", 110, 110, 100)).alerts
    again = r.feed(fix("h", 120, 120, 100)).alerts       # same window of late_group_s (600 s)
    assert [a["alert_id"] for a in first] == [a["alert_id"] for a in again]


def test_late_fixes_never_close_or_open_live_incidents(zones):
    r = Run(zones)
    r.each([fix("k", 0, 100, 100), fix("k", 10, 110, 100)])
    assert r.kinds() == [("zone.enter", "ban")]
    r.feed(fix("k", 5, 500, 500))                          # older, far outside: no exit
    assert r.kinds() == [("zone.enter", "ban")] and r.states["k"]["zones"]["ban"]["in"] is True


def test_dwell_zones_are_not_judged_on_one_late_fix(zones):
    r = Run(zones)
    r.feed(fix("h", 600, 1100, 1000))
    r.feed(fix("h", 100, 1100, 100))
    assert [a for a in r.alerts if a["zone_id"] == "slowban"] == []


def test_a_spike_among_late_fixes_is_rejected(zones):
    r = Run(zones, settings=None)
    r.feed(fix("h", 600, -500, 1000))
    res = r.feed(fix("h", 100, -900, 1000), fix("h", 110, 100, 100), fix("h", 120, -880, 1000))
    assert [x.reason for x in res.rejections] == ["implausible_jump"] and res.late == 2
    assert r.alerts == []
    assert FilterSettings().max_implied_speed_kmh == 250


def test_replays_of_processed_late_fixes_are_duplicates(zones):
    r = Run(zones)
    r.feed(fix("k", 600, -500, 1000), positions=[(7, 0)])
    r.feed(fix("k", 100, 100, 100), positions=[(8, 0)])
    assert len(r.alerts) == 1
    r.feed(fix("k", 100, 100, 100), positions=[(8, 0)])       # a rebalance replays it
    assert len(r.alerts) == 1 and [x.reason for x in r.rejections] == ["duplicate"]
