"""Zone transitions as a pure function of (previous membership, current fix).

A vehicle's membership is a mapping ``zone_id -> {"since": ts, "incident": id}``
of the zones it is inside. For each accepted fix the caller says which zones
hold the fix (``inside``) and which the segment from the previous fix passes
through (``crossed``); :func:`transition` returns the new membership and the
events, in a fixed order (exits, enters, crossings; zone ids sorted) so that
replays give the same alerts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.alerts.models import stable_id

Membership = Mapping[str, Mapping[str, object]]


@dataclass(frozen=True, slots=True)
class ZoneEvent:
    kind: str            # "zone.enter" | "zone.exit" | "zone.cross"
    zone_id: str
    incident_id: str
    alert_id: str
    since: float         # event time the incident opened (for exit: when it was entered)
    reason: str = ""     # for exit: left | zone_removed | schedule_ended | not_applicable


def incident_id(vehicle_id: str, zone_id: str, since: float) -> str:
    return stable_id("incident", vehicle_id, zone_id, round(since, 3))


def transition(vehicle_id: str, prev: Membership, inside: set[str], crossed: set[str], *, ts: float,
               prev_ts: float | None, exit_reasons: Mapping[str, str] | None = None
               ) -> tuple[dict[str, dict[str, object]], list[ZoneEvent]]:
    """Events for one fix at ``ts``; ``prev_ts`` is the previous accepted fix's time (None: first fix).

    >>> new, ev = transition("v1", {}, {"z"}, {"z"}, ts=10.0, prev_ts=5.0)
    >>> [e.kind for e in ev], sorted(new)
    (['zone.enter'], ['z'])
    >>> new, ev = transition("v1", new, set(), set(), ts=20.0, prev_ts=10.0)
    >>> [e.kind for e in ev], new
    (['zone.exit'], {})
    """
    reasons = exit_reasons or {}
    events: list[ZoneEvent] = []
    new: dict[str, dict[str, object]] = {}
    for zid in sorted(prev):
        state = prev[zid]
        if zid in inside:
            new[zid] = dict(state)
            continue
        inc = str(state["incident"])
        events.append(ZoneEvent("zone.exit", zid, inc, stable_id("exit", inc), float(state["since"]),  # type: ignore[arg-type]
                                reasons.get(zid, "left")))
    for zid in sorted(inside - set(prev)):
        inc = incident_id(vehicle_id, zid, ts)
        new[zid] = {"since": ts, "incident": inc}
        events.append(ZoneEvent("zone.enter", zid, inc, inc, ts))
    if prev_ts is not None:
        for zid in sorted(crossed - inside - set(prev)):
            inc = stable_id("cross", vehicle_id, zid, round(prev_ts, 3), round(ts, 3))
            events.append(ZoneEvent("zone.cross", zid, inc, inc, prev_ts))
    return new, events
