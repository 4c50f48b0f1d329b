"""Late (out-of-order) fixes: evaluated for the audit record, never treated as moves.

A terminal that lost coverage re-uploads its buffered positions (JT/T 808
补报) after newer ones were already processed. Policy: a fix older than the
vehicle's last accepted one is *late*. It never changes live state (position,
presence, incidents, timers) and never raises or closes a live incident. It
still passes the stateless filters, and is checked on its own against the
zones, so the record shows where the vehicle was:

- inside a ``forbid`` zone that applies to it and is active at the fix's own
  time (zones with ``dwell_s`` excepted: one fix cannot prove a dwell) ->
  ``zone.enter`` with ``late: true``;
- outside its ``corridor`` by more than the exit margin while the corridor is
  active -> ``zone.deviation`` with ``late: true``.

Late alerts open nothing and are never closed. One alert covers all late fixes
of a vehicle in one zone within a window of ``geofence.late_group_s``; its id
derives from that window, so a re-upload processed twice (or split over
batches) repeats the same ``alert_id`` and consumers de-duplicate it.

Late fixes are not compared with the live anchor (they are from another
time), but within one batch a late fix that is a spike among the vehicle's
late fixes (:func:`spikes`) is rejected as ``implausible_jump``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from engine.alerts.models import stable_id
from engine.geofence.zone_models import Zone
from engine.telemetry.filters import implied_kmh
from engine.telemetry.settings import FilterSettings


def spikes(ts: Sequence[float], x: Sequence[float], y: Sequence[float], cfg: FilterSettings) -> list[bool]:
    """For one vehicle's late fixes in time order: which are jumps to reject.

    A fix implying an impossible speed to both neighbours is a spike; an end
    fix is one when it is impossible from its neighbour while that neighbour
    agrees with the next. Two fixes that disagree are both rejected (either
    may be the bad one).

    >>> spikes([0, 10, 20], [0, 50_000, 100], [0, 0, 0], FilterSettings())
    [False, True, False]
    >>> spikes([0, 10, 20], [50_000, 0, 100], [0, 0, 0], FilterSettings())
    [True, False, False]
    """
    n = len(ts)

    def ok(i: int, j: int) -> bool:
        return implied_kmh(ts[i], x[i], y[i], ts[j], x[j], y[j], cfg.jump_tolerance_m) <= cfg.max_implied_speed_kmh

    out = []
    for i in range(n):
        if n < 2:
            out.append(False)
        elif i == 0:
            out.append(not ok(0, 1) and (n == 2 or ok(1, 2)))
        elif i == n - 1:
            out.append(not ok(i - 1, i) and (n == 2 or ok(i - 2, i - 1)))
        else:
            out.append(not ok(i - 1, i) and not ok(i, i + 1))
    return out


def late_violations(vehicle_id: str, vclass: str, ts: float, inside: Sequence[Zone],
                    corridors: Sequence[tuple[Zone, float]], active: Callable[[Zone], bool],
                    margin: float) -> list[tuple[str, Zone]]:
    """``(kind, zone)`` of each violation one late fix shows on its own.

    ``inside``: zones holding the fix; ``corridors``: the vehicle's corridors
    with the fix's signed distance to each; ``active(zone)``: schedule test at ``ts``.
    """
    out = []
    for zone in inside:
        if zone.rule == "forbid" and not zone.dwell_s and zone.applies(vehicle_id, vclass) and active(zone):
            out.append(("zone.enter", zone))
    for zone, distance in corridors:
        if distance > margin and zone.applies(vehicle_id, vclass) and active(zone):
            out.append(("zone.deviation", zone))
    return out


def late_alert_id(kind: str, vehicle_id: str, zone_id: str, ts: float, group_s: float) -> str:
    """Same vehicle, zone, kind and window -> same id."""
    window = math.floor(ts / group_s) if group_s > 0 else round(ts, 3)
    return stable_id("late", kind, vehicle_id, zone_id, window)

