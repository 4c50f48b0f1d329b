"""The ``city`` settings section: name, time zone, projected CRS and the bounds of plausible fixes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bounds:
    lat_min: float = 24.38
    lat_max: float = 24.90
    lon_min: float = 117.88
    lon_max: float = 118.43


@dataclass(frozen=True)
class CitySettings:
    name: str = "Xiamen"
    tz: str = "Asia/Shanghai"
    crs: str = "EPSG:4548"
    bounds: Bounds = field(default_factory=Bounds)
