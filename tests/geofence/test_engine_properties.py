"""Property tests: the engine's decisions equal the brute-force reference, and incidents nest properly.

Random zones of every rule (through the real loader), random vehicles driving,
parking with GPS noise, jumping, reporting sparsely, re-uploading late and
repeating fixes, fed to the checker in random batches.
"""

from __future__ import annotations

import math
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.geofence.transitions import CLOSING
from engine.settings import Settings
from tests.geofence.plane import T0, Run, circle, fix, load, rect, road
from tests.geofence.reference import Reference

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VEHICLES = ("v1", "v2", "v3")
CLASSES = ("hazmat", "taxi", "police")
TUNING = Settings().replace(geofence={"overspeed_min_s": 10})


@st.composite
def zone_features(draw, i):
    zid = f"z{i}"
    rule = draw(st.sampled_from(["forbid", "forbid", "watch", "speed", "speed", "corridor"]))
    props: dict = {"rule": rule}
    if rule == "speed":
        props["speed_limit_kmh"] = draw(st.sampled_from([30, 60]))
    if rule == "corridor":
        props["vehicles"] = draw(st.lists(st.sampled_from(VEHICLES), min_size=1, max_size=2, unique=True))
    if rule == "forbid" and draw(st.booleans()):
        props["approach_m"] = draw(st.sampled_from([20, 60, 150]))
    if rule != "speed" and draw(st.integers(0, 3)) == 0:
        props["dwell_s"] = draw(st.sampled_from([0, 30, 90]))
    if draw(st.integers(0, 3)) == 0:
        props["dwell_repeat_s"] = draw(st.sampled_from([40, 100]))
    if draw(st.integers(0, 3)) == 0:
        props["classes"] = draw(st.lists(st.sampled_from(CLASSES), min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 3)) == 0:
        props["exempt"] = ["police"]
    if draw(st.integers(0, 4)) == 0:
        start = draw(st.integers(-600, 600))
        props["schedule"] = [{"start": _iso(start), "end": _iso(start + draw(st.integers(60, 1200)))}]
    e, n = draw(st.integers(-300, 300)), draw(st.integers(-300, 300))
    kind = "road" if rule == "corridor" else draw(st.sampled_from(["rect", "circle", "road"]))
    if kind == "rect":
        w, h = draw(st.integers(10, 300)), draw(st.integers(10, 300))
        edge = [(e + w * a, n + h * b) for a, b in ((0, 0.5), (1, 0.3), (0.5, 0), (0.2, 1), (1, 1))]
        return rect(zid, e, n, e + w, n + h, **props), edge
    if kind == "circle":
        r = draw(st.integers(5, 250))
        edge = [(e + r * math.cos(a), n + r * math.sin(a)) for a in (0.3, 1.9, 3.5, 5.0)]
        return circle(zid, e, n, r, **props), edge
    end = (e + draw(st.integers(-600, 600)), n + draw(st.integers(-600, 600)))
    if end == (e, n):
        end = (e + 100, n)
    width = draw(st.integers(4, 80))
    length = math.dist((e, n), end)
    ux, uy = (end[0] - e) / length, (end[1] - n) / length
    edge = [(e + (end[0] - e) * k + side * uy * width / 2, n + (end[1] - n) * k - side * ux * width / 2)
            for k in (0.2, 0.5, 0.8) for side in (-1, 1)]
    return road(zid, [(e, n), end], width, **props), edge


def _iso(t: float) -> str:
    return datetime.fromtimestamp(T0 + t).astimezone().isoformat()


@st.composite
def scenario(draw):
    made = [draw(zone_features(i)) for i in range(draw(st.integers(1, 5)))]
    zones = load(*[feature for feature, _ in made])
    fixes = []
    for vid in draw(st.lists(st.sampled_from(VEHICLES), min_size=1, max_size=3, unique=True)):
        vclass = draw(st.sampled_from(CLASSES))
        edges = draw(st.sampled_from([edge for _, edge in made]))   # start near a zone's boundary
        t, (e, n) = 0.0, draw(st.sampled_from(edges))
        speed = draw(st.sampled_from([None, 0.0, 20.0, 50.0, 80.0]))
        for _ in range(draw(st.integers(1, 30))):
            move = draw(st.sampled_from(["noise", "noise", "noise", "crawl", "drive", "sparse", "jump", "edge",
                                         "edge"]))
            t += {"sparse": 120}.get(move, 10) * draw(st.sampled_from([0.5, 1, 3]))
            reach = {"noise": 15, "crawl": 40, "drive": 150, "sparse": 1200, "jump": 20_000, "edge": 20}[move]
            de, dn = draw(st.floats(-reach, reach)), draw(st.floats(-reach, reach))
            if move == "edge":  # to a point near the boundary of a zone, then hover there for a few fixes
                target = draw(st.sampled_from(draw(st.sampled_from([edge for _, edge in made]))))
                de, dn = de + target[0] - e, dn + target[1] - n
                for _ in range(draw(st.integers(0, 4))):
                    fixes.append(fix(vid, t, e + de + draw(st.floats(-3, 3)), n + dn + draw(st.floats(-3, 3)),
                                     vclass=vclass, speed_kmh=speed))
                    t += 10
            if draw(st.integers(0, 5)) == 0:
                speed = draw(st.sampled_from([None, 0.0, 20.0, 50.0, 80.0]))
            if draw(st.integers(0, 15)) == 0:
                vclass = draw(st.sampled_from(CLASSES))
            quality = draw(st.sampled_from([{}] * 6 + [{"valid": False}, {"accuracy_m": 80}, {"accuracy_m": 5},
                                                       {"status_flags": 2}]))
            fixes.append(fix(vid, t, e + de, n + dn, vclass=vclass, speed_kmh=speed, **quality))
            if move not in ("jump", "noise"):  # a jump is a glitch; noise scatters around where it is
                e, n = max(-900, min(900, e + de)), max(-900, min(900, n + dn))
    # Arrival: mostly in order, some fixes re-uploaded late, some repeated.
    arrival = list(fixes)
    for _ in range(draw(st.integers(0, 4))):
        if arrival:
            i = draw(st.integers(0, len(arrival) - 1))
            arrival.append(arrival.pop(i) if draw(st.booleans()) else arrival[i])
    if draw(st.integers(0, 2)) == 0:  # fix by fix, as a quiet stream delivers them
        return zones, [[f] for f in arrival]
    cuts = sorted(draw(st.lists(st.integers(0, len(arrival)), max_size=15)))
    batches = [arrival[a:b] for a, b in zip([0, *cuts], [*cuts, len(arrival)])]
    return zones, [b for b in batches if b]


def canonical(alerts):
    def key(a):
        ts = a["ts"] if isinstance(a["ts"], float) else datetime.fromisoformat(a["ts"]).timestamp()
        return (a["vehicle_id"], a["late"], round(ts, 3), a["zone_id"], a["kind"], a["alert_id"], a["incident_id"],
                a.get("reason"), a.get("duration_s"), a.get("repeat"), a.get("late_fixes"))
    return sorted(key(a) for a in alerts)


@PROPERTY
@given(scenario())
def test_engine_equals_the_brute_force_reference(case):
    zones, batches = case
    engine, ref = Run(zones, settings=TUNING), Reference(zones, settings=TUNING)
    for b in batches:
        engine.feed(*b)
        ref.batch(b)
    assert canonical(engine.alerts) == canonical(ref.alerts)


@settings(PROPERTY, max_examples=100)
@given(scenario())
def test_every_opening_is_followed_by_at_most_one_closing_before_the_next(case):
    zones, batches = case
    engine = Run(zones, settings=TUNING)
    for b in batches:
        engine.feed(*b)
    opens = {"zone.exit": "zone.enter", "zone.return": "zone.deviation", "zone.overspeed_end": "zone.overspeed"}
    for closing, opening in opens.items():
        seq: dict[tuple[str, str], list[str]] = {}
        for a in engine.alerts:
            if a["kind"] in (opening, closing) and not a["late"]:
                seq.setdefault((a["vehicle_id"], a["zone_id"]), []).append(a["kind"])
        for kinds in seq.values():
            assert kinds == [opening, closing] * (len(kinds) // 2) + [opening] * (len(kinds) % 2), kinds
    ids = [a["alert_id"] for a in engine.alerts if not a["late"]]
    assert len(ids) == len(set(ids))  # one alert per id: nothing raised twice
    for a in engine.alerts:
        if a["kind"] in CLOSING:
            assert a["severity"] == "info" and a["duration_s"] >= 0
