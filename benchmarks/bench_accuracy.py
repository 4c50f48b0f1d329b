"""Accuracy of violation alerts against known ground truth: recall, precision, spurious alerts.

Generates a fleet whose true paths are known, adds what real terminals add
(GPS noise of 5-15 m, jumps, sparse reporting, coverage gaps re-uploaded late,
invalid fixes) and feeds it, in arrival order and in batches, to the real
``ZoneChecker`` with the default settings and a fake clock. Each vehicle
belongs to one category and carries its expected violations (zone, time
window; *required*, or *optional* where the truth is within GPS accuracy, such
as a truck parked on a boundary: then one incident is fine, a second is a flap).

A violation is an incident opened by ``zone.enter`` / ``zone.cross`` in a
``forbid`` zone, ``zone.overspeed`` or ``zone.deviation`` (live alerts; late
audit alerts are scored apart). An incident that matches no expected
violation, or a second one for the same expected violation, is spurious.

    .venv/bin/python benchmarks/bench_accuracy.py [--per-category 20] [--seed 1] [--batch 200]

Standard scenario target: recall 100 %, zero spurious alerts. Prints figures only.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pyproj import Transformer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.core.clock import FakeClock  # noqa: E402
from engine.geofence.checker import ZoneChecker  # noqa: E402
from engine.geofence.index import ZoneIndex  # noqa: E402
from engine.geofence.offline import scan_offline  # noqa: E402
from engine.geofence.zone_models import parse_feature_collection  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.telemetry.models import Fix  # noqa: E402

TZ, CRS = "Asia/Shanghai", "EPSG:4548"
T0 = datetime(2026, 9, 8, 10, 0, tzinfo=ZoneInfo(TZ)).timestamp()
ORIGIN = (118.02, 24.46)
_FWD = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
_INV = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
X0, Y0 = _FWD.transform(*ORIGIN)
VIOLATIONS = {"zone.enter", "zone.cross", "zone.overspeed", "zone.deviation"}


def lonlat(e: float, n: float) -> list[float]:
    return list(_INV.transform(X0 + e, Y0 + n))


def zones_fc() -> dict:
    """The scenario's zones, in metres east/north of ORIGIN (names after Xiamen's real ones)."""

    def feat(zid, geometry, **props):
        return {"type": "Feature", "geometry": geometry, "properties": {"id": zid, "name": zid, **props}}

    def rect(e0, n0, e1, n1):
        ring = [lonlat(e, n) for e, n in ((e0, n0), (e1, n0), (e1, n1), (e0, n1), (e0, n0))]
        return {"type": "Polygon", "coordinates": [ring]}

    def line(*pts):
        return {"type": "LineString", "coordinates": [lonlat(e, n) for e, n in pts]}

    def point(e, n):
        return {"type": "Point", "coordinates": lonlat(e, n)}

    return {"type": "FeatureCollection", "features": [
        feat("tunnel", rect(0, 0, 2000, 170), rule="forbid", classes=["hazmat"], approach_m=200),
        feat("water", point(4000, 2000), rule="forbid", classes=["hazmat"], radius_m=400),
        feat("thin-road", line((3000, -1000), (3000, 1000)), rule="forbid", classes=["hazmat"], width_m=20),
        feat("fair", point(0, 4000), rule="forbid", radius_m=500, exempt=["police", "fire", "ambulance"],
             schedule=[{"start": "2026-09-08T09:00:00+08:00", "end": "2026-09-08T12:00:00+08:00"}]),
        feat("school", rect(6000, 0, 6600, 300), rule="speed", speed_limit_kmh=30),
        feat("depot", rect(8000, 0, 8200, 200), rule="forbid", dwell_s=300),
        feat("route", line((-2000, -3000), (4000, -3000), (4000, -6000)), rule="corridor", width_m=60,
             vehicles=[f"R{i:03d}" for i in range(1, 2001)]),
    ]}


@dataclass
class Expect:
    zone: str
    t0: float          # window (s after T0) in which the incident must open
    t1: float
    required: bool = True


@dataclass
class Vehicle:
    vid: str
    category: str
    fixes: list[Fix] = field(default_factory=list)
    arrival: list[tuple[float, Fix]] = field(default_factory=list)   # (arrival time, fix)
    expect: list[Expect] = field(default_factory=list)
    offline_expected: bool = False


class Gen:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.n = Counter()

    def vehicle(self, category: str, prefix: str = "V") -> Vehicle:
        """``R...`` ids are the vehicles assigned to the route corridor."""
        self.n[prefix] += 1
        return Vehicle(f"{prefix}{self.n[prefix]:03d}", category)

    def noisy(self, e: float, n: float, acc: float) -> tuple[float, float]:
        """GPS error: Gaussian, sigma = accuracy / 2 per axis, never beyond the stated accuracy."""
        while True:
            de, dn = self.rng.gauss(0, acc / 2), self.rng.gauss(0, acc / 2)
            if math.hypot(de, dn) <= acc:
                return e + de, n + dn

    def drive(self, v: Vehicle, vclass: str, pts: list[tuple[float, float]], kmh: float, *, start: float = 0.0,
              interval: float = 10.0, speed_field: bool = True, acc: tuple[float, float] = (5, 15),
              speed_noise: float = 1.0, park: bool = True) -> list[Fix]:
        """Fixes every ``interval`` s along the polyline ``pts`` at ``kmh``, then parked at the end (``park``).

        Returns them (also kept on ``v``).
        """
        out, v_ms = [], kmh / 3.6
        legs = list(zip(pts, pts[1:]))
        total = sum(math.dist(a, b) for a, b in legs)
        t = start + self.rng.uniform(0, interval)
        while (t - start) * v_ms <= total:
            d, pos = (t - start) * v_ms, pts[-1]
            for a, b in legs:
                seg = math.dist(a, b)
                if d <= seg:
                    pos = (a[0] + (b[0] - a[0]) * d / seg, a[1] + (b[1] - a[1]) * d / seg)
                    break
                d -= seg
            out.append(self.fix(v, vclass, t, pos, kmh + self.rng.uniform(-speed_noise, speed_noise)
                                if speed_field else None, acc))
            t += interval
        if park:  # arrived: the terminal reports speed 0 before it goes quiet
            out.append(self.fix(v, vclass, t, pts[-1], 0.0, acc))
        return out

    def park(self, v: Vehicle, vclass: str, pos: tuple[float, float], n: int, *, start: float = 0.0,
             interval: float = 30.0) -> list[Fix]:
        return [self.fix(v, vclass, start + i * interval, pos, 0.0) for i in range(n)]

    def fix(self, v: Vehicle, vclass: str, t: float, pos: tuple[float, float], speed: float | None,
            acc_range: tuple[float, float] = (5, 15)) -> Fix:
        acc = self.rng.uniform(*acc_range)
        e, n = self.noisy(pos[0], pos[1], acc)
        lon, lat = lonlat(e, n)
        f = Fix(v.vid, T0 + round(t, 3), lat, lon, vclass, speed_kmh=None if speed is None else max(speed, 0.0),
                accuracy_m=round(acc, 1))
        v.fixes.append(f)
        return f


def build(per: int, seed: int) -> list[Vehicle]:
    g = Gen(seed)
    vs: list[Vehicle] = []
    r = g.rng

    def add(v: Vehicle) -> Vehicle:
        vs.append(v)
        return v

    for _ in range(per):
        # through: forbidden zones driven through, at 10-30 s reporting
        v = add(g.vehicle("through"))
        iv = r.choice([10, 20, 30])
        g.drive(v, "hazmat", [(-600, 85 + r.uniform(-40, 40)), (2600, 85)], r.uniform(40, 80), interval=iv)
        v.expect.append(Expect("tunnel", 0, 400))
        v = add(g.vehicle("through"))
        g.drive(v, "hazmat", [(3000 + r.uniform(0, 300), 2000 + r.uniform(-200, 200)), (5000, 2000)],
                r.uniform(30, 60), interval=iv, start=100)
        v.expect.append(Expect("water", 100, 400))
        # near misses: alongside, 40-80 m from the boundary
        v = add(g.vehicle("near_miss"))
        side = r.choice([170 + r.uniform(40, 80), -r.uniform(40, 80)])
        g.drive(v, "hazmat", [(-600, side), (2600, side)], r.uniform(30, 70), interval=r.choice([5, 10, 30]))
        v = add(g.vehicle("near_miss"))
        a = r.uniform(0, 2 * math.pi)
        rad = 400 + r.uniform(40, 80)
        arc = [(4000 + rad * math.cos(a + k / 10), 2000 + rad * math.sin(a + k / 10)) for k in range(16)]
        g.drive(v, "hazmat", arc, r.uniform(20, 50), interval=10)
        # parked on a boundary (truth within GPS accuracy: at most one incident), and clearly inside
        v = add(g.vehicle("parked_boundary"))
        g.park(v, "hazmat", (r.uniform(200, 1800), 170 + r.uniform(-5, 5)), 60)
        v.expect.append(Expect("tunnel", 0, 1800, required=False))
        v = add(g.vehicle("parked_inside"))
        g.park(v, "hazmat", (r.uniform(200, 1800), r.uniform(25, 145)), 40)
        v.expect.append(Expect("tunnel", 0, 60))
        # teleports: driving far from zones, glitch fixes jump into zones or kilometres away
        v = add(g.vehicle("teleport"))
        fixes = g.drive(v, "hazmat", [(-600, -1500), (5000, -1500)], 50, interval=10)
        first = r.randrange(2, len(fixes) - 15)   # three glitches, isolated (4 fixes apart), the first double
        for k, i in enumerate((first, first + 5, first + 9)):
            target = r.choice([(1000, 85), (4000, 2000), (3000, 0), (r.uniform(-20e3, 20e3), 20e3)])
            lon, lat = lonlat(*target)
            fixes[i].lon, fixes[i].lat = lon, lat
            if k == 0:   # a double glitch: two consistent wrong fixes
                fixes[i + 1].lon, fixes[i + 1].lat = lonlat(target[0] + 30, target[1])
        v.fixes = fixes
        # sparse reporting across thin zones: both ends outside
        v = add(g.vehicle("sparse"))
        e = r.uniform(300, 1700)
        g.drive(v, "hazmat", [(e, 3500), (e, -1500)], 60, interval=120)   # a fix before the tunnel, one after
        v.expect.append(Expect("tunnel", 0, 400))
        v = add(g.vehicle("sparse"))
        n = r.choice([r.uniform(-800, -150), r.uniform(350, 800)])   # clear of the tunnel and the water
        g.drive(v, "hazmat", [(1200, n), (4200, n + r.uniform(-100, 100))], 60, interval=60)
        v.expect.append(Expect("thin-road", 0, 200))
        # late: coverage lost in the tunnel, buffered fixes re-uploaded after the first live ones
        v = add(g.vehicle("late"))
        fixes = g.drive(v, "hazmat", [(-1200, 85), (2900, 85)], 60, interval=10)
        gap = [f for f in fixes if -300 <= _east(f) <= 2300]
        after = [f for f in fixes if _east(f) > 2300]
        upload = after[2].ts - T0 + 1 if len(after) > 2 else fixes[-1].ts - T0 + 1
        v.arrival = [(upload if f in gap else f.ts - T0, f) for f in fixes]
        v.expect.append(Expect("tunnel", 0, 300))
        v = add(g.vehicle("late_clean"))
        fixes = g.drive(v, "hazmat", [(-600, -1800), (5000, -1800)], 50, interval=10)
        gap = fixes[5:15]
        v.arrival = [(fixes[20].ts - T0 + 1 if f in gap else f.ts - T0, f) for f in fixes]
        # exempt and not-applicable classes
        v = add(g.vehicle("exempt"))
        g.drive(v, r.choice(["police", "ambulance", "fire"]), [(-800, 4000), (800, 4000)], 50)
        v = add(g.vehicle("exempt"))
        g.drive(v, "taxi", [(-600, 85), (2600, 85)], 60)
        # schedules: the fair zone is in force 09:00-12:00
        v = add(g.vehicle("schedule_out"))
        g.drive(v, "taxi", [(-800, 4000), (800, 4000)], 40, start=3 * 3600)
        v = add(g.vehicle("schedule_in"))
        g.drive(v, "taxi", [(-800, 4000), (800, 4000)], 40, start=600)
        v.expect.append(Expect("fair", 600, 900))
        # speed: over the limit through the school zone (reported, or implied), compliant, and a spike
        v = add(g.vehicle("speeding"))
        g.drive(v, "bus", [(5500, 150), (7100, 150)], 50, interval=5, speed_field=r.random() < 0.5)
        v.expect.append(Expect("school", 0, 200))
        v = add(g.vehicle("speed_ok"))
        fixes = g.drive(v, "bus", [(5500, 150), (7100, 150)], 25, interval=5, speed_noise=2)
        inside = [f for f in fixes if 6000 < _east(f) < 6600]
        if inside:
            r.choice(inside).speed_kmh = 45.0   # one implausible reading: not "longer than a few seconds"
        # corridor: assigned trucks on their route, and one that leaves it
        v = add(g.vehicle("corridor_ok", "R"))
        g.drive(v, "hazmat", [(-2000, -3000), (4000, -3000), (4000, -6000)], 60, interval=10)
        v = add(g.vehicle("corridor_dev", "R"))
        g.drive(v, "hazmat", [(-2000, -3000), (500, -3000), (500, -3400), (1500, -3400), (1500, -3000),
                              (4000, -3000)], 60, interval=10)
        v.expect.append(Expect("route", 120, 260))
        # dwell: passing through the depot is fine, parking in it for 10 min is not
        v = add(g.vehicle("dwell_pass"))
        g.drive(v, "taxi", [(7800, 100), (8400, 100)], 30)
        v = add(g.vehicle("dwell_park"))
        g.drive(v, "taxi", [(7800, 100), (8100, 100)], 30)
        g.park(v, "taxi", (8100, 100), 20, start=60)
        v.expect.append(Expect("depot", 300, 460))
        # offline: moving then silent (expected), parked then silent (not expected)
        v = add(g.vehicle("offline"))
        g.drive(v, "hazmat", [(-600, -2500), (400, -2500)], 60, park=False)
        v.offline_expected = True
        v = add(g.vehicle("offline_parked"))
        g.park(v, "hazmat", (0, -2600), 5)
    for v in vs:
        if not v.arrival:
            v.arrival = [(f.ts - T0, f) for f in v.fixes]
    return vs


def _east(f: Fix) -> float:
    return _FWD.transform(f.lon, f.lat)[0] - X0


def run(vs: list[Vehicle], batch: int, settings: Settings) -> tuple[list[dict], Counter, float, int]:
    zones = parse_feature_collection(zones_fc(), source="bench", tz=TZ)
    clock = FakeClock(T0)
    checker = ZoneChecker(ZoneIndex(zones, crs=CRS), tz=TZ, clock=clock, settings=settings)
    stream = sorted(((at, i, f) for v in vs for i, (at, f) in enumerate(v.arrival)), key=lambda x: (x[0], x[1]))
    states: dict[str, dict] = {}
    alerts: list[dict] = []
    rejected: Counter = Counter()
    start = time.perf_counter()
    for k in range(0, len(stream), batch):
        chunk = stream[k:k + batch]
        clock.t = T0 + chunk[-1][0] + 1
        res = checker.check([f for _, _, f in chunk], states)
        states.update(res.states)
        alerts += res.alerts
        rejected.update(r.reason for r in res.rejections)
    offline, _ = scan_offline(list(states.items()), clock.t + 3600, settings.geofence, ZoneInfo(TZ))
    return alerts + offline, rejected, time.perf_counter() - start, len(stream)


def score(vs: list[Vehicle], alerts: list[dict], verbose: bool = False) -> dict[str, Counter]:
    """Per category: expected / detected / missed / spurious violations, late audit alerts, approaches, offline."""
    by_vehicle: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        by_vehicle[a["vehicle_id"]].append(a)
    rows: dict[str, Counter] = defaultdict(Counter)
    for v in vs:
        c = rows[v.category]
        c["vehicles"] += 1
        c["fixes"] += len(v.fixes)
        mine = by_vehicle.get(v.vid, [])
        opened = [a for a in mine if a["kind"] in VIOLATIONS and not a["late"]
                  and (a["kind"] != "zone.enter" or a["rule"] == "forbid")]
        matched = set()
        for ex in v.expect:
            hit = next((a for a in opened if a["zone_id"] == ex.zone and id(a) not in matched
                        and ex.t0 - 60 <= _t(a) - T0 <= ex.t1 + 120), None)
            c["expected"] += ex.required
            if hit is not None:
                matched.add(id(hit))
                c["detected"] += ex.required
                c["optional"] += not ex.required
            elif ex.required:
                c["missed"] += 1
                if verbose:
                    print(f"missed:   {v.category} {v.vid} {ex.zone} in +{ex.t0:.0f}..{ex.t1:.0f} s")
        for a in opened:
            if id(a) not in matched:
                c["spurious"] += 1
                if verbose:
                    print(f"spurious: {v.category} {v.vid} {a['kind']} {a['zone_id']} at +{_t(a) - T0:.0f} s")
        late = {a["alert_id"]: a for a in mine if a["late"]}.values()   # a split re-upload repeats its id
        c["late_audit"] += len(late)
        c["spurious"] += sum(1 for a in late if not any(ex.zone == a["zone_id"] for ex in v.expect))
        c["approach"] += sum(1 for a in mine if a["kind"] == "zone.approach")
        off = any(a["kind"] == "vehicle.offline" for a in mine)
        c["offline"] += off
        c["offline_expected"] += v.offline_expected
        c["offline_detected"] += off and v.offline_expected
        c["offline_missed"] += v.offline_expected and not off
        c["offline_spurious"] += off and not v.offline_expected
    return rows


def with_offline(rows: dict[str, Counter]) -> dict[str, Counter]:
    """Offline vehicles counted with the violations: expected, detected, missed, spurious."""
    out = {}
    for cat, c in rows.items():
        out[cat] = c.copy()
        for key in ("expected", "detected", "missed", "spurious"):
            out[cat][key] += c[f"offline_{key}"]
    return out


COLUMNS = ["vehicles", "fixes", "expected", "detected", "missed", "spurious", "optional", "late_audit", "approach",
           "offline"]


def report(rows: dict[str, Counter]) -> Counter:
    print(f"{'category':<16}" + "".join(f"{c:>11}" for c in COLUMNS))
    totals: Counter = Counter()
    for cat, c in rows.items():
        print(f"{cat:<16}" + "".join(f"{c[k]:>11}" for k in COLUMNS))
        totals.update(c)
    print(f"{'total':<16}" + "".join(f"{totals[k]:>11}" for k in COLUMNS))
    return totals


def summary(totals: Counter) -> str:
    recall = 100 * totals["detected"] / max(totals["expected"], 1)
    good, bad = totals["detected"] + totals["optional"], totals["spurious"]
    precision = 100 * good / max(good + bad, 1)
    return (f"recall {recall:6.2f} % ({totals['detected']} of {totals['expected']}), precision {precision:6.2f} % "
            f"({good} of {good + bad} alerts), spurious {bad}")


def naive() -> Settings:
    """The same engine without hysteresis, the stationary rule and the jump filter (a baseline)."""
    return Settings().replace(geofence={"exit_margin_m": 0, "exit_fixes": 1, "moving_kmh": 0},
                              filters={"max_implied_speed_kmh": 1e9})


def _t(a: dict) -> float:
    return datetime.fromisoformat(a["ts"]).timestamp()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-category", type=int, default=20, help="vehicles per generator (standard: 20)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=200, help="fixes per checker batch, in arrival order")
    ap.add_argument("--verbose", action="store_true", help="list every missed and spurious alert")
    args = ap.parse_args()
    vs = build(args.per_category, args.seed)
    alerts, rejected, seconds, n = run(vs, args.batch, Settings())
    print(f"accuracy harness: {len(vs)} vehicles, {n} fixes, seed {args.seed}, batches of {args.batch}; "
          f"checked in {seconds:.2f} s ({n / seconds:,.0f} fixes/s)")
    print("rejected: " + (", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none") + "\n")
    totals = report(with_offline(score(vs, alerts, args.verbose)))
    print("(expected/detected/missed: required violations and offline vehicles; optional: one incident for a truck "
          "parked on a boundary)\n")
    print("engine (default settings):       " + summary(totals))
    base = score(vs, run(vs, args.batch, naive())[0])   # it counts every vehicle as moving: offline left out
    flaps = ", ".join(f"{cat} {c['spurious']}" for cat, c in base.items() if c["spurious"])
    print("baseline (no hysteresis, no stationary rule, no jump filter), zone violations only:\n  "
          + summary(sum(base.values(), Counter())) + f"\n  spurious by category: {flaps or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
