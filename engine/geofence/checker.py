"""Check a batch of fixes against the zone index: filters, ordering, geometry, rules, alerts.

Knows nothing of Kafka or Faust: the agent hands it decoded fixes and the
vehicles' stored states and writes back what it returns. :meth:`ZoneChecker.check_columns`
(the worker's entry) takes the batch as columns and decides the vehicles far from every zone,
or settled inside one, over the columns (engine.geofence.fast_lane); the rest go through
:meth:`ZoneChecker.check` as :class:`Fix` objects.

Each step is a one-way stage: it returns what it decided (its rejections included) and the
batch's :class:`BatchResult` is built once at the end. Per batch (steps 1-3 in engine.geofence.intake):

1. stateless GPS filters (``invalid_fix``, ``poor_accuracy``; engine.telemetry.filters);
2. per vehicle, event-time order: a fix with the timestamp of the last
   accepted one (or of a pending jump suspect), or an older one the worker has
   already processed (its log position says so: a replay after a rebalance),
   is a ``duplicate``; any other older one is *late* (engine.geofence.late:
   audit alerts flagged ``late``, live state untouched); newer ones are live;
3. live fixes against the vehicle's anchor (``implausible_jump``, re-anchoring);
4. geometry, vectorised over the whole batch: one projection, one point test,
   one segment test (previous fix -> this one), the distance to zones with
   ``approach_m`` only when there are any, and the signed distance for the few
   (fix, zone) pairs a vehicle is in or near (hysteresis);
5. per live fix, in event-time order: its terminal alarms (``alarm_flags``; engine.geofence.alarms) and,
   only for the zones involved, rules and incidents (engine.geofence.transitions); between them, the terminal
   alarms of the vehicle's fixes steps 1 and 3 rejected (their position stays rejected: the state changes in
   its ``alarms`` only); then late fixes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from engine.core.clock import Clock, to_iso
from engine.geofence import fast_lane, intake
from engine.geofence import late as late_policy
from engine.geofence.alarms import step_alarms
from engine.geofence.alerting import zone_alert
from engine.geofence.batch import BatchGeometry, IndexView
from engine.geofence.fast_lane import NO_ZONES
from engine.geofence.fleet import PartitionFleet, StateView
from engine.geofence.index import ZoneIndex
from engine.geofence.intake import StoredStates
from engine.geofence.offline import online_alert
from engine.geofence.settings import GeofenceConfig, GeofenceSettings
from engine.geofence.transitions import CLOSING, Observation, Tuning, ZoneEvent, close_zone, step_zone
from engine.geofence.zone_models import Zone
from engine.telemetry.columns import FixColumns
from engine.telemetry.models import Fix
from engine.telemetry.rejection import Rejection
from engine.telemetry.settings import FilterSettings


@dataclass(frozen=True)
class BatchResult:
    """What a batch decided: built once at its end, never changed after."""

    states: dict[str, dict[str, Any]] = field(default_factory=dict)   # changed vehicles only
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    checked: int = 0          # fixes tested against the zones (live and late)
    late: int = 0             # late fixes evaluated for the audit record
    moves: fast_lane.Moves = fast_lane.NO_MOVES                       # the fast lane's vehicles (columns)
    before: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # stored states the full lane read


class ZoneChecker:
    def __init__(self, index: ZoneIndex, *, tz: str, clock: Clock, settings: GeofenceConfig | None = None):
        self.tz, self.clock = ZoneInfo(tz), clock
        if settings is None:
            self.tune(GeofenceSettings(), FilterSettings())
        else:
            self.configure(settings)
        self.set_index(index)

    def configure(self, settings: GeofenceConfig) -> None:
        """Take the ``geofence`` and ``filters`` settings (the worker's, from config.yaml)."""
        self.tune(settings.geofence, settings.filters)

    def tune(self, g: GeofenceSettings, filters: FilterSettings) -> None:
        self._cfg = (Tuning(g.exit_margin_m, max(1, g.exit_fixes), g.overspeed_min_s), g, filters)

    def set_index(self, index: ZoneIndex) -> None:
        """Swap in a rebuilt index between batches (one assignment; a batch reads it once).

        Incidents in zones no longer in the index close with reason ``zone_removed``
        on the vehicle's next fix.
        """
        self._view = IndexView(index)

    @property
    def index(self) -> ZoneIndex:
        return self._view.index

    def check(self, fixes: list[Fix], states: StoredStates,
              positions: Sequence[tuple[int, int] | int] | None = None) -> BatchResult:
        """Check a batch; ``states`` maps each vehicle to its stored state (or None).

        ``positions``, parallel to ``fixes``, is each fix's place in the log
        (Kafka offset, index in the record; as that pair or as one
        ``intake.log_position``): with it, an older fix that was
        processed before (a replay after a rebalance) is told apart from a
        late one and dropped as a ``duplicate``.
        """
        view, (tuning, geo, filt) = self._view, self._cfg
        ordered = intake.order(fixes, states, positions, filt)
        live, late = ordered.live, ordered.late
        batch = live + late
        if not batch:
            cur: dict[str, dict[str, Any]] = {}
            alerts = self._rejected_alarms(_alarm_queues(ordered.filtered), states, cur, self.clock.now())
            return BatchResult(intake.finish({}, ordered.newest, states, cur), alerts, ordered.rejections)
        n = len(batch)
        x, y = view.index.project(np.fromiter((f.lon for f in batch), float, n),
                                  np.fromiter((f.lat for f in batch), float, n))
        px, py = np.full(n, np.nan), np.full(n, np.nan)
        jumps = intake.jumps(live, states, x, y, px, py, filt)
        late_rows, late_rejections = intake.late_rows(late, len(live), x, y, filt)
        rejections = ordered.rejections + jumps.rejections + late_rejections
        rows = np.array([a.row for a in jumps.accepted] + late_rows, dtype=np.intp)
        queues = _alarm_queues(ordered.filtered + jumps.rejected)
        if not rows.size:
            cur = {}
            alerts = self._rejected_alarms(queues, states, cur, self.clock.now())
            return BatchResult(intake.finish(jumps.suspects, ordered.newest, states, cur), alerts, rejections)
        stored = {}
        for vid in jumps.suspects:
            st = states.get(vid)
            if st and st["zones"]:
                stored[vid] = {view.pos[z] for z in st["zones"] if z in view.pos}
        geo_hits = BatchGeometry(view, x, y, px, py, rows, jumps.accepted, late_rows, batch, stored, tuning.margin)
        now = self.clock.now()
        xs, ys = x.tolist(), y.tolist()
        alerts = []
        cur = {}
        for a in jumps.accepted:
            vid = a.fix.vehicle_id
            st = cur[vid] if vid in cur else states.get(vid)
            queue = queues.get(vid) if queues else None
            if queue and queue[-1].ts < a.fix.ts:   # the vehicle's rejected fixes before this one
                st, raised = self._rejected_alarm(queue, a.fix.ts, st, now)
                alerts += raised
            cur[vid], raised = self._live(a, st, xs[a.row], ys[a.row], geo_hits, view, tuning, geo.moving_kmh, now)
            alerts += raised
        if queues:   # the rejected fixes after each vehicle's last accepted one
            alerts += self._rejected_alarms(queues, states, cur, now)
        late_seen: dict[str, dict[str, Any]] = {}
        for r in late_rows:
            self._late(batch[r], r, geo_hits, view, tuning.margin, geo.late_group_s, now, late_seen)
        return BatchResult(intake.finish(jumps.suspects, ordered.newest, states, cur), alerts + list(late_seen.values()),
                           rejections, checked=len(rows), late=len(late_rows))

    def check_columns(self, cols: FixColumns, fleet: PartitionFleet,
                      positions: np.ndarray | None = None) -> BatchResult:
        """:meth:`check` for a batch as columns against a partition's fleet: vehicles far from every zone take
        the fast lane (engine.geofence.fast_lane, no Python object per fix; their new last fixes come back as
        ``moves``); the rest, as :class:`Fix` objects, this checker's per-fix path, reading their states from
        the fleet (``before`` holds what it read). ``positions``: each row's ``intake.log_position``."""
        if not len(cols):
            return BatchResult()
        view = self._view
        x, y = view.index.project(cols.lon, cols.lat)
        lanes = fast_lane.split(cols, x, y, fleet, positions, view, self._cfg[2], self._cfg[0].margin)
        if not lanes.full_rows.size:
            return BatchResult(moves=lanes.moves, checked=lanes.checked)
        fixes = [cols.fix(r) for r in lanes.full_rows.tolist()]
        before = FleetStates(fleet, list(dict.fromkeys(f.vehicle_id for f in fixes)))
        full = self.check(fixes, before,
                          None if positions is None else positions[lanes.full_rows].tolist())
        return BatchResult(full.states, full.alerts, full.rejections, checked=full.checked + lanes.checked,
                           late=full.late, moves=lanes.moves, before=before.seen)

    # --- evaluation -----------------------------------------------------------------------

    def _live(self, a: intake.Live, st: dict | None, x: float, y: float, g: BatchGeometry, view: IndexView,
              tuning: Tuning, moving_kmh: float, now: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """One accepted live fix: the vehicle's new state and the alerts it raises."""
        f, r = a.fix, a.row
        vid = f.vehicle_id
        alerts = [online_alert(f, st, now, self.tz)] if st and "off" in st else []
        alarms = st.get("alarms") if st else None
        if f.alarm_flags is not None or alarms:
            alarms, raised = step_alarms(f, a.speed, alarms, now, self.tz)
            alerts += raised
        zones: dict[str, dict] = dict(st["zones"]) if st and st["zones"] else {}
        near = g.involved(r)
        involved = zones.keys() | {view.zones[z].id for z in near} if near else zones.keys()
        new_state = {"ts": f.ts, "lat": f.lat, "lon": f.lon, "x": float(x), "y": float(y), "class": f.vclass,
                     "speed": None if a.speed is None else round(a.speed, 2), "zones": zones or NO_ZONES}
        if alarms:
            new_state["alarms"] = alarms
        if not involved:
            return new_state, alerts
        when = datetime.fromtimestamp(f.ts, self.tz)
        moving = a.speed is None or a.speed >= moving_kmh or (a.moved or 0.0) > 2 * tuning.margin
        events = []
        for zid in sorted(involved):
            zone, zst = _zone(view, zid), zones.get(zid)
            reason = _not_in_force(zone, vid, f.vclass, when)
            if reason:
                if zst:
                    events += [(ev, zone) for ev in close_zone(zid, zst, reason, f.ts)]
                    del zones[zid]
                continue
            assert zone is not None
            zi = view.pos[zid]
            obs = Observation(f.ts, a.prev_ts, zi in g.inside(r), zi in g.crossed(r), g.distance(r, zi),
                              g.approach(r, zi), moving, a.speed)
            new, evs = step_zone(vid, zone, zst, obs, tuning)
            if new is None:
                zones.pop(zid, None)
            else:
                zones[zid] = new
            events += [(ev, zone) for ev in evs]
        events.sort(key=lambda e: e[0].kind not in CLOSING)
        prev = (st["lat"], st["lon"]) if st and a.prev_ts is not None else None
        alerts += [zone_alert(ev, zone, f, a.speed, now, self.tz, prev=prev) for ev, zone in events]
        new_state["zones"] = zones or NO_ZONES
        return new_state, alerts

    def _rejected_alarms(self, queues: dict[str, list[Fix]], states: StoredStates, cur: dict[str, dict[str, Any]],
                         now: float) -> list[dict[str, Any]]:
        """The alarm alerts of each vehicle's rejected fixes left in ``queues`` (all of them: the batch's accepted
        ones are done); ``cur`` gets the states they changed."""
        alerts: list[dict[str, Any]] = []
        for vid, queue in queues.items():
            if queue:
                st = cur[vid] if vid in cur else states.get(vid)
                new, raised = self._rejected_alarm(queue, math.inf, st, now)
                if raised and new is not None:   # (a change always makes a state)
                    cur[vid] = new
                    alerts += raised
        return alerts

    def _rejected_alarm(self, queue: list[Fix], until: float, st: dict[str, Any] | None,
                        now: float) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The terminal alarms of a vehicle's fixes a GPS filter rejected, older than ``until`` (popped from
        ``queue``, newest first): the vehicle's state (``st``, or a new one when they changed an episode) and the
        alerts. Their position stays rejected: the state keeps its position, time, zones and book-keeping.
        A fix not newer than the vehicle's newest accepted one changes nothing (as a late fix or a duplicate)."""
        alerts: list[dict[str, Any]] = []
        while queue and queue[-1].ts < until:
            f = queue.pop()
            last = None
            if st is not None and intake.has_position(st):
                if f.ts <= st["ts"]:
                    continue
                last = (st["lat"], st["lon"], st["ts"])
            alarms, raised = step_alarms(f, None, st.get("alarms") if st else None, now, self.tz, rejected=True,
                                         last_known=last)
            if raised:
                st = dict(st) if st else positionless(f.vclass)
                st["alarms"] = alarms
                alerts += raised
        return st, alerts

    def _late(self, f: Fix, r: int, g: BatchGeometry, view: IndexView, margin: float, group_s: float, now: float,
              seen: dict[str, dict[str, Any]]) -> None:
        """Audit alerts of one late fix (engine.geofence.late), merged into ``seen`` by alert id."""
        when = datetime.fromtimestamp(f.ts, self.tz)
        inside = [view.zones[z] for z in sorted(g.inside(r))]
        corridors = [(view.zones[z], g.distance(r, z)) for z in view.corridors.get(f.vehicle_id, ())]
        for kind, zone in late_policy.late_violations(f.vehicle_id, f.vclass, f.ts, inside, corridors,
                                                      lambda z: z.schedule.active(when), margin):
            aid = late_policy.late_alert_id(kind, f.vehicle_id, zone.id, f.ts, group_s)
            if aid in seen:
                seen[aid]["late_fixes"] += 1
                seen[aid]["last_late_at"] = to_iso(f.ts, self.tz)
                continue
            ev = ZoneEvent(kind, zone.id, aid, aid, zone.severity, {})
            seen[aid] = {**zone_alert(ev, zone, f, f.speed_kmh, now, self.tz, late=True), "late_fixes": 1,
                         "last_late_at": to_iso(f.ts, self.tz)}




def positionless(vclass: str, alarms: dict[str, float] | None = None) -> dict[str, Any]:
    """The state of a vehicle without an accepted fix yet whose rejected fixes changed its alarm episodes: no
    position (``ts`` and the coordinates NaN, as a fleet row without a fix; engine.geofence.intake.has_position),
    its ``alarms`` (with their ``as_of``)."""
    nan = math.nan
    st: dict[str, Any] = {"ts": nan, "lat": nan, "lon": nan, "x": nan, "y": nan, "class": vclass, "speed": None,
                          "zones": NO_ZONES}
    if alarms:
        st["alarms"] = alarms
    return st


class FleetStates(StateView):
    """A fleet's rows as the per-fix path reads them, the rows of :func:`positionless` states included (a fleet
    row without a fix reads as no state; its extras still hold the episodes)."""

    def get(self, vid: str, default: Any = None) -> dict[str, Any] | None:
        if vid in self.seen:
            return self.seen[vid]
        st = super().get(vid)
        if st is None:
            fleet = self.fleet
            r = fleet.rows.get(vid)
            extra = fleet.extra.get(r) if r is not None else None
            if extra and extra.get("alarms"):
                st = self.seen[vid] = positionless(fleet.classes[fleet.class_code[r]], extra["alarms"])
        return st


def _alarm_queues(rejected: list[Fix]) -> dict[str, list[Fix]]:
    """The rejected fixes that carry alarm bits, per vehicle, newest first (popped oldest first)."""
    queues: dict[str, list[Fix]] = {}
    for f in rejected:
        if f.alarm_flags is not None:
            queues.setdefault(f.vehicle_id, []).append(f)
    for queue in queues.values():
        if len(queue) > 1:
            queue.sort(key=_ts)
            queue.reverse()   # (equal times: popped in batch order)
    return queues


def _ts(f: Fix) -> float:
    return f.ts


def _zone(view: IndexView, zone_id: str) -> Zone | None:
    i = view.pos.get(zone_id)
    return None if i is None else view.zones[i]


def _not_in_force(zone: Zone | None, vid: str, vclass: str, when: datetime) -> str | None:
    if zone is None:
        return "zone_removed"
    if not zone.applies(vid, vclass):
        return "not_applicable"
    if not zone.schedule.active(when):
        return "schedule_ended"
    return None
