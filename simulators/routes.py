"""Xiamen waypoint routes and positions along them.

Every coordinate is WGS-84 ``(lon, lat)``: landmarks at their approximate known
positions, other points placed by eye between them (to +-0.5 km: good enough
for a simulator, not for a map). Distances use a local equirectangular
approximation, which is within 0.1 % of geodesic over the few kilometres of
one segment.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

EARTH_RADIUS_M = 6_371_008.8
M_PER_DEG_LAT = math.pi * EARTH_RADIUS_M / 180.0

#: City bounds (as ``city.bounds`` in config.yaml): (min_lon, min_lat, max_lon, max_lat).
XIAMEN_BOUNDS = (117.88, 24.38, 118.43, 24.90)

#: Named places, ``(lon, lat)``.
PLACES: dict[str, tuple[float, float]] = {
    "gaoqi_airport": (118.1278, 24.5442),
    "railway_station": (118.1113, 24.4705),
    "north_station": (118.0690, 24.6388),
    "haicang_bridge_mid": (118.0685, 24.4971),
    "xiamen_bridge_mid": (118.0963, 24.5605),
    "jimei_bridge_plaza": (118.1085, 24.5854),
    "xiangan_tunnel_plaza": (118.2229, 24.5665),
    "exhibition_centre": (118.1850, 24.4780),
    "tongan_seat": (118.1525, 24.7892),
    "jimei_seat": (118.0975, 24.6419),
    # On the island (inside the coarse outline of zone ``xiamen-island``, zones/xiamen.geojson).
    "zhongshan_road": (118.0840, 24.4580),
    "xiamen_university": (118.1000, 24.4430),
    "lianqian": (118.1350, 24.4900),
    "huli": (118.1460, 24.5120),
    "wutong": (118.1880, 24.5180),
    "island_west_haicang_bridge": (118.0850, 24.5030),
    "island_west_tunnel_exit": (118.0950, 24.4815),
    # Mainland.
    "haicang_port": (117.9900, 24.4550),
    "haicang_seat": (118.0250, 24.4900),
    "haicang_bridge_west": (118.0350, 24.5050),
    "xinyang": (118.0400, 24.5600),
    "xiangan_seat": (118.2475, 24.6187),
}


def _p(*names: str) -> tuple[tuple[float, float], ...]:
    return tuple(PLACES[n] for n in names)


@dataclass(frozen=True)
class Route:
    """A polyline of ``(lon, lat)`` waypoints that can be walked by distance.

    Parameters
    ----------
    name : str
        Short label, used in logs.
    waypoints : tuple of (float, float)
        At least two distinct ``(lon, lat)`` points; repeated points are dropped.

    Examples
    --------
    >>> r = Route("east", ((118.0, 24.5), (118.01, 24.5)))
    >>> lon, lat, heading = r.at(r.length_m / 2)
    >>> round(lon, 4), heading
    (118.005, 90)
    """

    name: str
    waypoints: tuple[tuple[float, float], ...]
    _cum: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _headings: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pts: list[tuple[float, float]] = []
        for lon, lat in self.waypoints:
            if not pts or pts[-1] != (float(lon), float(lat)):
                pts.append((float(lon), float(lat)))
        if len(pts) < 2:
            raise ValueError(f"route {self.name!r} needs at least two distinct waypoints")
        cum, headings = [0.0], []
        for (lon0, lat0), (lon1, lat1) in zip(pts, pts[1:]):
            dx, dy = _offset_m(lon0, lat0, lon1, lat1)
            cum.append(cum[-1] + math.hypot(dx, dy))
            headings.append(round(math.degrees(math.atan2(dx, dy))) % 360)
        object.__setattr__(self, "waypoints", tuple(pts))
        object.__setattr__(self, "_cum", tuple(cum))
        object.__setattr__(self, "_headings", tuple(headings))

    @property
    def length_m(self) -> float:
        """Total length in metres."""
        return self._cum[-1]

    def at(self, distance_m: float) -> tuple[float, float, int]:
        """Position and heading at ``distance_m`` from the first waypoint.

        Distances outside ``[0, length_m]`` are clamped to the ends.

        Returns
        -------
        tuple of (float, float, int)
            ``(lon, lat, heading)``, heading in degrees 0-359, north = 0, clockwise.
        """
        d = min(max(distance_m, 0.0), self.length_m)
        i = min(bisect.bisect_right(self._cum, d) - 1, len(self._headings) - 1)
        seg = self._cum[i + 1] - self._cum[i]
        f = (d - self._cum[i]) / seg
        (lon0, lat0), (lon1, lat1) = self.waypoints[i], self.waypoints[i + 1]
        return lon0 + f * (lon1 - lon0), lat0 + f * (lat1 - lat0), self._headings[i]

    def bounce(self, distance_m: float) -> tuple[float, float, int]:
        """Position and heading after ``distance_m`` driving back and forth.

        The vehicle drives to the last waypoint, turns round, drives back to the
        first, and so on; heading points the way it is going.
        """
        lap = distance_m % (2.0 * self.length_m)
        if lap <= self.length_m:
            return self.at(lap)
        lon, lat, heading = self.at(2.0 * self.length_m - lap)
        return lon, lat, (heading + 180) % 360


def _offset_m(lon0: float, lat0: float, lon1: float, lat1: float) -> tuple[float, float]:
    """East and north offset in metres from point 0 to point 1 (equirectangular)."""
    coslat = math.cos(math.radians((lat0 + lat1) / 2.0))
    return (lon1 - lon0) * M_PER_DEG_LAT * coslat, (lat1 - lat0) * M_PER_DEG_LAT


#: Routes on the island or across its bridges: police, fire, ambulance, taxi, bus.
CITY_ROUTES: tuple[Route, ...] = (
    Route("airport-station", _p("gaoqi_airport", "huli", "lianqian", "railway_station")),
    Route("station-exhibition", _p("railway_station", "lianqian", "exhibition_centre")),
    Route("oldtown-airport", _p("zhongshan_road", "railway_station", "huli", "gaoqi_airport")),
    Route("university-wutong", _p("xiamen_university", "railway_station", "lianqian", "wutong")),
    Route("haicang-bridge", _p("haicang_seat", "haicang_bridge_west", "haicang_bridge_mid",
                               "island_west_haicang_bridge", "railway_station")),
    Route("xiamen-bridge-north", _p("gaoqi_airport", "xiamen_bridge_mid", "jimei_seat",
                                    "north_station")),
    Route("jimei-bridge", _p("railway_station", "huli", "jimei_bridge_plaza", "jimei_seat")),
    Route("xiangan", _p("exhibition_centre", "wutong", "xiangan_tunnel_plaza", "xiangan_seat")),
)

#: Mainland freight routes for hazmat trucks: they keep off the island and
#: out of the Haicang Tunnel (only the scripted truck goes there).
HAZMAT_ROUTES: tuple[Route, ...] = (
    Route("haicang-port-north", _p("haicang_port", "haicang_seat", "haicang_bridge_west",
                                   "xinyang", "north_station")),
    Route("jimei-tongan", _p("north_station", "jimei_seat", "tongan_seat")),
    Route("tongan-xiangan", (PLACES["tongan_seat"], (118.2000, 24.7000),
                             PLACES["xiangan_seat"], PLACES["xiangan_tunnel_plaza"])),
)

#: The scripted violation: due east along lat 24.4815 from 500 m west of the
#: Haicang Tunnel's west portal, through the tunnel, onto the island ...
SCRIPTED_LEAD_IN = Route("haicang-tunnel-east", ((118.0350, 24.4815), PLACES["island_west_tunnel_exit"]))
#: ... then back and forth on the island, never back through the tunnel.
SCRIPTED_ONWARD = Route("tunnel-exit-airport", _p("island_west_tunnel_exit", "railway_station",
                                                  "lianqian", "huli", "gaoqi_airport"))

ALL_ROUTES: tuple[Route, ...] = CITY_ROUTES + HAZMAT_ROUTES + (SCRIPTED_LEAD_IN, SCRIPTED_ONWARD)
