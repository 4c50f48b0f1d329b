"""Fixes as columns: rows round-trip to Fix objects; take and concat keep rows and their strings."""

from __future__ import annotations

import numpy as np

from engine.telemetry.columns import FixColumns, concat, from_fixes
from engine.telemetry.models import Fix

FIXES = [Fix("闽DH0001", 1.5, 24.48, 118.04, "hazmat", speed_kmh=42.5, heading=270.0, accuracy_m=5.0, alarm_flags=0,
             received_at=2.0, valid=True, status_flags=3),
         Fix("闽D12345", 2.0, 24.6, 118.2, source="jt808"),
         Fix("bus-7", 3.25, 24.5, 118.1, "bus", valid=False)]


def test_rows_round_trip_with_missing_values():
    cols = from_fixes(FIXES)
    assert len(cols) == 3 and cols.fixes() == FIXES
    assert np.isnan(cols.speed_kmh[1]) and cols.alarm_flags[1] == -1 and cols.valid.tolist() == [1, -1, 0]
    assert cols.vclass.tolist() == ["hazmat", "other", "bus"]


def test_take_reorders_rows_and_concat_merges_the_string_tables():
    cols = from_fixes(FIXES)
    assert cols.take([2, 0]).fixes() == [FIXES[2], FIXES[0]]
    other = from_fixes([Fix("x", 9.0, 24.4, 118.0, "taxi", source="http")])
    both = concat([cols, other, FixColumns.empty()])
    assert both.fixes() == [*FIXES, other.fix(0)]
    assert set(both.classes) == {"hazmat", "other", "bus", "taxi"} and set(both.sources) == {"mqtt", "jt808", "http"}
