"""The one-map's state: every vehicle, alert, open incident, zone and open task, as snapshot and deltas.

Pure (no Kafka, no web): the followers feed it records, the hub calls
:meth:`OneMapView.delta` once per tick, a new browser gets
:meth:`OneMapView.snapshot`. A delta holds only what changed since the last
one, and each vehicle at most once (its latest position), so its size is
bounded by the fleet and the tick rate bounds the push rate.

Vehicles are numbered with small integer *slots* so that rows stay short: a
snapshot row is ``[slot, vehicle_id, class_index, lat, lon, speed_kmh,
heading, age_s]``; a delta sends ``nv`` rows ``[slot, vehicle_id,
class_index]`` for new (or re-classed) vehicles, ``v`` rows ``[slot, lat,
lon, speed_kmh, heading, age_s]`` for moves and ``g`` slots for vehicles gone
silent for ``stale_s`` (a freed slot is reused only after the delta that
announced it gone). ``age_s`` is seconds between the fix and the tick's
``now``. A vehicle's recent track (``track_fixes`` fixes) stays in memory and
is only sent on request (:meth:`track`): GPS tracks are sensitive.

The feed keeps the ``alerts_kept`` newest alerts by event time (``ts``): at
start the history is read partition by partition, so arrival order is not
time order. A delta's ``a`` lists new alerts in arrival order; the page sorts.

Open incidents: an alert of an opening kind (``zone.enter``, ``zone.overspeed``,
``zone.deviation``, ``zone.dwell``, ``vehicle.offline``) of severity warning
or critical opens its ``incident_id``; the closing alert of that incident
(``zone.exit``, ``zone.return``, ``zone.overspeed_end``, ``vehicle.online``)
closes it. Late alerts never open one. Alerts are de-duplicated by
``alert_id`` (replays after a rebalance carry the same id).

Fixes pass the worker's stateless GPS filters (``invalid_fix``,
``poor_accuracy``); a fix not newer than the vehicle's last one (duplicate,
late re-upload) never moves it.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.core.clock import Clock
from engine.onemap.models import (
    CLASS_INDEX,
    CLOSING,
    INCIDENT_SEVERITIES,
    OPENING,
    alert_summary,
    coord,
    event_time,
    task_summary,
)
from engine.onemap.settings import OneMapSettings
from engine.onemap.zones import DisplayZone
from engine.telemetry.filters import quality_problem
from engine.telemetry.models import CLASSES, Fix
from engine.telemetry.settings import FilterSettings

ZONE_ACTIVITY_CHECK_S = 30.0


@dataclass(slots=True)
class Vehicle:
    id: str
    cls: int
    lat: float = 0.0
    lon: float = 0.0
    speed: int | None = None
    heading: int | None = None
    ts: float = float("-inf")
    track: deque = field(default_factory=deque)


class OneMapView:
    """Everything the page shows; see the module docstring for the encoding."""

    def __init__(self, cfg: OneMapSettings, *, clock: Clock, filters: FilterSettings | None = None,
                 page_config: dict[str, Any] | None = None):
        self.cfg, self.clock, self.filters = cfg, clock, filters or FilterSettings()
        self.page_config = page_config or {}
        self.seq = 0
        self._slot: dict[str, int] = {}
        self._vehicles: dict[int, Vehicle] = {}
        self._free: list[int] = []
        self._next_slot = 0
        self._moved: set[int] = set()
        self._new: set[int] = set()
        self._gone: list[int] = []
        self._alerts: list[tuple[float, int, dict[str, Any]]] = []  # by event time, oldest first
        self._alert_n = 0
        self._seen_alerts: OrderedDict[str, None] = OrderedDict()
        self._new_alerts: list[dict[str, Any]] = []
        self._incidents: dict[str, dict[str, Any]] = {}
        self._closed_incidents: OrderedDict[str, None] = OrderedDict()
        self._opened: dict[str, dict[str, Any]] = {}
        self._closed: set[str] = set()
        self._tasks: dict[str, dict[str, Any]] = {}
        self._tasks_changed: set[str] = set()
        self._tasks_closed: set[str] = set()
        self._zones: list[DisplayZone] = []
        self._grid: list[DisplayZone] = []
        self._zone_activity: dict[str, bool] = {}
        self._zones_changed = False
        self._zones_checked = float("-inf")

    # ---- input ------------------------------------------------------------------------------------------------

    def apply_fixes(self, fixes: Iterable[Fix]) -> int:
        """Take fixes (any order, any vehicles); returns how many moved a vehicle."""
        moved = 0
        for fix in fixes:
            if quality_problem(fix, self.filters) is not None:
                continue
            slot = self._slot.get(fix.vehicle_id)
            cls = CLASS_INDEX.get(fix.vclass, CLASS_INDEX["other"])
            if slot is None:
                slot = self._free.pop() if self._free else self._take_slot()
                self._slot[fix.vehicle_id] = slot
                v = self._vehicles[slot] = Vehicle(fix.vehicle_id, cls, track=deque(maxlen=self.cfg.track_fixes))
                self._new.add(slot)
            else:
                v = self._vehicles[slot]
                if fix.ts <= v.ts:
                    continue
                if cls != v.cls:
                    v.cls = cls
                    self._new.add(slot)
            v.lat, v.lon, v.ts = coord(fix.lat), coord(fix.lon), fix.ts
            v.speed = None if fix.speed_kmh is None else round(fix.speed_kmh)
            v.heading = None if fix.heading is None else round(fix.heading)
            v.track.append((round(fix.ts, 3), v.lat, v.lon))
            self._moved.add(slot)
            moved += 1
        return moved

    def apply_alert(self, alert: Any) -> bool:
        """Take one alert (as on the ``alerts`` topic); ``False`` for a replay already seen.

        Raises :class:`~engine.onemap.models.InvalidRecord` for a record that is not an alert.
        """
        a = alert_summary(alert)
        aid = a["alert_id"]
        if aid in self._seen_alerts:
            return False
        self._remember(self._seen_alerts, aid)
        self._feed(a)
        inc, kind = a.get("incident_id"), a["kind"]
        if not inc or a.get("late"):
            return True
        if (kind in OPENING and a.get("severity") in INCIDENT_SEVERITIES and inc not in self._incidents
                and inc not in self._closed_incidents):
            opened = {"id": inc, "kind": kind, "severity": a.get("severity"), "since": a.get("since_at") or a.get("ts")}
            opened.update({k: a[k] for k in ("vehicle_id", "class", "zone_id", "zone_name", "lat", "lon") if k in a})
            self._incidents[inc] = self._opened[inc] = opened
            self._closed.discard(inc)
        elif kind in CLOSING:
            self._remember(self._closed_incidents, inc)
            if self._incidents.pop(inc, None) is not None:
                if self._opened.pop(inc, None) is None:
                    self._closed.add(inc)
        return True

    def apply_task(self, key: str | None, value: Any | None) -> None:
        """Take one ``tasks`` record (``None``: tombstone). Raises ``InvalidRecord`` for a bad one."""
        if value is None:
            if key is None:
                return
            task_id, task = key, None
        else:
            task = task_summary(key, value)
            task_id = task["id"]
        if task is not None and task["status"] == "open":
            self._tasks[task_id] = task
            self._tasks_changed.add(task_id)
            self._tasks_closed.discard(task_id)
        elif self._tasks.pop(task_id, None) is not None:
            self._tasks_changed.discard(task_id)
            self._tasks_closed.add(task_id)

    def set_zones(self, zones: list[DisplayZone]) -> None:
        """The zones from the zones topic (replacing the previous set)."""
        self._zones = list(zones)
        now = self.clock.now()
        self._zone_activity = {z.id: z.active(now) for z in self._zones}
        self._zones_checked = now
        self._zones_changed = True

    def set_grid(self, grid: list[DisplayZone]) -> None:
        """Grid boundaries (drawn under a toggle; never checked)."""
        self._grid = list(grid)
        self._zones_changed = True

    # ---- output -----------------------------------------------------------------------------------------------

    def delta(self) -> dict[str, Any] | None:
        """What changed since the last call (``None`` when nothing did); advances ``seq``."""
        now = self.clock.now()
        self._expire(now)
        self._check_zone_activity(now)
        d: dict[str, Any] = {}
        if self._new:
            d["nv"] = [[s, self._vehicles[s].id, self._vehicles[s].cls] for s in sorted(self._new)]
        if self._gone:
            d["g"] = sorted(self._gone)
        if self._moved:
            d["v"] = [self._move_row(s, now) for s in sorted(self._moved)]
        if self._new_alerts:
            d["a"] = self._new_alerts
        if self._opened:
            d["io"] = list(self._opened.values())
        if self._closed:
            d["ic"] = sorted(self._closed)
        if self._tasks_changed:
            d["t"] = [self._tasks[t] for t in sorted(self._tasks_changed)]
        if self._tasks_closed:
            d["tc"] = sorted(self._tasks_closed)
        if self._zones_changed:
            d["zones"] = self._zone_features(now)
        self._free.extend(self._gone)
        self._new, self._moved, self._gone, self._new_alerts = set(), set(), [], []
        self._opened, self._closed, self._tasks_changed, self._tasks_closed = {}, set(), set(), set()
        self._zones_changed = False
        if not d:
            return None
        self.seq += 1
        return {"type": "delta", "seq": self.seq, "now": round(now, 3), **d}

    def snapshot(self) -> dict[str, Any]:
        """Everything, for a browser that (re)connects; the next delta has ``seq`` + 1."""
        now = self.clock.now()
        return {
            "type": "snapshot", "seq": self.seq, "now": round(now, 3), "config": self.page_config,
            "classes": list(CLASSES),
            "vehicles": [[s, v.id, v.cls, v.lat, v.lon, v.speed, v.heading, _age(now, v.ts)]
                         for s, v in sorted(self._vehicles.items())],
            "alerts": [a for _, _, a in reversed(self._alerts)],
            "incidents": list(self._incidents.values()),
            "tasks": [self._tasks[t] for t in sorted(self._tasks)],
            "zones": self._zone_features(now),
        }

    def track(self, vehicle_id: str) -> dict[str, Any] | None:
        """The vehicle's recent fixes, oldest first, as ``[ts, lat, lon]``; ``None`` if it is not on the map."""
        slot = self._slot.get(vehicle_id)
        if slot is None:
            return None
        v = self._vehicles[slot]
        return {"vehicle_id": v.id, "class": CLASSES[v.cls], "points": [list(p) for p in v.track]}

    def vehicle_count(self) -> int:
        return len(self._vehicles)

    # ---- internals --------------------------------------------------------------------------------------------

    def _take_slot(self) -> int:
        self._next_slot += 1
        return self._next_slot - 1

    def _move_row(self, slot: int, now: float) -> list[Any]:
        v = self._vehicles[slot]
        return [slot, v.lat, v.lon, v.speed, v.heading, _age(now, v.ts)]

    def _expire(self, now: float) -> None:
        if not self.cfg.stale_s:
            return
        cutoff = now - self.cfg.stale_s
        for slot, v in [(s, v) for s, v in self._vehicles.items() if v.ts < cutoff]:
            del self._vehicles[slot], self._slot[v.id]
            self._moved.discard(slot)
            if slot in self._new:
                self._new.discard(slot)  # never announced: nothing to take back
                self._free.append(slot)
            else:
                self._gone.append(slot)

    def _check_zone_activity(self, now: float) -> None:
        if now - self._zones_checked < ZONE_ACTIVITY_CHECK_S:
            return
        self._zones_checked = now
        activity = {z.id: z.active(now) for z in self._zones}
        if activity != self._zone_activity:
            self._zone_activity = activity
            self._zones_changed = True

    def _zone_features(self, now: float) -> list[dict[str, Any]]:
        ids = {z.id for z in self._zones}
        return [z.to_feature(now) for z in self._zones] + [g.to_feature(now) for g in self._grid if g.id not in ids]

    def _feed(self, a: dict[str, Any]) -> None:
        """Keep the ``alerts_kept`` newest alerts by event time (history arrives partition by partition)."""
        t = event_time(a.get("ts"))
        key = (self.clock.now() if t is None else t, self._alert_n, a)
        self._alert_n += 1
        if len(self._alerts) >= self.cfg.alerts_kept and key[:2] < self._alerts[0][:2]:
            return  # older than everything in the feed: it only counts for its incident
        bisect.insort(self._alerts, key, key=lambda k: k[:2])
        del self._alerts[:-self.cfg.alerts_kept]
        self._new_alerts.append(a)

    def _remember(self, seen: OrderedDict[str, None], key: str) -> None:
        seen[key] = None
        if len(seen) > 20 * self.cfg.alerts_kept + 1000:
            seen.popitem(last=False)


def _age(now: float, ts: float) -> int:
    return max(0, round(now - ts))
