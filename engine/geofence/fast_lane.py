"""The batch's fast lane: vehicles far from every zone, decided over numpy columns without a Python object per fix.

Most fixes of a city's fleet are of vehicles on an ordinary road: no zone near, nothing pending, the next fix
a little further on. For those the checker's whole answer is the vehicle's new state (its last fix), and
that is computed here, vectorised over the batch:

1. rows grouped by vehicle and sorted by event time (one ``lexsort``);
2. a vehicle goes to the *full lane* (the checker's per-fix path, engine.geofence.checker) when anything
   about it needs Python: a fix a stateless GPS filter looks at (``valid``, JT/T 808 ``status_flags`` with
   the fix-valid bit clear while ``filters.invalid_fix`` is on, an accuracy worse than the limit), a fix
   whose alarm bits (engine.geofence.alarms) differ from the vehicle's open alarm episodes (the fleet's
   ``alarm`` column; ``alarm_flags`` not sent changes nothing), alarms last changed by a rejected fix newer
   than the vehicle's position (their ``as_of``; a vehicle without a position yet has one), a repeated or
   older timestamp (duplicates, replays, late fixes), pending jump suspects, zones in its stored state, an
   offline mark, a corridor assignment, a move the quick jump test does not pass, or any zone its fixes
   touch: inside, crossed on the way from the previous fix, or within an approach distance. (The rows a
   filter rejects are thus all decided there, their terminal alarms included: a rejected fix's bits are
   looked at only when it carries them, and go no further than a comparison when they equal the open ones);
3. every other vehicle gets its new state from its last fix, exactly as the full lane would build it.

A vehicle *settled inside* one zone also takes the fast lane: a ``forbid`` or ``watch`` zone, in force at all
times, without ``dwell_repeat_s`` or ``approach_m``, whose incident is open and whose presence has no exit
pending (the per-zone state is ``rule``, ``in``, ``since`` and ``inc``), when each of its fixes is inside that
zone only, its way from the previous fix touches no other zone, and the zone applies to the fix's class.
Such a fix changes nothing about the zone (no alert, the same per-zone state); only the position moves.

Sending a vehicle to the full lane is always correct (the full lane is the reference); the tests compare the
two on random batches. Only the choice of which vehicles may skip it lives here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.geofence.alarms import ALARM_MASK, AS_OF
from engine.geofence.batch import IndexView
from engine.geofence.fleet import NO_ZONES, PartitionFleet
from engine.telemetry.columns import FixColumns
from engine.telemetry.filters import FIX_VALID_BIT
from engine.telemetry.settings import FilterSettings

__all__ = ["NO_ZONES", "Lanes", "Moves", "split"]


@dataclass(frozen=True)
class Moves:
    """The fast lane's answer: each of its vehicles' new last fix, as columns (nothing else about it changes)."""

    vehicles: list[str]        # fast-lane vehicles
    rows: np.ndarray           # their rows in the fleet, -1 for a vehicle new to it
    src: np.ndarray            # the batch row of each one's newest fix
    x: np.ndarray
    y: np.ndarray
    speed: np.ndarray          # km/h, rounded to 0.01; NaN: unknown
    pos: np.ndarray | None     # newest log position (None: the batch had none; the stored one stays)

    def apply(self, fleet: PartitionFleet, cols: FixColumns) -> np.ndarray:
        """Write the moves into ``fleet`` (new vehicles get rows); returns the rows written."""
        rows = self.rows.copy()
        new = rows < 0
        if new.any():
            rows[new] = fleet.add([v for v, n in zip(self.vehicles, new.tolist()) if n])
        codes = np.array([fleet.code_of_class(c) for c in cols.classes], dtype=np.uint8)
        src = self.src
        fleet.write(rows, ts=cols.ts[src], lat=cols.lat[src], lon=cols.lon[src], x=self.x, y=self.y,
                    speed=self.speed, class_code=codes[cols.class_code[src]], pos=self.pos)
        return rows


NO_MOVES = Moves([], np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp), np.empty(0), np.empty(0),
                 np.empty(0), None)


@dataclass(frozen=True)
class Lanes:
    """How a batch splits: the full lane's rows (in their original order) and the fast lane's moves."""

    full_rows: np.ndarray                 # row numbers of ``cols`` for the checker's per-fix path
    moves: Moves                          # fast-lane vehicles' new last fixes
    checked: int                          # fast-lane fixes tested against the zones


def split(cols: FixColumns, x: np.ndarray, y: np.ndarray, fleet: PartitionFleet, positions: np.ndarray | None,
          view: IndexView, filt: FilterSettings, margin: float) -> Lanes:
    """Decide the fast lane of a batch against the vehicles' rows in ``fleet``; ``x``/``y`` are the batch's rows
    projected, ``positions`` their log positions."""
    n = len(cols)
    if n == 0:
        return Lanes(np.empty(0, dtype=np.intp), NO_MOVES, 0)
    ids = cols.vehicle_id
    code_of: dict[str, int] = {}
    codes = np.fromiter((code_of.setdefault(v, len(code_of)) for v in ids), dtype=np.intp, count=n)
    vehicles = list(code_of)
    m = len(vehicles)

    # Per vehicle: its stored row, and whether it must take the full lane whatever its fixes are.
    vrows = fleet.lookup(vehicles)
    known = vrows >= 0
    at = np.where(known, vrows, 0)
    last_ts = np.where(known, fleet.ts[at], np.nan)
    known &= ~np.isnan(last_ts)
    last_x, last_y = np.where(known, fleet.x[at], np.nan), np.where(known, fleet.y[at], np.nan)
    done = np.where(known, fleet.pos[at], -1)
    alarm = np.where(known, fleet.alarm[at], 0)   # the bits of each vehicle's open alarm episodes
    full_v = np.zeros(m, dtype=bool)
    settled = np.full(m, -1, dtype=np.intp)   # the zone (index position) a vehicle is settled inside, or -1
    if fleet.extra:   # only vehicles with zones, suspects, an offline mark or alarms: a Python look each
        extra_rows = np.fromiter(fleet.extra.keys(), dtype=np.intp, count=len(fleet.extra))
        for v in np.flatnonzero((vrows >= 0) & np.isin(vrows, extra_rows)).tolist():
            extra = fleet.extra[int(vrows[v])]
            if "sus" in extra or "off" in extra or AS_OF in extra.get("alarms", ()):
                full_v[v] = True
            elif extra.get("zones"):
                z = _settled_zone(extra["zones"], view)
                if z < 0:
                    full_v[v] = True
                settled[v] = z
    for vid in view.corridors:
        code = code_of.get(vid)
        if code is not None:
            full_v[code] = True

    # Rows a filter looks at, or the full lane's anyway.
    row_full = full_v[codes]
    row_full |= cols.valid >= 0
    if filt.invalid_fix:   # (the status word's other bits are nobody's business here)
        status = cols.status_flags
        row_full |= (status >= 0) & ((status & FIX_VALID_BIT) == 0)
    flags = cols.alarm_flags   # a fix that opens or clears an alarm episode
    row_full |= (flags >= 0) & ((flags & ALARM_MASK) != alarm[codes])
    if filt.max_accuracy_m > 0:
        row_full |= cols.accuracy_m > filt.max_accuracy_m   # NaN compares False

    order = np.lexsort((cols.ts, codes))          # by vehicle, then event time (stable)
    oc, ots = codes[order], cols.ts[order]
    ox, oy = x[order], y[order]
    first = np.ones(n, dtype=bool)
    first[1:] = oc[1:] != oc[:-1]
    # The anchor of each row: the vehicle's previous fix in the batch, or its stored state.
    ats = np.where(first, last_ts[oc], np.roll(ots, 1))
    ax = np.where(first, last_x[oc], np.roll(ox, 1))
    ay = np.where(first, last_y[oc], np.roll(oy, 1))
    anchored = ~np.isnan(ats)
    # A repeated or older timestamp (duplicate, replay, late fix) takes the full lane.
    row_bad = anchored & ~(ots > ats)   # (a replay is older than the stored fix: caught here too)
    dt = ots - ats
    moved = np.hypot(ox - ax, oy - ay)
    with np.errstate(invalid="ignore", divide="ignore"):
        implied = np.maximum(moved - filt.jump_tolerance_m, 0.0) / dt * 3.6
    row_bad |= anchored & ~(implied <= filt.max_implied_speed_kmh)   # NaN (no anchor) is not anchored
    bad_v = np.zeros(m, dtype=bool)
    bad_v[oc[row_bad | row_full[order]]] = True

    # Geometry of the candidate rows: the segment from the anchor (its end point included), or the point.
    # A settled vehicle's rows must touch its zone only, and lie inside it.
    cand = np.flatnonzero(~bad_v[oc])
    if cand.size and len(view.index):
        seg = cand[anchored[cand]]
        pt = cand[~anchored[cand]]
        index = view.index
        if seg.size:
            hit, zone = index.segment_hits(ax[seg], ay[seg], ox[seg], oy[seg])
            rows_hit = seg[hit]
            bad_v[oc[rows_hit[zone != settled[oc[rows_hit]]]]] = True
        if pt.size:
            hit, _ = index.point_hits(ox[pt], oy[pt])
            bad_v[oc[pt[hit]]] = True
        inside = cand[settled[oc[cand]] >= 0]
        inside = inside[~bad_v[oc[inside]]]
        if inside.size:
            hit, zone = index.point_hits(ox[inside], oy[inside])
            zone_of_row = settled[oc[inside]]
            ok = np.zeros(inside.size, dtype=bool)
            ok[hit[zone == zone_of_row[hit]]] = True      # inside its zone
            other = np.zeros(inside.size, dtype=bool)
            other[hit[zone != zone_of_row[hit]]] = True   # inside another zone too
            applies = _applies(view, zone_of_row, cols.class_code[order][inside], cols.classes)
            bad_v[oc[inside[~ok | other | ~applies]]] = True
        if view.approach_max is not None:
            near = cand
            if view.approach_classes is not None:
                wanted = np.array([c in view.approach_classes for c in cols.classes], dtype=bool)
                near = cand[wanted[cols.class_code[order][cand]]]
            if near.size:
                hit, _, _ = index.distance_hits(ox[near], oy[near], view.approach_max + margin)
                bad_v[oc[near[hit]]] = True

    # The fast lane: each vehicle's last row makes its new last fix.
    last = np.ones(n, dtype=bool)
    last[:-1] = oc[1:] != oc[:-1]
    fast_last = np.flatnonzero(last & ~bad_v[oc])
    moves = NO_MOVES
    if fast_last.size:
        rows = order[fast_last]
        vs = oc[fast_last]
        speed = cols.speed_kmh[rows]
        implied_last = np.where(anchored[fast_last], np.hypot(ox[fast_last] - ax[fast_last],
                                                              oy[fast_last] - ay[fast_last]), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            implied_last = implied_last / dt[fast_last] * 3.6
        speed = np.where(np.isnan(speed), implied_last, speed)
        speed = round2(speed)
        pos = None
        if positions is not None:   # the vehicle's newest log position (rows are in time order, not log order)
            newest = np.maximum.reduceat(positions[order], np.flatnonzero(first))[~bad_v[oc[first]]]
            pos = np.maximum(newest, done[vs])
        moves = Moves([vehicles[v] for v in vs.tolist()], vrows[vs], rows, x[rows], y[rows], speed, pos)
    full_rows = np.flatnonzero(bad_v[codes])
    return Lanes(full_rows, moves, n - full_rows.size)


def round2(v: np.ndarray) -> np.ndarray:
    """``round(x, 2)`` of each value, as Python rounds (the full lane's rounding), vectorised.

    ``rint(x * 100) / 100`` is Python's answer unless ``x * 100`` lies (nearly) half way between two
    integers, where the product's own rounding can tip it; those few take Python's ``round``.

    >>> round2(np.array([2.675, 1.005, 30.0, 12.344, np.nan])).tolist()[:4], [round(2.675, 2), round(1.005, 2)]
    ([2.67, 1.0, 30.0, 12.34], [2.67, 1.0])
    """
    scaled = v * 100.0
    out = np.rint(scaled) / 100.0
    with np.errstate(invalid="ignore"):
        near_half = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6
    for i in np.flatnonzero(near_half).tolist():
        out[i] = round(float(v[i]), 2)
    return out


_SETTLED_KEYS = frozenset({"rule", "in", "since", "inc"})


def _settled_zone(zones: Mapping[str, dict], view: IndexView) -> int:
    """The index position of the one zone a vehicle is settled inside (see the module's doc), else -1."""
    if len(zones) != 1:
        return -1
    ((zid, zst),) = zones.items()
    z = view.pos.get(zid)
    if z is None or zst.keys() != _SETTLED_KEYS or zst["in"] is not True:
        return -1
    zone = view.zones[z]
    if zone.rule not in ("forbid", "watch") or zone.dwell_repeat_s or zone.approach_m is not None \
            or zone.schedule.windows or zone.vehicles is not None:
        return -1
    return z


def _applies(view: IndexView, zones: np.ndarray, class_codes: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Per row, whether zone ``zones[i]`` applies to class ``classes[class_codes[i]]``."""
    distinct, local = np.unique(zones, return_inverse=True)
    table = np.array([[view.zones[z].applies_to(c) for c in classes] for z in distinct.tolist()], dtype=bool)
    return table[local, class_codes]
