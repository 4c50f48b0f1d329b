"""Presence with hysteresis and zone rules as pure functions: no index, no checker."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from engine.geofence.hysteresis import Presence, step
from engine.geofence.transitions import Observation, Tuning, close_zone, step_zone
from tests.geofence.plane import load, rect, road

FORBID = load(rect("z", 0, 0, 100, 100))[0]
CORRIDOR = load(road("c", [(0, 0), (1000, 0)], 20, rule="corridor", vehicles=["v"]))[0]
T = Tuning(margin=15.0, fixes=3, overspeed_min_s=5.0)


def obs(ts, d, *, crossed=False, moving=True, prev_ts=None, approach=None, speed=None):
    """An observation at signed distance ``d`` (< 0 inside)."""
    return Observation(ts, prev_ts if prev_ts is not None else (ts - 10 if ts else None), d <= 0, crossed or d <= 0,
                       d, approach, moving, speed)


def run(zone, distances, **kw):
    state, out = None, []
    for i, d in enumerate(distances):
        state, events = step_zone("v", zone, state, obs(10.0 * i, d, **kw), T)
        out += [e.kind for e in events]
    return state, out


def test_presence_enter_is_immediate_and_exit_needs_margin_or_n_moving_fixes():
    p = step(Presence(False), ts=0, inside=True, distance=-1, crossed=True, moving=True, margin=15, fixes=3)
    assert p.event == "enter"
    q = step(p.presence, ts=1, inside=False, distance=16, crossed=True, moving=True, margin=15, fixes=3)
    assert (q.event, q.left_at, q.presence.band) == ("exit", 1, False)
    p2 = p.presence
    for ts in (1, 2):
        p2 = step(p2, ts=ts, inside=False, distance=5, crossed=True, moving=True, margin=15, fixes=3).presence
    s = step(p2, ts=3, inside=False, distance=5, crossed=True, moving=True, margin=15, fixes=3)
    assert (s.event, s.left_at, s.presence.band) == ("exit", 1, True)


def test_stationary_fixes_are_no_evidence_of_leaving_or_re_entering():
    p = Presence(True)
    for ts in range(20):
        s = step(p, ts=ts, inside=False, distance=9 if ts % 2 else 25, crossed=True, moving=False, margin=15,
                 fixes=3)
        assert s.event is None
        p = s.presence
    band = Presence(False, band=True)
    assert step(band, ts=0, inside=True, distance=-30, crossed=True, moving=False, margin=15, fixes=3).presence == band
    # ... but a vehicle not near the zone enters even when stationary (parked inside when a ban begins).
    assert step(Presence(False), ts=0, inside=True, distance=-3, crossed=False, moving=False, margin=15,
                fixes=3).event == "enter"
    assert step(Presence(False), ts=0, inside=False, distance=3, crossed=True, moving=False, margin=15,
                fixes=3).event is None


def test_forbid_incident_enter_then_exit_with_one_id():
    state, kinds = run(FORBID, [50, 20, -5, -30, 5, 6, 7])
    assert kinds == ["zone.enter", "zone.exit"] and state is not None and state["band"]
    state, kinds = run(FORBID, [50, -5, -30, 40])
    assert kinds == ["zone.enter", "zone.exit"] and state is None   # hard exit: nothing left to remember


def test_corridor_starts_on_route_and_deviation_needs_evidence():
    _, kinds = run(CORRIDOR, [5, -2, 7])            # a little outside now and then: nothing
    assert kinds == []
    _, kinds = run(CORRIDOR, [40, -3])
    assert kinds == ["zone.deviation", "zone.return"]


def test_closing_by_reason_covers_every_open_incident():
    state, _ = run(FORBID, [-5])
    [ev] = close_zone("z", state, "schedule_ended", 99.0)
    assert (ev.kind, ev.fields["reason"], ev.fields["duration_s"], ev.severity) == ("zone.exit", "schedule_ended",
                                                                                   99.0, "info")
    assert close_zone("z", {"rule": "forbid", "in": True, "since": 1.0}, "zone_removed", 2.0) == []  # dwell pending


def test_cross_ids_depend_on_both_fixes_and_need_a_previous_fix():
    s, ev = step_zone("v", FORBID, None, Observation(20.0, 10.0, False, True, 50, None, True, None), T)
    assert [e.kind for e in ev] == ["zone.cross"] and ev[0].alert_id == ev[0].incident_id
    _, ev2 = step_zone("v", FORBID, None, Observation(21.0, 10.0, False, True, 50, None, True, None), T)
    assert ev2[0].alert_id != ev[0].alert_id
    _, ev3 = step_zone("v", FORBID, None, Observation(20.0, None, False, True, 50, None, True, None), T)
    assert ev3 == []


# Signed distances around a boundary, as a noisy and a moving vehicle would produce them.
distances = st.lists(st.one_of(st.floats(-40, 40), st.just(math.inf)), max_size=60)


@given(distances, st.lists(st.booleans(), min_size=60, max_size=60))
def test_per_zone_events_alternate_open_close(ds, moving):
    """Whatever the noise: enter/exit alternate starting with enter, and so do deviation/return."""
    for zone, opening, closing in ((FORBID, "zone.enter", "zone.exit"), (CORRIDOR, "zone.deviation", "zone.return")):
        state, kinds = None, []
        for i, d in enumerate(ds):
            state, events = step_zone("v", zone, state, obs(10.0 * i, d, moving=moving[i]), T)
            kinds += [e.kind for e in events if e.kind in (opening, closing)]
        assert kinds == [opening, closing] * (len(kinds) // 2) + [opening] * (len(kinds) % 2)


@given(distances)
def test_a_stationary_vehicle_opens_at_most_one_incident_and_keeps_it(ds):
    """Parked anywhere (noise of any size within 40 m): at most one enter, and no exit until it moves."""
    state, kinds = None, []
    for i, d in enumerate(ds):
        state, events = step_zone("v", FORBID, state, obs(10.0 * i, d, moving=False), T)
        kinds += [e.kind for e in events]
    assert kinds in ([], ["zone.enter"])
