"""The fast lane changes nothing: a batch as columns gives what the per-fix checker gives for the same batch.

The scenarios of the property tests (vehicles near zone boundaries, noise, jumps, sparse and late fixes,
repeats, GPS-quality flags) plus vehicles far from every zone, fed batch by batch to two checkers: one
through ``check`` (per fix, states as dicts), one through ``check_columns`` (fast lane + per fix, states in a
partition's fleet of arrays). States, alerts and rejections must be equal after every batch.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.geofence.fleet import PartitionFleet
from engine.geofence.intake import log_position
from engine.telemetry.columns import from_fixes
from tests.geofence.plane import Run, fix, load, rect
from tests.geofence.test_engine_properties import TUNING, canonical, scenario

CASES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def far_fleet(draw_ints: list[int], n_vehicles: int) -> list:
    """Vehicles 5-8 km from the scenario's zones, each a few fixes along a road."""
    fixes = []
    for v in range(n_vehicles):
        e, n = 5000.0 + 300 * v, 6000.0
        for k in range(draw_ints[v % len(draw_ints)] % 4 + 1):
            fixes.append(fix(f"far{v}", 10.0 * k + v, e + 80 * k, n, vclass="taxi",
                             speed_kmh=None if (v + k) % 3 == 0 else 40.0))
    return fixes


def rejected(rejections) -> Counter:
    """Rejections as (vehicle, reason, detail, the fix's fields); 80 and 80.0 are the same number."""
    return Counter((r.vehicle_id, r.reason, r.detail, tuple(sorted(orjson.loads(r.raw).items())))
                   for r in rejections)


def check_into(run: Run, fleet: PartitionFleet, batch, positions=None):
    """``check_columns`` on ``batch`` against ``fleet``, its answer written back as the worker does."""
    cols = from_fixes(batch)
    res = run.checker.check_columns(cols, fleet, positions)
    for vid, state in res.states.items():
        fleet.put_state(vid, state)
    res.moves.apply(fleet, cols)
    return res


@CASES
@given(scenario(), st.lists(st.integers(0, 100), min_size=1, max_size=6), st.integers(0, 12), st.booleans())
def test_columns_give_what_the_per_fix_checker_gives(case, ints, n_far, with_positions):
    zones, batches = case
    far = far_fleet(ints, n_far)
    per_fix, columns = Run(zones, settings=TUNING), Run(zones, settings=TUNING)
    fleet = PartitionFleet(capacity=1)
    offset = 0
    for i, batch in enumerate(batches):
        batch = batch + far[i::len(batches)]
        positions = [log_position(offset, k) for k in range(len(batch))] if with_positions else None
        offset += 1
        a = per_fix.checker.check(batch, per_fix.states, positions)
        b = check_into(columns, fleet, batch, None if positions is None else np.array(positions, dtype=np.int64))
        per_fix.states.update(a.states)
        assert dict(fleet.items()) == per_fix.states
        assert canonical(b.alerts) == canonical(a.alerts)
        assert rejected(b.rejections) == rejected(a.rejections)
        assert (b.checked, b.late) == (a.checked, a.late)
        assert b.states.keys() | set(b.moves.vehicles) == a.states.keys()   # the lanes split the vehicles
        assert not b.states.keys() & set(b.moves.vehicles)


def test_vehicles_far_from_zones_take_the_fast_lane_and_near_ones_do_not():
    zones = load(rect("z", 0, 0, 100, 100))
    run, fleet = Run(zones, settings=TUNING), PartitionFleet()
    batch = [fix("near", 10, 50, 50), fix("far", 10, 5000, 5000), fix("far", 20, 5100, 5000, speed_kmh=None)]
    res = check_into(run, fleet, batch)
    assert [a["kind"] for a in res.alerts] == ["zone.enter"]
    assert res.moves.vehicles == ["far"] and list(res.states) == ["near"]
    far = fleet.state("far")
    assert far["zones"] == {} and far["ts"] == batch[2].ts and far["speed"] == 36.0  # 100 m in 10 s


def test_a_vehicle_settled_inside_a_zone_takes_the_fast_lane_until_it_leaves():
    zones = load(rect("z", 0, 0, 1000, 1000))
    run, fleet = Run(zones, settings=TUNING), PartitionFleet()
    check_into(run, fleet, [fix("v", 0, 500, 500)])                  # enters: the full lane opens the incident
    opened = fleet.state("v")["zones"]
    res = check_into(run, fleet, [fix("v", 10, 520, 500), fix("v", 20, 540, 500)])
    assert res.moves.vehicles == ["v"] and not res.states and not res.alerts   # nothing about the zone changed
    assert fleet.state("v")["zones"] == opened and fleet.state("v")["ts"] == fix("v", 20, 0, 0).ts
    res = check_into(run, fleet, [fix("v", 60, 1050, 500)])          # leaves, 50 m out
    assert [a["kind"] for a in res.alerts] == ["zone.exit"]
