"""Zone rules as a pure function of (previous per-zone state, one fix) -> (new state, events).

For each vehicle the tracks table keeps, per zone, a small dict while anything
is going on there (presence with hysteresis, an open incident, a dwell count,
an overspeed episode, an approach warning); :func:`step_zone` returns the new
dict (``None`` once nothing is going on) and the events of one fix. The
caller decides which zones to step (those the fix or its segment touches,
those in the state, the vehicle's corridors) and closes with a reason, via
:func:`close_zone`, the state of a zone that was removed, whose schedule
ended or that no longer applies to the vehicle.

Rules (the zone applies to the vehicle and its schedule is active):

=========  ==================================  ====================================
rule       opens (zone severity)               closes (info, ``duration_s``)
=========  ==================================  ====================================
forbid     ``zone.enter``; ``zone.cross``;      ``zone.exit`` (reason ``left``)
           ``zone.approach`` (warning)
watch      ``zone.enter``; ``zone.cross``       ``zone.exit``
speed      ``zone.overspeed``                   ``zone.overspeed_end`` (``slowed``/``left``)
corridor   ``zone.deviation``                   ``zone.return`` (``returned``)
=========  ==================================  ====================================

- ``dwell_s``: the opening alert waits until the vehicle has been inside
  (corridor: outside) that long; a shorter visit raises nothing (nor does a
  crossing). For a speed zone it replaces ``geofence.overspeed_min_s``.
  ``dwell_repeat_s``: ``zone.dwell`` every so often while the violation lasts.
- Overspeed: faster than ``speed_limit_kmh`` inside for ``overspeed_min_s``
  opens one incident per episode; it closes once the speed has been at or
  below the limit for as long (or the vehicle left the zone).
- Approach (forbid zones with ``approach_m``): one ``zone.approach`` when the
  vehicle comes within ``approach_m`` from further away; re-armed when it is
  further than ``approach_m + margin`` again, or after it entered (or
  crossed) and left.
- Every open incident has one id (``incident_id`` on each of its alerts;
  the opening alert's ``alert_id``) derived from the vehicle, the zone and the
  event time it began, so a replay gives the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.alerts.models import stable_id
from engine.geofence.hysteresis import Presence, Step, step
from engine.geofence.zone_models import Zone

CLOSING = frozenset({"zone.exit", "zone.return", "zone.overspeed_end"})
_PRESENCE_KEYS = ("n", "band", "out")


@dataclass(frozen=True, slots=True)
class ZoneEvent:
    kind: str
    zone_id: str
    incident_id: str
    alert_id: str
    severity: str
    fields: dict[str, Any] = field(default_factory=dict)  # extra payload; keys ending "_at" are event times


class Observation(NamedTuple):
    """What one fix says about one zone."""

    ts: float
    prev_ts: float | None   # the previous accepted fix (None: first fix, or re-anchored after a jump)
    inside: bool
    crossed: bool           # the segment from the previous fix meets the zone
    distance: float         # signed distance to the boundary (m): < 0 inside; inf when far
    approach: float | None  # distance to the zone when within approach_m + margin, else None
    moving: bool
    speed: float | None     # km/h, reported or implied


class Tuning(NamedTuple):
    margin: float = 15.0
    fixes: int = 3
    overspeed_min_s: float = 5.0


def incident_id(vehicle_id: str, zone_id: str, since: float) -> str:
    """The id of a presence incident (enter ... exit) that began at ``since``."""
    return stable_id("incident", vehicle_id, zone_id, round(since, 3))


def step_zone(vehicle_id: str, zone: Zone, state: dict[str, Any] | None, obs: Observation,
              tuning: Tuning) -> tuple[dict[str, Any] | None, list[ZoneEvent]]:
    """One fix's effect on one zone that applies to the vehicle and is active."""
    st: dict[str, Any] = dict(state) if state else {"rule": zone.rule, "in": zone.rule == "corridor"}
    prev = Presence(st["in"], st.get("n", 0), st.get("band", False), st.get("out"))
    s = step(prev, ts=obs.ts, inside=obs.inside, distance=obs.distance, crossed=obs.crossed,
             moving=obs.moving, margin=tuning.margin, fixes=max(1, tuning.fixes))
    _store_presence(st, s.presence)
    events: list[ZoneEvent] = []
    if zone.rule == "corridor":
        _corridor(vehicle_id, zone, st, s, obs, events)
    elif zone.rule == "speed":
        _speed(vehicle_id, zone, st, s, obs, tuning, events)
    else:
        _occupancy(vehicle_id, zone, st, s, obs, events)
        if zone.rule == "forbid" and zone.approach_m is not None:
            _approach(vehicle_id, zone, st, s, obs, tuning, events)
    return _pruned(st), events


def close_zone(zone_id: str, state: dict[str, Any], reason: str, ts: float) -> list[ZoneEvent]:
    """Close whatever is open in ``state`` (zone removed, schedule ended, no longer applicable)."""
    events = []
    if "inc" in state:
        kind = "zone.return" if state["rule"] == "corridor" else "zone.exit"
        events.append(_closing(kind, zone_id, state["inc"], state["since"], ts, reason))
    if "osi" in state:
        events.append(_overspeed_end(zone_id, state, ts, reason))
    return events


def _store_presence(st: dict[str, Any], p: Presence) -> None:
    st["in"] = p.inside
    for key, value, default in zip(_PRESENCE_KEYS, p[1:], (0, False, None)):
        if value == default:
            st.pop(key, None)
        else:
            st[key] = value


def _pruned(st: dict[str, Any]) -> dict[str, Any] | None:
    """``None`` when nothing is going on (the state a vehicle never seen near the zone has)."""
    if st["in"] == (st["rule"] == "corridor") and len(st) == 2:
        return None
    return st


def _occupancy(vid: str, zone: Zone, st: dict, s: Step, obs: Observation, events: list[ZoneEvent]) -> None:
    """forbid / watch: being inside is the incident."""
    if s.event == "exit":
        if "inc" in st:
            assert s.left_at is not None
            events.append(_closing("zone.exit", zone.id, st["inc"], st["since"], s.left_at, "left"))
        _clear(st, "since", "inc", "dk")
    elif s.event == "enter":
        st["since"] = obs.ts
    elif s.event == "cross" and not zone.dwell_s and obs.prev_ts is not None:
        cid = stable_id("cross", vid, zone.id, round(obs.prev_ts, 3), round(obs.ts, 3))
        events.append(ZoneEvent("zone.cross", zone.id, cid, cid, zone.severity, {"from_at": obs.prev_ts}))
    if s.presence.inside:
        _violation(vid, zone, st, obs, "zone.enter", events)


def _corridor(vid: str, zone: Zone, st: dict, s: Step, obs: Observation, events: list[ZoneEvent]) -> None:
    """corridor: being outside (while assigned and scheduled) is the incident."""
    if s.event == "enter":
        if "inc" in st:
            events.append(_closing("zone.return", zone.id, st["inc"], st["since"], obs.ts, "returned"))
        _clear(st, "since", "inc", "dk")
    elif s.event == "exit":
        st["since"] = s.left_at
    if not s.presence.inside:
        _violation(vid, zone, st, obs, "zone.deviation", events)


def _violation(vid: str, zone: Zone, st: dict, obs: Observation, kind: str, events: list[ZoneEvent]) -> None:
    """Raise the incident once ``dwell_s`` has passed; then repeat ``zone.dwell`` if asked to."""
    since = st["since"]
    if "inc" not in st:
        if obs.ts - since < (zone.dwell_s or 0):
            return
        inc = (incident_id(vid, zone.id, since) if kind == "zone.enter"
               else stable_id("deviation", vid, zone.id, round(since, 3)))
        st["inc"] = inc
        extra: dict[str, Any] = {"since_at": since}
        if zone.dwell_s:
            extra["dwell_s"] = round(obs.ts - since, 3)
        if kind == "zone.deviation":
            extra["distance_m"] = round(obs.distance, 1)
        events.append(ZoneEvent(kind, zone.id, inc, inc, zone.severity, extra))
        return
    if zone.dwell_repeat_s:
        k = int((obs.ts - since - (zone.dwell_s or 0)) // zone.dwell_repeat_s)
        if k > st.get("dk", 0):
            st["dk"] = k
            events.append(ZoneEvent("zone.dwell", zone.id, st["inc"], stable_id("dwell", st["inc"], k),
                                    zone.severity, {"since_at": since, "dwell_s": round(obs.ts - since, 3),
                                                    "repeat": k}))


def _speed(vid: str, zone: Zone, st: dict, s: Step, obs: Observation, tuning: Tuning,
           events: list[ZoneEvent]) -> None:
    limit = zone.speed_limit_kmh
    assert limit is not None
    min_s = zone.dwell_s if zone.dwell_s is not None else tuning.overspeed_min_s
    inside, speed = s.presence.inside, obs.speed
    if "osi" in st:
        if not inside:
            events.append(_overspeed_end(zone.id, st, s.left_at or obs.ts, "left"))
            _clear(st, "over", "osi", "under", "vmax")
        elif speed is not None and speed > limit:
            st["vmax"] = max(st["vmax"], speed)
            st.pop("under", None)
        elif speed is not None:
            under = st.setdefault("under", obs.ts)
            if obs.ts - under >= min_s:
                events.append(_overspeed_end(zone.id, st, under, "slowed"))
                _clear(st, "over", "osi", "under", "vmax")
        return
    if not inside or speed is None or speed <= limit:
        if not inside or speed is not None:
            _clear(st, "over", "vmax")
        return
    over = st.setdefault("over", obs.ts)
    st["vmax"] = max(st.get("vmax", 0.0), speed)
    if obs.ts - over >= min_s:
        osi = stable_id("overspeed", vid, zone.id, round(over, 3))
        st["osi"] = osi
        events.append(ZoneEvent("zone.overspeed", zone.id, osi, osi, zone.severity,
                                {"since_at": over, "limit_kmh": limit, "max_speed_kmh": st["vmax"]}))


def _overspeed_end(zone_id: str, st: dict, ended: float, reason: str) -> ZoneEvent:
    ev = _closing("zone.overspeed_end", zone_id, st["osi"], st["over"], ended, reason)
    ev.fields["max_speed_kmh"] = st.get("vmax")
    return ev


def _approach(vid: str, zone: Zone, st: dict, s: Step, obs: Observation, tuning: Tuning,
              events: list[ZoneEvent]) -> None:
    a, d = zone.approach_m, obs.approach
    assert a is not None
    if s.event in ("exit", "cross") or (st.get("ap") and (d is None or d > a + tuning.margin)):
        st.pop("ap", None)  # re-armed: it entered and left, or moved away
    near = s.presence.inside or obs.inside or (d is not None and d <= a)
    if (near and s.event is None and not s.presence.inside and not st.get("near") and not st.get("ap")
            and d is not None and d > 0):
        aid = stable_id("approach", vid, zone.id, round(obs.ts, 3))
        st["ap"] = True
        events.append(ZoneEvent("zone.approach", zone.id, aid, aid, "warning",
                                {"distance_m": round(d, 1), "approach_m": a}))
    if near:
        st["near"] = True
    else:
        st.pop("near", None)


def _closing(kind: str, zone_id: str, inc: str, since: float, ended: float, reason: str) -> ZoneEvent:
    return ZoneEvent(kind, zone_id, inc, stable_id(kind.removeprefix("zone."), inc), "info",
                     {"since_at": since, "ended_at": ended, "duration_s": round(max(ended - since, 0.0), 3),
                      "reason": reason})


def _clear(st: dict, *keys: str) -> None:
    for key in keys:
        st.pop(key, None)
