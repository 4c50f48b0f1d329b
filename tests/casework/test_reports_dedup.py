"""Duplicate detection across partitions: the cells a task registers in always include every near report's cell."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.casework import dedup

CELL, RADIUS = 1000.0, 50.0
coord = st.floats(min_value=-5000, max_value=5000, allow_nan=False)


@settings(max_examples=500, deadline=None)
@given(coord, coord, st.floats(min_value=0, max_value=2 * math.pi), st.floats(min_value=0, max_value=RADIUS))
def test_a_report_within_the_radius_of_a_task_lands_in_a_cell_the_task_registered_in(x, y, angle, dist):
    bx, by = x + dist * math.cos(angle), y + dist * math.sin(angle)
    if math.hypot(bx - x, by - y) > RADIUS:  # rounding at the very edge
        return
    assert dedup.cell_of(bx, by, CELL) in dedup.cells_within(x, y, CELL, RADIUS)


@settings(max_examples=300, deadline=None)
@given(coord, coord)
def test_registered_cells_are_exactly_those_the_radius_reaches(x, y):
    got = dedup.cells_within(x, y, CELL, RADIUS)
    assert got[0] == dedup.cell_of(x, y, CELL) and len(got) == len(set(got)) <= 4
    cx, cy = got[0]
    for i in range(cx - 2, cx + 3):
        for j in range(cy - 2, cy + 3):
            dx = max(i * CELL - x, 0.0, x - (i + 1) * CELL)
            dy = max(j * CELL - y, 0.0, y - (j + 1) * CELL)
            assert ((i, j) in got) == (math.hypot(dx, dy) <= RADIUS)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(coord, coord, st.floats(min_value=0, max_value=200)), max_size=12), coord, coord)
def test_find_duplicate_is_the_nearest_live_entry_within_the_radius(points, x, y):
    entries = [{"id": str(i), "x": px, "y": py, "t": t} for i, (px, py, t) in enumerate(points)]
    got = dedup.find_duplicate(entries, x, y, 200.0, radius_m=RADIUS, window_s=100.0)
    live = [e for e in entries if 200.0 - e["t"] <= 100.0 and math.hypot(e["x"] - x, e["y"] - y) <= RADIUS]
    if not live:
        assert got is None
    else:
        best = min(math.hypot(e["x"] - x, e["y"] - y) for e in live)
        assert math.hypot(got["x"] - x, got["y"] - y) == best


def test_upsert_refreshes_by_id_and_drops_expired_entries():
    entries = [{"id": "a", "x": 0, "y": 0, "t": 0.0}, {"id": "b", "x": 0, "y": 0, "t": 500.0}]
    out = dedup.upsert(entries, {"id": "b", "x": 0, "y": 0, "t": 900.0}, 900.0, 600.0)
    assert out == [{"id": "b", "x": 0, "y": 0, "t": 900.0}]
    assert dedup.remove(out, "b") == []


def test_place_keys_name_the_service_and_cells():
    assert dedup.place_keys("obstruction", 1500.0, 2990.0, CELL, RADIUS) == ["obstruction/1/2", "obstruction/1/3"]


def decide(entries, first_id, x, t, cells=("s/0/0",)):
    return dedup.decide(entries, own=cells[0], cells=list(cells), first_id=first_id, x=x, y=500.0, t=t,
                        radius_m=RADIUS, window_s=3600.0)


def test_first_report_opens_a_task_and_registers_it_where_its_radius_reaches():
    d = decide([], "T1", 980.0, 0.0, cells=("s/0/0", "s/1/0"))
    assert (d.kind, d.task_id, d.new, d.register) == ("create", "T1", True, ["s/1/0"])
    assert d.entries == [d.entry] and d.entry["cells"] == ["s/0/0", "s/1/0"]


def test_near_later_report_merges_and_refreshes_the_window_everywhere():
    first = decide([], "T1", 980.0, 0.0, cells=("s/0/0", "s/1/0"))
    d = decide(first.entries, "T2", 990.0, 3000.0)
    assert (d.kind, d.task_id, d.new, d.register) == ("merge", "T1", False, ["s/1/0"])
    assert d.entry["t"] == 3000.0
    later = decide(d.entries, "T3", 985.0, 6500.0)  # within the window of the latest report, not the first
    assert later.kind == "merge" and later.task_id == "T1"


def test_replayed_first_report_repeats_the_create_and_far_or_stale_reports_open_new_tasks():
    first = decide([], "T1", 100.0, 0.0)
    replay = decide(first.entries, "T1", 100.0, 0.0)
    assert (replay.kind, replay.task_id, replay.new) == ("create", "T1", False)
    far = decide(first.entries, "T4", 160.0, 10.0)
    assert (far.kind, far.task_id, far.new) == ("create", "T4", True) and len(far.entries) == 2
    stale = decide(first.entries, "T5", 100.0, 3601.0)
    assert (stale.kind, stale.task_id) == ("create", "T5") and [e["id"] for e in stale.entries] == ["T5"]
