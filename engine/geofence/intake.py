"""A batch's fixes before geometry: filters, per-vehicle event-time order, the jump filter, book-keeping.

Pure functions over the batch and the stored states (engine.geofence.checker
runs them as one-way stages); each returns what it decided, its rejections
(with their reason) included, and changes none of its inputs.

- ``order``: the stateless GPS filters, then per vehicle in event-time order:
  ``duplicate`` (the last accepted fix's timestamp, a pending jump suspect's, or
  an older fix whose log position shows it was processed: a replay), *late*
  (older, new to the worker), or live.
- ``jumps``: live fixes against the vehicle's anchor (engine.telemetry.filters).
- ``late_rows``: spikes among a vehicle's late fixes.
- ``finish``: pending suspects and the newest log position, kept in the state.

``order`` and ``jumps`` also hand back the fixes their GPS filters rejected (not the duplicates): their
terminal alarms still count (engine.geofence.alarms). A stored state may have no position
(:func:`has_position`): a vehicle whose only fixes so far were rejected, kept for its alarm episodes; it is
neither an anchor nor a lateness bound.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from engine.geofence import late as late_policy
from engine.telemetry.filters import check_jump, implied_kmh, quality_problem
from engine.telemetry.models import Fix
from engine.telemetry.rejection import Rejection
from engine.telemetry.settings import FilterSettings


@dataclass(slots=True)
class Live:
    """An accepted live fix with what the batch loop derived for it."""

    fix: Fix
    row: int
    prev_ts: float | None
    speed: float | None
    moved: float | None    # metres from the previous accepted fix


class StoredStates(Protocol):
    """Each vehicle's stored state by id (a dict, a fleet's :class:`~engine.geofence.fleet.StateView`)."""

    def get(self, vid: str, /) -> dict[str, Any] | None: ...



class Ordered(NamedTuple):
    """The batch in per-vehicle event-time order."""

    live: list[Fix]
    late: list[Fix]
    newest: dict[str, int]          # the newest log position seen per vehicle (its state's ``pos``)
    rejections: list[Rejection]     # GPS filters and duplicates
    filtered: list[Fix]             # the fixes a stateless GPS filter rejected (in batch order)


class Jumps(NamedTuple):
    """The live fixes the jump filter accepted, each vehicle's pending suspects, what it rejected."""

    accepted: list[Live]
    suspects: dict[str, list]
    rejections: list[Rejection]
    rejected: list[Fix]             # the fixes of ``rejections``


def order(fixes: list[Fix], states: StoredStates, positions: Sequence[tuple[int, int] | int] | None,
          filt: FilterSettings) -> Ordered:
    """Stateless filters, then per vehicle (time order): live, late, duplicates rejected.

    Also the newest log position seen per vehicle (kept as ``pos`` in its state: one int, see :func:`log_position`).
    """
    rejections: list[Rejection] = []
    filtered: list[Fix] = []
    by_vehicle: dict[str, list[tuple[Fix, int | None]]] = defaultdict(list)
    max_accuracy = filt.max_accuracy_m if filt.max_accuracy_m > 0 else math.inf
    for i, f in enumerate(fixes):
        # The filters' own test only for a fix that could fail one (most carry none of these fields).
        if f.valid is False or f.status_flags is not None or (f.accuracy_m or 0.0) > max_accuracy:
            problem = quality_problem(f, filt)
            if problem:
                rejections.append(reject(f, *problem))
                filtered.append(f)
                continue
        pos = None if positions is None else positions[i]
        by_vehicle[f.vehicle_id].append((f, pos if pos is None or isinstance(pos, int) else log_position(*pos)))
    live: list[Fix] = []
    late: list[Fix] = []
    newest: dict[str, int] = {}
    for vid, fl in by_vehicle.items():
        if len(fl) > 1:
            fl.sort(key=_by_ts)
        st = states.get(vid)
        last = st["ts"] if st is not None and has_position(st) else None
        done = stored_position(st.get("pos")) if st else None
        sus = st.get("sus") if st else None
        seen: set[float] = {s[0] for s in sus} if sus else set()
        for f, pos in fl:
            replay = pos is not None and done is not None and pos <= done
            if f.ts in seen or f.ts == last or (replay and last is not None and f.ts < last):
                rejections.append(reject(f, "duplicate", f"ts {f.ts} repeats a fix already processed"))
                continue
            if last is not None and f.ts < last:
                late.append(f)
            else:
                live.append(f)
            seen.add(f.ts)
            if pos is not None and (vid not in newest or pos > newest[vid]):
                newest[vid] = pos
    return Ordered(live, late, newest, rejections, filtered)

_NO_SUSPECTS: list = []


def _by_ts(fp: tuple[Fix, int | None]) -> float:
    return fp[0].ts


def jumps(live: list[Fix], states: StoredStates, x: np.ndarray, y: np.ndarray,
          px: np.ndarray, py: np.ndarray, filt: FilterSettings) -> Jumps:
    """Implied-speed filter against each vehicle's anchor; fills ``px``/``py`` (the batch's own previous-position
    arrays) with each accepted fix's anchor."""
    accepted: list[Live] = []
    rejections: list[Rejection] = []
    rejected: list[Fix] = []
    suspects: dict[str, list] = {}
    anchor: tuple[float, float, float] | None = None
    xs, ys = x.tolist(), y.tolist()
    prev_rows: list[int] = []
    prev_xy: list[tuple[float, float]] = []
    limit, tolerance = filt.max_implied_speed_kmh, filt.jump_tolerance_m
    for row, f in enumerate(live):
        vid = f.vehicle_id
        if vid not in suspects:  # the vehicle's first live fix in this batch
            st = states.get(vid)
            anchor = (st["ts"], st["x"], st["y"]) if st and has_position(st) else None
            sus = st.get("sus") if st else None
            suspects[vid] = list(sus) if sus else _NO_SUSPECTS   # replaced, never appended to
        here_x, here_y = xs[row], ys[row]
        moved: float | None
        if anchor is None:
            moved, quick = None, False
        else:
            moved = math.hypot(here_x - anchor[1], here_y - anchor[2])
            quick = not suspects[vid] and f.ts > anchor[0] and \
                max(moved - tolerance, 0.0) / (f.ts - anchor[0]) * 3.6 <= limit
        if quick:
            prev = anchor  # the common case, without building a verdict
        else:
            verdict = check_jump(anchor, suspects[vid], f.ts, here_x, here_y, filt)
            suspects[vid] = verdict.suspects
            if not verdict.accept:
                rejections.append(reject(
                    f, "implausible_jump", f"implies {verdict.implied_kmh:.0f} km/h from the last accepted fix "
                    f"(limit {limit:g})", implied_kmh=round(verdict.implied_kmh, 1)))
                rejected.append(f)
                continue
            prev = None if verdict.reanchored else anchor
        speed = f.speed_kmh
        if prev is None:
            moved = None
        else:
            prev_rows.append(row)
            prev_xy.append((prev[1], prev[2]))
            if speed is None:
                speed = implied_kmh(prev[0], prev[1], prev[2], f.ts, here_x, here_y)
        accepted.append(Live(f, row, prev[0] if prev else None, speed, moved))
        anchor = (f.ts, here_x, here_y)
    if prev_rows:  # the segment of each accepted fix starts at its anchor
        px[prev_rows], py[prev_rows] = zip(*prev_xy)
    return Jumps(accepted, suspects, rejections, rejected)

def late_rows(late: list[Fix], offset: int, x: np.ndarray, y: np.ndarray,
              filt: FilterSettings) -> tuple[list[int], list[Rejection]]:
    """The rows (``offset`` + index) of the late fixes worth an audit record, and the spikes rejected."""
    rows: list[int] = []
    rejections: list[Rejection] = []
    by_vehicle: dict[str, list[int]] = defaultdict(list)
    for i, f in enumerate(late):
        by_vehicle[f.vehicle_id].append(offset + i)
    for rs in by_vehicle.values():
        bad = late_policy.spikes([late[r - offset].ts for r in rs], x[rs].tolist(), y[rs].tolist(), filt)
        for r, b in zip(rs, bad):
            if b:
                rejections.append(reject(late[r - offset], "implausible_jump",
                                         "late fix implies an impossible speed to its neighbours"))
            else:
                rows.append(r)
    return rows, rejections

def finish(suspects: dict[str, list], newest: dict[str, int], states: StoredStates,
           live_states: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The batch's changed states: ``live_states`` (this batch's new ones, updated here) and the stored ones
    whose book-keeping kept beside the live state changed: pending jump suspects, newest log position."""
    out = dict(live_states)
    for vid in suspects.keys() | newest.keys():
        old = states.get(vid)
        sus, pos = suspects.get(vid), newest.get(vid)
        old_pos = stored_position(old.get("pos")) if old else None
        if old_pos is not None and (pos is None or old_pos > pos):
            pos = old_pos
        new = out.get(vid)   # this batch's own new state (made by this batch: updated in place)
        if new is None:
            if old is None or (old.get("sus") == (sus or None) and old_pos == pos):
                continue
            new = out[vid] = dict(old)
        if sus:
            new["sus"] = sus
        else:
            new.pop("sus", None)
        if pos is not None:
            new["pos"] = pos
    return out


def has_position(st: Mapping[str, Any] | None) -> bool:
    """Whether a stored state has a position (an accepted fix); one kept only for the alarm episodes of rejected
    fixes has ``ts`` NaN (as a fleet row without a fix).

    >>> has_position({"ts": 1.0}), has_position({"ts": float("nan")}), has_position(None)
    (True, False, False)
    """
    return st is not None and st["ts"] == st["ts"]


def log_position(offset: int, index: int) -> int:
    """A fix's place in the log as one int (Kafka offset, index in its record), ordered like the pair.

    One int instead of a two-item list saves ~100 bytes per tracked vehicle.

    >>> log_position(7, 3) > log_position(6, 999) > log_position(6, 998)
    True
    """
    return offset << 20 | index


def stored_position(pos: Any) -> int | None:
    """``pos`` of a stored state; states written before it was one int hold ``[offset, index]``."""
    if pos is None or isinstance(pos, int):
        return pos
    return log_position(*pos)


def reject(f: Fix, reason: str, detail: str, **extra: Any) -> Rejection:
    return Rejection(reason, detail, f.to_json(), topic="fixes", vehicle_id=f.vehicle_id,
                     received_at=f.received_at, source="worker", extra=extra)
