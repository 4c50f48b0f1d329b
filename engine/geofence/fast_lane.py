"""The batch's fast lane: vehicles far from every zone, decided over numpy columns without a Python object per fix.

Most fixes of a city's fleet are of vehicles on an ordinary road: no zone near, nothing pending, the next fix
a little further on. For those the checker's whole answer is the vehicle's new state (its last fix), and
that is computed here, vectorised over the batch:

1. rows grouped by vehicle and sorted by event time (one ``lexsort``);
2. a vehicle goes to the *full lane* (the checker's per-fix path, engine.geofence.checker) when anything
   about it needs Python: a fix a stateless GPS filter looks at (``valid``, ``status_flags``, an accuracy
   worse than the limit), a repeated or older timestamp (duplicates, replays, late fixes), pending jump
   suspects, zones in its stored state, an offline mark, a corridor assignment, a move the quick jump test
   does not pass, or any zone its fixes touch: inside, crossed on the way from the previous fix, or within
   an approach distance;
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
from typing import Any

import numpy as np

from engine.geofence.batch import IndexView
from engine.settings import FilterSettings
from engine.telemetry.columns import FixColumns
from engine.telemetry.filters import FIX_VALID_BIT

NO_ZONES: dict[str, dict] = {}  # shared by every state near no zone (never mutated); the checker uses the same


@dataclass(frozen=True)
class Lanes:
    """How a batch splits: the full lane's rows (in their original order) and the fast lane's new states."""

    full_rows: np.ndarray                 # row numbers of ``cols`` for the checker's per-fix path
    states: dict[str, dict[str, Any]]     # fast-lane vehicles -> new state
    checked: int                          # fast-lane fixes tested against the zones


def split(cols: FixColumns, x: np.ndarray, y: np.ndarray, states: Mapping[str, dict | None],
          positions: np.ndarray | None, view: IndexView, filt: FilterSettings, margin: float) -> Lanes:
    """Decide the fast lane of a batch; ``x``/``y`` are the rows projected, ``positions`` their log positions."""
    n = len(cols)
    if n == 0:
        return Lanes(np.empty(0, dtype=np.intp), {}, 0)
    ids = cols.vehicle_id
    code_of: dict[str, int] = {}
    codes = np.fromiter((code_of.setdefault(v, len(code_of)) for v in ids), dtype=np.intp, count=n)
    vehicles = list(code_of)
    m = len(vehicles)

    # Per vehicle: its stored state, and whether it must take the full lane whatever its fixes are.
    full_v = np.zeros(m, dtype=bool)
    settled = np.full(m, -1, dtype=np.intp)   # the zone (index position) a vehicle is settled inside, or -1
    last_ts, last_x, last_y = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
    done = np.full(m, -1, dtype=np.int64)
    corridors = view.corridors
    for v, vid in enumerate(vehicles):
        st = states.get(vid)
        if st is not None:
            if "sus" in st or "off" in st:
                full_v[v] = True
                continue
            if st["zones"]:
                z = _settled_zone(st["zones"], view)
                if z < 0:
                    full_v[v] = True
                    continue
                settled[v] = z
            last_ts[v], last_x[v], last_y[v] = st["ts"], st["x"], st["y"]
            pos = st.get("pos")
            if pos is not None:
                if type(pos) is not int:   # an old [offset, index] pair: the full lane reads it
                    full_v[v] = True
                    continue
                done[v] = pos
        if vid in corridors:
            full_v[v] = True

    # Rows a filter looks at, or the full lane's anyway.
    row_full = full_v[codes]
    row_full |= cols.valid >= 0
    row_full |= cols.status_flags >= 0
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
            extra = np.zeros(inside.size, dtype=bool)
            extra[hit[zone != zone_of_row[hit]]] = True   # inside another zone too
            applies = _applies(view, zone_of_row, cols.class_code[order][inside], cols.classes)
            bad_v[oc[inside[~ok | extra | ~applies]]] = True
        if view.approach_max is not None:
            near = cand
            if view.approach_classes is not None:
                wanted = np.array([c in view.approach_classes for c in cols.classes], dtype=bool)
                near = cand[wanted[cols.class_code[order][cand]]]
            if near.size:
                hit, _, _ = index.distance_hits(ox[near], oy[near], view.approach_max + margin)
                bad_v[oc[near[hit]]] = True

    # The fast lane: each vehicle's last row makes its new state.
    last = np.ones(n, dtype=bool)
    last[:-1] = oc[1:] != oc[:-1]
    fast_last = np.flatnonzero(last & ~bad_v[oc])
    new_states: dict[str, dict[str, Any]] = {}
    if fast_last.size:
        rows = order[fast_last]
        speed = cols.speed_kmh[rows]
        implied_last = np.where(anchored[fast_last], np.hypot(ox[fast_last] - ax[fast_last],
                                                              oy[fast_last] - ay[fast_last]), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            implied_last = implied_last / dt[fast_last] * 3.6
        speed = np.where(np.isnan(speed), implied_last, speed)
        newest = None
        if positions is not None:   # the vehicle's newest log position (rows are in time order, not log order)
            pos_sorted = positions[order]
            newest = np.maximum.reduceat(pos_sorted, np.flatnonzero(first))[~bad_v[oc[first]]]
        classes = cols.classes
        for k, (r, v, sp) in enumerate(zip(rows.tolist(), oc[fast_last].tolist(), speed.tolist())):
            vid = vehicles[v]
            old = states.get(vid)
            state = {"ts": float(cols.ts[r]), "lat": float(cols.lat[r]), "lon": float(cols.lon[r]),
                     "x": float(x[r]), "y": float(y[r]), "class": classes[cols.class_code[r]],
                     "speed": None if sp != sp else round(sp, 2),
                     "zones": old["zones"] if settled[v] >= 0 else NO_ZONES}  # settled: unchanged (shared)
            if newest is not None:
                pos = int(newest[k])
                if done[v] > pos:
                    pos = int(done[v])
                state["pos"] = pos
            else:
                if old is not None and old.get("pos") is not None:
                    state["pos"] = old["pos"]
            new_states[vid] = state
    full_rows = np.flatnonzero(bad_v[codes])
    return Lanes(full_rows, new_states, n - full_rows.size)


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
