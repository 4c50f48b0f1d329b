"""Check a batch of fixes against the zone index: filters, geometry, transitions, alerts.

Knows nothing of Kafka or Faust: the agent hands it decoded fixes and the
vehicles' stored states and writes back what it returns.

Ordering policy (late fixes): within a batch a vehicle's fixes are taken in
event-time order. A fix whose timestamp equals the vehicle's last accepted one
is a ``duplicate``; one older than it is ``late`` (a terminal re-uploading
buffered positions): it is not treated as a move, never changes live state or
raises a zone alert, and goes to ``fixes.rejected`` with that reason so it is
counted and kept for the record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from engine.alerts.models import make_alert
from engine.clock import Clock
from engine.geofence.index import ZoneIndex
from engine.geofence.transitions import ZoneEvent, transition
from engine.telemetry.models import Fix
from engine.telemetry.validation import Rejection

EVALUATED_RULES = ("forbid", "watch")


@dataclass
class BatchResult:
    states: dict[str, dict[str, Any]] = field(default_factory=dict)   # changed vehicles only
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    checked: int = 0


class ZoneChecker:
    def __init__(self, index: ZoneIndex, *, tz: str, clock: Clock):
        self.index, self.tz, self.clock = index, ZoneInfo(tz), clock
        self._by_id = {z.id: z for z in index.zones}

    def _filter(self, fixes: list[Fix], states: Mapping[str, dict | None], result: BatchResult) -> list[Fix]:
        by_vehicle: dict[str, list[Fix]] = defaultdict(list)
        for f in fixes:
            by_vehicle[f.vehicle_id].append(f)
        accepted: list[Fix] = []
        for vid, fl in by_vehicle.items():
            fl.sort(key=lambda f: f.ts)
            st = states.get(vid)
            last = st["ts"] if st else None
            for f in fl:
                if last is not None and f.ts <= last:
                    reason = "duplicate" if f.ts == last else "late"
                    result.rejections.append(Rejection(
                        reason, f"ts {f.ts} is {'equal to' if f.ts == last else 'older than'} the vehicle's "
                        f"last accepted fix ({last})", f.to_json(), topic="fixes", vehicle_id=vid,
                        received_at=f.received_at, source="worker"))
                    continue
                accepted.append(f)
                last = f.ts
        return accepted

    def check(self, fixes: list[Fix], states: Mapping[str, dict | None]) -> BatchResult:
        result = BatchResult()
        acc = self._filter(fixes, states, result)
        n = len(acc)
        if not n:
            return result
        lon = np.fromiter((f.lon for f in acc), float, n)
        lat = np.fromiter((f.lat for f in acc), float, n)
        x, y = self.index.project(lon, lat)
        px, py = np.full(n, np.nan), np.full(n, np.nan)
        for i, f in enumerate(acc):  # previous position: the fix before in this batch, else the stored one
            if i and acc[i - 1].vehicle_id == f.vehicle_id:
                px[i], py[i] = x[i - 1], y[i - 1]
            elif (st := states.get(f.vehicle_id)) is not None:
                px[i], py[i] = st["x"], st["y"]
        inside_geom: list[set[int]] = [set() for _ in range(n)]
        crossed_geom: list[set[int]] = [set() for _ in range(n)]
        for i, z in zip(*self.index.point_hits(x, y)):
            inside_geom[i].add(int(z))
        for i, z in zip(*self.index.segment_hits(px, py, x, y)):
            crossed_geom[i].add(int(z))
        result.checked = n
        now = self.clock.now()
        cur: dict[str, dict[str, Any] | None] = {}
        for i, f in enumerate(acc):
            vid = f.vehicle_id
            st = cur[vid] if vid in cur else states.get(vid)
            when = datetime.fromtimestamp(f.ts, self.tz)
            inside, crossed, reasons = set(), set(), {}
            for z in inside_geom[i] | crossed_geom[i]:
                zone = self.index.zones[z]
                if zone.rule not in EVALUATED_RULES:
                    continue
                if not zone.applies_to(f.vclass):
                    reasons[zone.id] = "not_applicable"
                elif not zone.schedule.active(when):
                    reasons[zone.id] = "schedule_ended"
                elif z in inside_geom[i]:
                    inside.add(zone.id)
                else:
                    crossed.add(zone.id)
            prev_zones = (st or {}).get("zones", {})
            for zid in prev_zones:
                if zid not in self._by_id:
                    reasons[zid] = "zone_removed"
            zones, events = transition(vid, prev_zones, inside, crossed, ts=f.ts,
                                       prev_ts=st["ts"] if st else None, exit_reasons=reasons)
            for ev in events:
                result.alerts.append(self._alert(ev, f, st, now))
            new = {"ts": f.ts, "lat": f.lat, "lon": f.lon, "x": float(x[i]), "y": float(y[i]),
                   "class": f.vclass, "zones": zones}
            cur[vid] = new
            result.states[vid] = new
        return result

    def _alert(self, ev: ZoneEvent, f: Fix, prev: dict | None, now: float) -> dict[str, Any]:
        zone = self._by_id.get(ev.zone_id)
        fields: dict[str, Any] = {
            "vehicle_id": f.vehicle_id, "class": f.vclass, "zone_id": ev.zone_id,
            "zone_name": zone.name if zone else ev.zone_id, "rule": zone.rule if zone else None,
            "lat": f.lat, "lon": f.lon, "speed_kmh": f.speed_kmh, "incident_id": ev.incident_id,
            "late": False,
        }
        severity = zone.severity if zone else "info"
        if ev.kind == "zone.exit":
            severity = "info"
            fields.update(duration_s=round(f.ts - ev.since, 3), reason=ev.reason,
                          entered_at=datetime.fromtimestamp(ev.since, self.tz).isoformat())
        elif ev.kind == "zone.cross" and prev:
            fields.update(from_lat=prev["lat"], from_lon=prev["lon"],
                          from_ts=datetime.fromtimestamp(prev["ts"], self.tz).isoformat())
        return make_alert(ev.kind, severity, alert_id=ev.alert_id, subject=f.vehicle_id, ts=f.ts,
                          detected_at=now, tz=self.tz, **fields)
