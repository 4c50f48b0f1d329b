"""Fixes as columns: one numpy array per field, many fixes per object, no Python object per fix.

This is how fixes travel between the bridge, Kafka and the worker's hot path. Missing optional values
are NaN (floats), -1 (the 32-bit flag words) and -1 (``valid``: 0 false, 1 true). ``vclass`` and
``source`` are small strings repeated on many rows: they are dictionary-encoded (``classes`` /
``sources`` hold the distinct strings, the row holds an index into them).

Only rows that need Python (near a zone, rejected, late) become :class:`~engine.telemetry.models.Fix`
objects, through :meth:`FixColumns.fix`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass

import numpy as np

from engine.telemetry.models import Fix

FLOAT_FIELDS = ("ts", "lat", "lon", "speed_kmh", "heading", "accuracy_m", "received_at")
FLAG_FIELDS = ("alarm_flags", "status_flags")
MISSING_FLAGS = -1


@dataclass(frozen=True, eq=False)
class FixColumns:
    """``n`` fixes, row ``i`` of every array being fix ``i``."""

    vehicle_id: list[str]
    ts: np.ndarray            # float64, epoch seconds (UTC)
    lat: np.ndarray           # float64, WGS-84 degrees
    lon: np.ndarray           # float64
    speed_kmh: np.ndarray     # float64, NaN = not sent
    heading: np.ndarray       # float64, NaN = not sent
    accuracy_m: np.ndarray    # float64, NaN = not sent
    received_at: np.ndarray   # float64, NaN = not known
    alarm_flags: np.ndarray   # int64, -1 = not sent
    status_flags: np.ndarray  # int64, -1 = not sent
    valid: np.ndarray         # int8, -1 = not sent, 0 false, 1 true
    class_code: np.ndarray    # uint8 index into ``classes``
    source_code: np.ndarray   # uint8 index into ``sources``
    _: KW_ONLY
    classes: tuple[str, ...]
    sources: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.vehicle_id)

    @property
    def vclass(self) -> np.ndarray:
        """Each row's class as a string array (for grouping; one lookup, no loop)."""
        return np.asarray(self.classes, dtype=object)[self.class_code] if len(self) else np.empty(0, dtype=object)

    def fix(self, i: int) -> Fix:
        """Row ``i`` as a :class:`Fix` (for the few rows that need Python)."""
        return Fix(
            vehicle_id=self.vehicle_id[i], ts=float(self.ts[i]), lat=float(self.lat[i]), lon=float(self.lon[i]),
            vclass=self.classes[self.class_code[i]], speed_kmh=_opt_float(self.speed_kmh[i]),
            heading=_opt_float(self.heading[i]), accuracy_m=_opt_float(self.accuracy_m[i]),
            alarm_flags=_opt_int(self.alarm_flags[i]), received_at=_opt_float(self.received_at[i]),
            source=self.sources[self.source_code[i]], valid=None if self.valid[i] < 0 else bool(self.valid[i]),
            status_flags=_opt_int(self.status_flags[i]))

    def fixes(self) -> list[Fix]:
        """Every row as a :class:`Fix` (readers that are not on the hot path)."""
        return [self.fix(i) for i in range(len(self))]

    def take(self, rows: np.ndarray | Sequence[int]) -> FixColumns:
        """The given rows, in that order (e.g. one partition's rows, or the rows sorted by vehicle and time)."""
        idx = np.asarray(rows, dtype=np.intp)
        ids = self.vehicle_id
        return FixColumns([ids[i] for i in idx.tolist()], *(getattr(self, name)[idx] for name in _ARRAYS),
                          classes=self.classes, sources=self.sources)

    @classmethod
    def empty(cls) -> FixColumns:
        return from_fixes([])


_ARRAYS = ("ts", "lat", "lon", "speed_kmh", "heading", "accuracy_m", "received_at", "alarm_flags", "status_flags",
           "valid", "class_code", "source_code")


def _opt_float(v: np.floating) -> float | None:
    return None if v != v else float(v)  # NaN != NaN


def _opt_int(v: np.integer) -> int | None:
    return None if v < 0 else int(v)


def _codes(values: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    table: dict[str, int] = {}
    codes = np.fromiter((table.setdefault(v, len(table)) for v in values), dtype=np.int64, count=len(values))
    if len(table) > 255:
        raise ValueError(f"{len(table)} distinct values in one batch: at most 255 can be dictionary-encoded")
    return codes.astype(np.uint8), tuple(table)


def from_fixes(fixes: Sequence[Fix]) -> FixColumns:
    """Columns from :class:`Fix` objects (the bridge's slow path, tests, tools)."""
    n = len(fixes)

    def floats(name: str) -> np.ndarray:
        return np.fromiter((np.nan if (v := getattr(f, name)) is None else v for f in fixes), np.float64, n)

    def flags(name: str) -> np.ndarray:
        return np.fromiter((MISSING_FLAGS if (v := getattr(f, name)) is None else v for f in fixes), np.int64, n)

    class_code, classes = _codes([f.vclass for f in fixes])
    source_code, sources = _codes([f.source for f in fixes])
    valid = np.fromiter((-1 if f.valid is None else int(f.valid) for f in fixes), np.int8, n)
    arrays = [*(floats(name) for name in FLOAT_FIELDS), *(flags(name) for name in FLAG_FIELDS), valid, class_code,
              source_code]
    return FixColumns([f.vehicle_id for f in fixes], *arrays, classes=classes, sources=sources)


def concat(parts: Sequence[FixColumns]) -> FixColumns:
    """One set of columns from several (their class and source tables merged).

    Cost per part is a dict lookup of its tables, not a numpy call, so joining many one-row parts (the
    bridge's batch of single-fix messages) stays cheap.
    """
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return FixColumns.empty()
    class_code, classes = _merged_codes(parts, "classes", "class_code")
    source_code, sources = _merged_codes(parts, "sources", "source_code")
    ids = [vid for p in parts for vid in p.vehicle_id]
    arrays = [np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAYS[:-2]]
    arrays += (class_code, source_code)
    return FixColumns(ids, *arrays, classes=classes, sources=sources)


def _merged_codes(parts: Sequence[FixColumns], table_name: str, code_name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """The parts' codes into one merged table (in order of first appearance)."""
    merged: dict[str, int] = {}
    base_of: dict[tuple[str, ...], int] = {}  # each distinct table's offset in ``lookup``
    lookup: list[int] = []                     # local code + its table's offset -> merged code
    bases = []
    for p in parts:
        table = getattr(p, table_name)
        base = base_of.get(table)
        if base is None:
            base = base_of[table] = len(lookup)
            lookup.extend(merged.setdefault(v, len(merged)) for v in table)
        bases.append(base)
    if len(merged) > 255:
        raise ValueError(f"{len(merged)} distinct {table_name} in one batch: at most 255 can be dictionary-encoded")
    codes = np.concatenate([getattr(p, code_name) for p in parts]).astype(np.intp)
    rows_base = np.repeat(np.asarray(bases, dtype=np.intp), [len(p) for p in parts])
    return np.asarray(lookup or [0], dtype=np.uint8)[rows_base + codes], tuple(merged)
