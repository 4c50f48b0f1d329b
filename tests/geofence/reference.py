"""A deliberately simple reference for the zone engine: every fix against every zone, one by one.

No index, no vectorisation, no candidate selection, no pruned state: each zone
is projected vertex by vertex with scalar pyproj calls, every fix is a shapely
Point, every move a LineString, and every zone is stepped for every fix with
the rules written out from their documentation (README "Zone rules",
engine/geofence/hysteresis.py and transitions.py docstrings, late.py,
filters.py). Property tests compare the engine's alerts with these.

It only knows about ids (engine.alerts.models.stable_id) and zone parsing
(engine.geofence.zone_models) from the engine.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from pyproj import Transformer
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from engine.alerts.models import stable_id
from engine.geofence.zone_models import Zone
from engine.settings import Settings
from engine.telemetry.models import Fix


def project(crs: str):
    t = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return lambda lon, lat: t.transform(lon, lat)


def area_of(zone: Zone, xy) -> Polygon | MultiPolygon:
    def ring(coords):
        return [xy(lon, lat) for lon, lat in coords]

    def polygon(p):
        return Polygon(ring(p.exterior.coords), [ring(h.coords) for h in p.interiors])

    g = zone.geometry
    if isinstance(g, Point):
        return Point(xy(g.x, g.y)).buffer(zone.radius_m, quad_segs=32)
    if isinstance(g, LineString):
        return LineString(ring(g.coords)).buffer(zone.width_m / 2, quad_segs=32)
    return polygon(g) if isinstance(g, Polygon) else MultiPolygon([polygon(p) for p in g.geoms])


@dataclass
class ZoneMemory:
    """What the reference remembers about one vehicle and one zone."""

    rule: str
    inside: bool            # counted as inside (corridor: starts True)
    run: int = 0            # consecutive moving fixes pointing the other way
    band: bool = False      # left softly and not yet further than the margin
    run_start: float | None = None   # first outside fix while inside
    since: float | None = None       # when the current violation state began
    incident: str | None = None      # raised
    repeats: int = 0
    over_since: float | None = None
    over_incident: str | None = None
    under_since: float | None = None
    vmax: float = 0.0
    was_near: bool = False
    warned: bool = False


@dataclass
class Vehicle:
    ts: float | None = None
    x: float = 0.0
    y: float = 0.0
    suspects: list[tuple[float, float, float]] = field(default_factory=list)
    zones: dict[str, ZoneMemory] = field(default_factory=dict)


class Reference:
    def __init__(self, zones: list[Zone], settings: Settings | None = None, tz: str = "Asia/Shanghai",
                 crs: str = "EPSG:4548"):
        s = settings or Settings()
        self.g, self.f, self.tz = s.geofence, s.filters, ZoneInfo(tz)
        self.xy = project(crs)
        self.zones = list(zones)
        self.areas = {z.id: area_of(z, self.xy) for z in self.zones}
        self.vehicles: dict[str, Vehicle] = defaultdict(Vehicle)
        self.alerts: list[dict] = []

    # --- the batch, as the worker sees it ---------------------------------------------------------

    def batch(self, fixes: list[Fix]) -> None:
        order: list[str] = []
        per: dict[str, list[Fix]] = defaultdict(list)
        for f in fixes:
            if self._bad_quality(f):
                continue
            if f.vehicle_id not in per:
                order.append(f.vehicle_id)
            per[f.vehicle_id].append(f)
        late: dict[str, list[Fix]] = {}
        for vid in order:
            v = self.vehicles[vid]
            seen: set[float] = {t for t, _, _ in v.suspects}   # a repeated rejected fix is a duplicate too
            live, old = [], []
            for f in sorted(per[vid], key=lambda f: f.ts):
                if f.ts in seen or f.ts == v.ts:
                    continue
                seen.add(f.ts)
                (old if v.ts is not None and f.ts < v.ts else live).append(f)
            for f in live:
                self._live(v, f)
            late[vid] = old
        found: dict[str, dict] = {}
        for vid in order:
            self._late(late[vid], found)
        self.alerts += found.values()

    def _bad_quality(self, f: Fix) -> bool:
        if self.f.invalid_fix and (f.valid is False or (f.status_flags is not None and not f.status_flags & 2)):
            return True
        return self.f.max_accuracy_m > 0 and f.accuracy_m is not None and f.accuracy_m > self.f.max_accuracy_m

    def _kmh(self, t0, x0, y0, t1, x1, y1, tol=0.0) -> float:
        d = max(math.hypot(x1 - x0, y1 - y0) - tol, 0.0)
        return math.inf if t1 <= t0 and d > 0 else (0.0 if t1 <= t0 else d / (t1 - t0) * 3.6)

    def _plausible(self, a, b) -> bool:
        return self._kmh(a[0], a[1], a[2], b[0], b[1], b[2], self.f.jump_tolerance_m) <= self.f.max_implied_speed_kmh

    # --- a live fix --------------------------------------------------------------------------------

    def _live(self, v: Vehicle, f: Fix) -> None:
        x, y = self.xy(f.lon, f.lat)
        prev: tuple[float, float, float] | None = None
        if v.ts is not None:
            here = (f.ts, x, y)
            if self._plausible((v.ts, v.x, v.y), here):
                v.suspects = []
                prev = (v.ts, v.x, v.y)
            else:
                if v.suspects and self._plausible(v.suspects[-1], here):
                    v.suspects.append(here)
                else:
                    v.suspects = [here]
                if len(v.suspects) < max(1, self.f.reanchor_fixes):
                    return
                v.suspects = []     # re-anchored: no segment from the old anchor
        speed = f.speed_kmh
        if speed is None and prev is not None:
            speed = self._kmh(prev[0], prev[1], prev[2], f.ts, x, y)
        moved = math.hypot(x - prev[1], y - prev[2]) if prev is not None else 0.0
        moving = speed is None or speed >= self.g.moving_kmh or moved > 2 * self.g.exit_margin_m
        when = datetime.fromtimestamp(f.ts, self.tz)
        pt = Point(x, y)
        seg = None
        if prev is not None:
            seg = Point(x, y) if (prev[1], prev[2]) == (x, y) else LineString([(prev[1], prev[2]), (x, y)])
        events: list[tuple[bool, dict]] = []
        for zone in sorted(self.zones, key=lambda z: z.id):
            self._zone(f, v, zone, pt, seg, prev, speed, moving, when, events)
        for zid in sorted(set(v.zones) - {z.id for z in self.zones}):
            self._close(f, zid, v.zones.pop(zid), "zone_removed", events)
        events.sort(key=lambda e: e[0])
        self.alerts += [e for _, e in events]
        v.ts, v.x, v.y = f.ts, x, y

    def _emit(self, events, f, kind, zone_id, aid, inc, closing=False, **extra) -> None:
        events.append((not closing, {"vehicle_id": f.vehicle_id, "kind": kind, "zone_id": zone_id, "alert_id": aid,
                                     "incident_id": inc, "ts": f.ts, "late": False, **extra}))

    def _close(self, f, zid, m: ZoneMemory, reason, events) -> None:
        if m.incident is not None:
            kind = "zone.return" if m.rule == "corridor" else "zone.exit"
            self._emit(events, f, kind, zid, stable_id(kind[5:], m.incident), m.incident, True, reason=reason,
                       duration_s=round(max(f.ts - m.since, 0.0), 3))
        if m.over_incident is not None:
            self._emit(events, f, "zone.overspeed_end", zid, stable_id("overspeed_end", m.over_incident),
                       m.over_incident, True, reason=reason, duration_s=round(max(f.ts - m.over_since, 0.0), 3))

    def _zone(self, f, v, zone, pt, seg, prev, speed, moving, when, events) -> None:
        zid, area = zone.id, self.areas[zone.id]
        applies = zone.applies(f.vehicle_id, f.vclass)
        active = zone.schedule.active(when)
        if not applies or not active:
            if zid in v.zones:
                self._close(f, zid, v.zones.pop(zid), "not_applicable" if not applies else "schedule_ended", events)
            return
        corridor = zone.rule == "corridor"
        m = v.zones.get(zid) or ZoneMemory(zone.rule, inside=corridor)
        inside = area.intersects(pt)
        d = area.boundary.distance(pt) * (-1 if inside else 1)
        crossed = seg is not None and area.intersects(seg)
        margin, need = self.g.exit_margin_m, max(1, self.g.exit_fixes)
        # presence, from the rules in hysteresis.py's docstring
        event, left_at = None, None
        was_band = m.band
        if not moving and (m.inside or m.band):
            pass    # noise of a stationary vehicle: no evidence either way
        elif m.inside:
            if inside:
                m.run, m.run_start, m.band = 0, None, False
            else:
                if m.run_start is None:
                    m.run_start = f.ts
                if moving:
                    m.run += 1
                if d > margin or m.run >= need:
                    event, left_at = "exit", m.run_start
                    m.inside, m.band = False, d <= margin
                    m.run, m.run_start = 0, None
        else:
            if d > margin:
                m.band = False
            if inside:
                if not m.band or -d > margin:
                    event = "enter"
                else:
                    if moving:
                        m.run += 1
                    if m.run >= need:
                        event = "enter"
                if event:
                    m.inside, m.run, m.band = True, 0, False
            else:
                m.run = 0
                if crossed and moving and not was_band:
                    event = "cross"
                    m.band = d <= margin
        dwell = zone.dwell_s or 0
        if corridor:
            if event == "enter":
                if m.incident:
                    self._emit(events, f, "zone.return", zid, stable_id("return", m.incident), m.incident, True,
                               reason="returned", duration_s=round(max(f.ts - m.since, 0.0), 3))
                m.since, m.incident, m.repeats = None, None, 0
            if event == "exit":
                m.since = left_at
            if not m.inside:
                self._violate(f, zone, m, "zone.deviation", stable_id("deviation", f.vehicle_id, zid,
                                                                      round(m.since, 3)), dwell, events)
        elif zone.rule == "speed":
            self._speed(f, zone, m, event, left_at, speed, events)
        else:
            if event == "exit":
                if m.incident:
                    self._emit(events, f, "zone.exit", zid, stable_id("exit", m.incident), m.incident, True,
                               reason="left", duration_s=round(max(left_at - m.since, 0.0), 3))
                m.since, m.incident, m.repeats = None, None, 0
            if event == "enter":
                m.since = f.ts
            if event == "cross" and not zone.dwell_s and prev is not None:
                cid = stable_id("cross", f.vehicle_id, zid, round(prev[0], 3), round(f.ts, 3))
                self._emit(events, f, "zone.cross", zid, cid, cid)
            if m.inside:
                self._violate(f, zone, m, "zone.enter", stable_id("incident", f.vehicle_id, zid, round(m.since, 3)),
                              dwell, events)
            if zone.rule == "forbid" and zone.approach_m is not None:
                self._approach(f, zone, m, event, inside, area.distance(pt), events)
        if m == ZoneMemory(zone.rule, inside=corridor):
            v.zones.pop(zid, None)
        else:
            v.zones[zid] = m

    def _violate(self, f, zone, m: ZoneMemory, kind, inc, dwell, events) -> None:
        if m.incident is None:
            if f.ts - m.since >= dwell:
                m.incident = inc
                self._emit(events, f, kind, zone.id, inc, inc)
        elif zone.dwell_repeat_s:
            k = math.floor((f.ts - m.since - dwell) / zone.dwell_repeat_s)
            if k > m.repeats:
                m.repeats = k
                self._emit(events, f, "zone.dwell", zone.id, stable_id("dwell", m.incident, k), m.incident, repeat=k)

    def _speed(self, f, zone, m: ZoneMemory, event, left_at, speed, events) -> None:
        limit = zone.speed_limit_kmh
        min_s = zone.dwell_s if zone.dwell_s is not None else self.g.overspeed_min_s

        def end(at, reason):
            self._emit(events, f, "zone.overspeed_end", zone.id, stable_id("overspeed_end", m.over_incident),
                       m.over_incident, True, reason=reason, duration_s=round(max(at - m.over_since, 0.0), 3))
            m.over_since, m.over_incident, m.under_since, m.vmax = None, None, None, 0.0

        if m.over_incident:
            if not m.inside:
                end(left_at or f.ts, "left")
            elif speed is not None and speed > limit:
                m.vmax, m.under_since = max(m.vmax, speed), None
            elif speed is not None:
                if m.under_since is None:
                    m.under_since = f.ts
                if f.ts - m.under_since >= min_s:
                    end(m.under_since, "slowed")
            return
        if not m.inside or (speed is not None and speed <= limit):
            m.over_since, m.vmax = None, 0.0
            return
        if speed is None:
            return
        if m.over_since is None:
            m.over_since = f.ts
        m.vmax = max(m.vmax, speed)
        if f.ts - m.over_since >= min_s:
            m.over_incident = stable_id("overspeed", f.vehicle_id, zone.id, round(m.over_since, 3))
            self._emit(events, f, "zone.overspeed", zone.id, m.over_incident, m.over_incident)

    def _approach(self, f, zone, m: ZoneMemory, event, inside, dist, events) -> None:
        a, margin = zone.approach_m, self.g.exit_margin_m
        if event in ("exit", "cross") or dist > a + margin:
            m.warned = False
        near = m.inside or inside or dist <= a
        if near and event is None and not m.inside and not m.was_near and not m.warned and dist > 0:
            m.warned = True
            aid = stable_id("approach", f.vehicle_id, zone.id, round(f.ts, 3))
            self._emit(events, f, "zone.approach", zone.id, aid, aid)
        m.was_near = near

    # --- late fixes --------------------------------------------------------------------------------

    def _late(self, fixes: list[Fix], found: dict[str, dict]) -> None:
        pts = [(f.ts, *self.xy(f.lon, f.lat)) for f in fixes]
        n = len(pts)
        for i, f in enumerate(fixes):
            if n >= 2:
                nb = [j for j in (i - 1, i + 1) if 0 <= j < n]
                bad = [not self._plausible(pts[min(i, j)], pts[max(i, j)]) for j in nb]
                if i == 0:
                    spike = bad[0] and (n == 2 or self._plausible(pts[1], pts[2]))
                elif i == n - 1:
                    spike = bad[0] and (n == 2 or self._plausible(pts[n - 3], pts[n - 2]))
                else:
                    spike = all(bad)
                if spike:
                    continue
            pt = Point(pts[i][1], pts[i][2])
            when = datetime.fromtimestamp(f.ts, self.tz)
            for zone in sorted(self.zones, key=lambda z: z.id):
                area = self.areas[zone.id]
                if not zone.applies(f.vehicle_id, f.vclass) or not zone.schedule.active(when):
                    continue
                if zone.rule == "forbid" and not zone.dwell_s and area.intersects(pt):
                    kind = "zone.enter"
                elif zone.rule == "corridor" and not area.intersects(pt) and \
                        area.boundary.distance(pt) > self.g.exit_margin_m:
                    kind = "zone.deviation"
                else:
                    continue
                g = self.g.late_group_s
                aid = stable_id("late", kind, f.vehicle_id, zone.id, math.floor(f.ts / g) if g > 0 else round(f.ts, 3))
                if aid in found:
                    found[aid]["late_fixes"] += 1
                else:
                    found[aid] = {"vehicle_id": f.vehicle_id, "kind": kind, "zone_id": zone.id, "alert_id": aid,
                                  "incident_id": aid, "ts": f.ts, "late": True, "late_fixes": 1}
