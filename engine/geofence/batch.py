"""The vectorised geometry of one batch, and the per-index lookups the checker needs.

Everything here runs once per batch over numpy arrays (engine.geofence.index):
the point test, the segment test from each live fix's previous position,
distances to zones with ``approach_m`` (only when the index has any, and only
for fixes of classes such zones concern), and signed distances to the
boundary for the few (fix, zone) pairs where hysteresis needs them: zones in a
vehicle's stored state, zones its fixes touch in this batch, its corridors.
The per-fix loop then only looks results up.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from engine.geofence.index import ZoneIndex
from engine.telemetry.models import Fix


class LiveRow(Protocol):
    fix: Fix
    row: int


class IndexView:
    """An index with what the checker derives from it; swapped as one object."""

    def __init__(self, index: ZoneIndex):
        self.index = index
        self.zones = index.zones
        self.pos = {z.id: i for i, z in enumerate(index.zones)}
        corridors: dict[str, list[int]] = defaultdict(list)
        for i, z in enumerate(index.zones):
            for vid in z.vehicles or ():
                corridors[vid].append(i)
        self.corridors = {vid: tuple(ix) for vid, ix in corridors.items()}
        approach = [z for z in index.zones if z.rule == "forbid" and z.approach_m is not None]
        self.approach_max = max((z.approach_m or 0.0 for z in approach), default=None)
        classes = [c for z in approach if (c := z.classes) is not None]
        self.approach_classes = frozenset().union(*classes) if len(classes) == len(approach) else None


class BatchGeometry:
    """The batch's vectorised geometry, looked up per (row, zone); rows far from every zone cost nothing."""

    def __init__(self, view: IndexView, x: np.ndarray, y: np.ndarray, px: np.ndarray, py: np.ndarray, rows: np.ndarray,
                 accepted: Sequence[LiveRow], late_rows: list[int], batch: list[Fix], stored: dict[str, set[int]],
                 margin: float):
        index = view.index
        self.view = view
        self._inside: dict[int, set[int]] = defaultdict(set)
        self._crossed: dict[int, set[int]] = defaultdict(set)
        self._approach: dict[int, dict[int, float]] = defaultdict(dict)
        fix, zone = index.point_hits(x[rows], y[rows])
        for i, z in zip(rows[fix].tolist(), zone.tolist()):
            self._inside[i].add(z)
        live = np.array([a.row for a in accepted], dtype=np.intp)
        if live.size:
            fix, zone = index.segment_hits(px[live], py[live], x[live], y[live])
            for i, z in zip(live[fix].tolist(), zone.tolist()):
                self._crossed[i].add(z)
        if live.size and view.approach_max is not None:
            self._approaches(view, x, y, live, accepted, margin)
        self._distances = self._signed(view, x, y, accepted, late_rows, batch, stored)

    def _approaches(self, view: IndexView, x: np.ndarray, y: np.ndarray, live: np.ndarray, accepted: Sequence[LiveRow],
                    margin: float) -> None:
        wanted, reach = view.approach_classes, view.approach_max
        assert reach is not None  # called only when the index has zones with approach_m
        rows = live if wanted is None else live[[a.fix.vclass in wanted for a in accepted]]
        if not rows.size:
            return
        fix, zone, dist = view.index.distance_hits(x[rows], y[rows], reach + margin)
        for i, z, d in zip(rows[fix].tolist(), zone.tolist(), dist.tolist()):
            zn = view.zones[z]
            if zn.rule == "forbid" and zn.approach_m is not None and d <= zn.approach_m + margin:
                self._approach[i][z] = d

    def _signed(self, view: IndexView, x: np.ndarray, y: np.ndarray, accepted: Sequence[LiveRow], late_rows: list[int],
                batch: list[Fix], stored: dict[str, set[int]]) -> dict[tuple[int, int], float]:
        """Signed distances for each vehicle's zones: in its state, touched in this batch, its corridors."""
        zones_of: dict[str, set[int]] = defaultdict(set)
        for vid, zs in stored.items():
            zones_of[vid] |= zs
        self._near: dict[int, set[int]] = {}
        for a in accepted:
            near = self._touching(a.row, a.fix.vehicle_id)
            if near:
                self._near[a.row] = near
                zones_of[a.fix.vehicle_id] |= near
        pairs_r: list[int] = []
        pairs_z: list[int] = []
        for a in accepted:
            for z in zones_of.get(a.fix.vehicle_id, ()):
                pairs_r.append(a.row)
                pairs_z.append(z)
        for r in late_rows:
            for z in view.corridors.get(batch[r].vehicle_id, ()):
                pairs_r.append(r)
                pairs_z.append(z)
        if not pairs_r:
            return {}
        rr, zz = np.array(pairs_r, dtype=np.intp), np.array(pairs_z, dtype=np.intp)
        d = view.index.signed_distance(x[rr], y[rr], zz)
        return dict(zip(zip(pairs_r, pairs_z), d.tolist()))

    def inside(self, row: int) -> set[int] | frozenset[int]:
        return self._inside.get(row, _NONE)

    def crossed(self, row: int) -> set[int] | frozenset[int]:
        return self._crossed.get(row, _NONE)

    def approach(self, row: int, zone: int) -> float | None:
        near = self._approach.get(row)
        return near.get(zone) if near else None

    def involved(self, row: int) -> set[int] | frozenset[int]:
        """Zones a live fix touches: inside, crossed on the way, within approach distance, the vehicle's corridors."""
        return self._near.get(row, _NONE)

    def _touching(self, row: int, vid: str) -> set[int]:
        out: set[int] = set()
        for part in (self._inside.get(row), self._crossed.get(row), self._approach.get(row),
                     self.view.corridors.get(vid)):
            if part:
                out.update(part)
        return out

    def distance(self, row: int, zone: int) -> float:
        d = self._distances.get((row, zone))
        if d is not None:
            return d
        a = self.approach(row, zone)
        return math.inf if a is None else a


_NONE: frozenset[int] = frozenset()
