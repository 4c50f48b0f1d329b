"""Transitions as a pure function: enter/exit/cross, stable ids, no double events."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.geofence.transitions import transition


def test_enter_then_stay_then_exit():
    m, ev = transition("v", {}, {"z"}, {"z"}, ts=10.0, prev_ts=None)
    assert [(e.kind, e.zone_id) for e in ev] == [("zone.enter", "z")]
    inc = ev[0].incident_id
    assert ev[0].alert_id == inc
    m, ev = transition("v", m, {"z"}, {"z"}, ts=20.0, prev_ts=10.0)
    assert ev == [] and m["z"]["incident"] == inc
    m, ev = transition("v", m, set(), {"z"}, ts=30.0, prev_ts=20.0)
    assert [(e.kind, e.incident_id, e.since, e.reason) for e in ev] == [("zone.exit", inc, 10.0, "left")]
    assert ev[0].alert_id != inc and m == {}


def test_cross_needs_a_previous_fix_and_both_ends_outside():
    _, ev = transition("v", {}, set(), {"z"}, ts=20.0, prev_ts=10.0)
    assert [e.kind for e in ev] == ["zone.cross"]
    _, ev = transition("v", {}, set(), {"z"}, ts=20.0, prev_ts=None)
    assert ev == []
    _, ev = transition("v", {}, {"z"}, {"z"}, ts=20.0, prev_ts=10.0)
    assert [e.kind for e in ev] == ["zone.enter"]


def test_ids_are_stable_and_distinct_per_vehicle_zone_and_time():
    a = transition("v", {}, {"z"}, set(), ts=10.0, prev_ts=None)[1][0].alert_id
    assert a == transition("v", {}, {"z"}, set(), ts=10.0, prev_ts=None)[1][0].alert_id
    assert a != transition("w", {}, {"z"}, set(), ts=10.0, prev_ts=None)[1][0].alert_id
    assert a != transition("v", {}, {"y"}, set(), ts=10.0, prev_ts=None)[1][0].alert_id
    assert a != transition("v", {}, {"z"}, set(), ts=11.0, prev_ts=None)[1][0].alert_id


def test_exit_reason_is_passed_through():
    m, _ = transition("v", {}, {"z"}, set(), ts=1.0, prev_ts=None)
    _, ev = transition("v", m, set(), set(), ts=2.0, prev_ts=1.0, exit_reasons={"z": "zone_removed"})
    assert ev[0].reason == "zone_removed"


@given(st.lists(st.tuples(st.sets(st.sampled_from("abc")), st.sets(st.sampled_from("abc"))), max_size=40))
def test_per_zone_events_alternate_enter_exit(steps):
    """For every zone: enter and exit alternate, starting with enter; a cross never happens while inside."""
    m: dict = {}
    history: dict[str, list[str]] = {}
    for i, (inside, crossed) in enumerate(steps):
        m, ev = transition("v", m, set(inside), set(crossed) | set(inside), ts=float(i), prev_ts=i - 1.0 if i else None)
        for e in ev:
            history.setdefault(e.zone_id, []).append(e.kind)
        assert set(m) == set(inside)
    for kinds in history.values():
        seq = [k for k in kinds if k != "zone.cross"]
        assert seq == ["zone.enter", "zone.exit"] * (len(seq) // 2) + (["zone.enter"] if len(seq) % 2 else [])
        inside_now = False
        for k in kinds:
            assert not (k == "zone.cross" and inside_now)
            inside_now = {"zone.enter": True, "zone.exit": False}.get(k, inside_now)
