"""A fleet of simulated vehicles that report fixes as a vehicle gateway would.

Fix contract (README "Contracts", "Fixes in"): topic ``citywatch/fixes/{vehicle_id}``,
payload one JSON object with ``vehicle_id``, ``class``, ``ts`` (ISO 8601,
``+08:00``), ``lat``, ``lon``, ``speed_kmh``, ``heading``, ``accuracy_m``,
``alarm_flags``. The fleet only produces: it reads the injected clock and
hands ``(topic, payload, qos)`` to the injected ``publish``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from simulators.routes import CITY_ROUTES, HAZMAT_ROUTES, SCRIPTED_LEAD_IN, SCRIPTED_ONWARD, Route

log = logging.getLogger(__name__)

CHINA_TZ = timezone(timedelta(hours=8))
SCRIPTED_PLATE = "闽DH0001"
SCRIPTED_SPEED_KMH = 60.0
_PLATE_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"  # no I or O on Chinese plates
_EPS_S = 1e-3  # a tick this early still counts as on time
_MAX_SLEEP_S = 1.0

DEFAULT_COUNTS = {"hazmat": 5, "police": 3, "fire": 2, "ambulance": 2, "taxi": 8, "bus": 5}
# Demo values, chosen so a live demo shows movement within seconds. Real
# terminals typically report every 30 s moving and 300 s parked.
DEFAULT_INTERVALS_S = {"hazmat": 5.0, "police": 3.0, "fire": 3.0, "ambulance": 3.0, "taxi": 5.0,
                       "bus": 5.0, "ride_hailing": 5.0, "other": 5.0}
DEFAULT_SPEEDS_KMH = {"hazmat": (40.0, 60.0), "police": (40.0, 80.0), "fire": (40.0, 80.0),
                      "ambulance": (40.0, 80.0), "taxi": (30.0, 60.0), "bus": (25.0, 40.0),
                      "ride_hailing": (30.0, 60.0), "other": (30.0, 60.0)}


@dataclass(frozen=True)
class FleetConfig:
    """Everything that shapes the simulated fleet; same config and seed, same fixes.

    Parameters
    ----------
    counts : mapping of str to int
        Vehicles per class. The scripted truck takes one of the hazmat places
        (it is added even when hazmat is 0).
    intervals_s, speeds_kmh : mappings
        Report interval (simulated seconds) and ``(low, high)`` speed per class.
    scripted_violation : bool
        Add hazmat truck ``闽DH0001`` driving through the Haicang Tunnel at start.
    seed : int
        Seed of the one random generator behind plates, routes, speeds and phases.
    qos : int
        MQTT QoS of every fix.
    topic_prefix : str
        Fixes go to ``{topic_prefix}/{vehicle_id}``.
    speedup : float
        Simulated seconds per clock second: at 2 the vehicles move twice as far
        and report twice as often per clock second, and report twice their speed
        (so speed and track stay consistent; high values trip overspeed rules).
    """

    counts: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_COUNTS))
    intervals_s: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_INTERVALS_S))
    speeds_kmh: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_SPEEDS_KMH))
    scripted_violation: bool = True
    seed: int = 0
    qos: int = 1
    topic_prefix: str = "citywatch/fixes"
    speedup: float = 1.0

    def __post_init__(self) -> None:
        problems = [f"qos {self.qos!r} not 0, 1 or 2"] * (self.qos not in (0, 1, 2))
        problems += [f"speedup {self.speedup!r} not > 0"] * (not self.speedup > 0)
        if not self.topic_prefix or any(c in self.topic_prefix for c in "+#"):
            problems.append(f"topic_prefix {self.topic_prefix!r} empty or has + or #")
        problems += [f"class {c!r}: count < 0, or no positive interval and speed range"
                     for c, n in self.counts.items() if n < 0 or n and (
                         self.intervals_s.get(c, 0) <= 0 or c not in self.speeds_kmh)]
        if problems:
            raise ValueError("bad FleetConfig: " + "; ".join(problems))

    def with_total(self, total: int) -> FleetConfig:
        """The same mix of classes scaled to ``total`` vehicles (largest remainder)."""
        weight = sum(self.counts.values()) or 1
        exact = {c: total * n / weight for c, n in self.counts.items()}
        counts = {c: int(x) for c, x in exact.items()}
        for c in sorted(exact, key=lambda c: counts[c] - exact[c])[: total - sum(counts.values())]:
            counts[c] += 1
        return dataclasses.replace(self, counts=counts)


@dataclass
class Vehicle:
    """One simulated vehicle driving back and forth along a route at constant speed.

    ``lead_in``, if given, is driven once before ``route`` starts (the scripted truck).
    Distance is ``start_m`` plus speed times simulated seconds since the fleet started.
    """

    vehicle_id: str
    vclass: str
    route: Route
    speed_kmh: float
    interval_s: float
    start_m: float = 0.0
    phase_s: float = 0.0
    accuracy_m: int = 5
    lead_in: Route | None = None
    next_due_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.next_due_s = self.phase_s

    def position(self, elapsed_s: float) -> tuple[float, float, int]:
        """``(lon, lat, heading)`` after ``elapsed_s`` simulated seconds."""
        d = self.start_m + self.speed_kmh / 3.6 * elapsed_s
        if self.lead_in is not None and d < self.lead_in.length_m:
            return self.lead_in.at(d)
        return self.route.bounce(d - (self.lead_in.length_m if self.lead_in else 0.0))

    def step(self, now: datetime, elapsed_s: float, speedup: float = 1.0) -> dict[str, Any]:
        """The fix for ``now`` (``elapsed_s`` simulated seconds in); schedules the next report."""
        lon, lat, heading = self.position(elapsed_s)
        while self.next_due_s <= elapsed_s + _EPS_S:
            self.next_due_s += self.interval_s
        return {"vehicle_id": self.vehicle_id, "class": self.vclass, "ts": format_ts(now),
                "lat": round(lat, 6), "lon": round(lon, 6),
                "speed_kmh": round(self.speed_kmh * speedup, 1), "heading": heading,
                "accuracy_m": self.accuracy_m, "alarm_flags": 0}


def format_ts(now: datetime) -> str:
    """ISO 8601 in UTC+8: whole seconds, or milliseconds when there is a fraction."""
    spec = "seconds" if now.microsecond == 0 else "milliseconds"
    return now.astimezone(CHINA_TZ).isoformat(timespec=spec)


def make_plate(rng: random.Random, vclass: str, taken: set[str]) -> str:
    """A new Xiamen plate: ``闽D`` + 5 letters/digits, or ``闽D`` + 4 digits + ``警`` for police."""
    while True:
        plate = (f"闽D{rng.randrange(10_000):04d}警" if vclass == "police"
                 else "闽D" + "".join(rng.choices(_PLATE_CHARS, k=5)))
        if plate not in taken:
            taken.add(plate)
            return plate


def build_vehicles(config: FleetConfig) -> list[Vehicle]:
    """The fleet described by ``config``, deterministic for its seed."""
    rng = random.Random(config.seed)
    taken, vehicles, counts = {SCRIPTED_PLATE}, [], dict(config.counts)
    if config.scripted_violation:
        vehicles.append(Vehicle(SCRIPTED_PLATE, "hazmat", SCRIPTED_ONWARD, SCRIPTED_SPEED_KMH,
                                config.intervals_s.get("hazmat", 5.0), lead_in=SCRIPTED_LEAD_IN))
        counts["hazmat"] = max(counts.get("hazmat", 0) - 1, 0)
    for vclass, n in counts.items():
        routes = HAZMAT_ROUTES if vclass == "hazmat" else CITY_ROUTES
        low, high = config.speeds_kmh.get(vclass, (0.0, 0.0))
        interval = config.intervals_s.get(vclass, 0.0)
        for _ in range(n):
            route = rng.choice(routes)
            vehicles.append(Vehicle(
                make_plate(rng, vclass, taken), vclass, route, round(rng.uniform(low, high), 1),
                interval, start_m=rng.uniform(0.0, 2.0 * route.length_m),
                phase_s=round(rng.uniform(0.0, interval), 1), accuracy_m=rng.randint(3, 10)))
    return vehicles


class Fleet:
    """The simulated fleet: ``tick`` produces the fixes due, ``run`` publishes them.

    Parameters
    ----------
    config : FleetConfig
    clock : callable returning an aware datetime
        Read once at construction (simulated time 0) and at every tick.
    publish : callable(topic, payload, qos)
        Where fixes go, e.g. ``MqttPublisher.publish``.
    """

    def __init__(self, config: FleetConfig, clock: Callable[[], datetime],
                 publish: Callable[[str, bytes, int], object]) -> None:
        self.config, self._clock, self._publish = config, clock, publish
        self.vehicles = build_vehicles(config)
        self.start = _aware(clock())
        self._announced = False

    def elapsed_s(self, now: datetime) -> float:
        """Simulated seconds since the fleet started."""
        return (_aware(now) - self.start).total_seconds() * self.config.speedup

    def tick(self, now: datetime) -> list[tuple[str, bytes]]:
        """``(topic, payload)`` of every fix due at ``now``, in fleet order.

        A vehicle reports at most once per tick: reports a late tick missed are skipped.
        """
        elapsed, out = self.elapsed_s(now), []
        for v in (v for v in self.vehicles if v.next_due_s <= elapsed + _EPS_S):
            if v.lead_in is not None and not self._announced:
                self._announced = True
                log.info("scripted: hazmat truck %s heading into Haicang Tunnel", v.vehicle_id)
            fix = v.step(now, elapsed, self.config.speedup)
            payload = json.dumps(fix, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            out.append((f"{self.config.topic_prefix}/{v.vehicle_id}", payload))
        return out

    def next_due_at(self) -> datetime:
        """Clock time of the next report due from any vehicle."""
        due = min((v.next_due_s for v in self.vehicles), default=float("inf"))
        return self.start + timedelta(seconds=min(due, 1e9) / self.config.speedup)

    def run(self, stop_event: threading.Event, duration: float | None = None) -> int:
        """Tick, publish, wait for the next report; return the number of fixes published.

        ``stop_event`` (a ``threading.Event`` or anything with ``is_set`` and
        ``wait``) stops it and its ``wait`` is the only sleep; ``duration``
        stops it after that many clock seconds.
        """
        begin = _aware(self._clock())
        published = 0
        log.info("fleet of %d vehicles running (speedup %g, seed %d)",
                 len(self.vehicles), self.config.speedup, self.config.seed)
        while not stop_event.is_set():
            now = _aware(self._clock())
            if duration is not None and (now - begin).total_seconds() >= duration:
                break
            for topic, payload in self.tick(now):
                self._publish(topic, payload, self.config.qos)
                published += 1
            wait = (self.next_due_at() - _aware(self._clock())).total_seconds()
            if duration is not None:
                wait = min(wait, duration - (now - begin).total_seconds())
            stop_event.wait(min(max(wait, 0.0), _MAX_SLEEP_S))
        log.info("fleet stopped after %d fixes", published)
        return published


def _aware(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"clock must return a timezone-aware datetime, got {dt!r}")
    return dt
