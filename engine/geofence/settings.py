"""The geofence settings sections: ``geofence`` (entry/exit, overspeed, offline, late fixes) and ``zones``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from engine.core.city import CitySettings
from engine.kafka.settings import KafkaSettings, WorkerSettings
from engine.telemetry.settings import FilterSettings
from engine.web.settings import WebSettings


@dataclass(frozen=True)
class ReportIntervals:
    """Report interval of a moving vehicle's terminal, seconds, per class (engine.telemetry.models.CLASSES).

    0 disables offline detection for that class.
    """

    hazmat: float = 30.0
    police: float = 30.0
    fire: float = 30.0
    ambulance: float = 30.0
    taxi: float = 30.0
    bus: float = 30.0
    ride_hailing: float = 30.0
    other: float = 30.0


@dataclass(frozen=True)
class GeofenceSettings:
    exit_margin_m: float = 15.0
    exit_fixes: int = 3
    moving_kmh: float = 5.0
    overspeed_min_s: float = 5.0
    offline_factor: float = 3.0
    offline_scan_s: float = 10.0
    late_group_s: float = 600.0
    report_interval_s: ReportIntervals = field(default_factory=ReportIntervals)


@dataclass(frozen=True)
class ZonesSettings:
    dir: str = "zones"
    max_file_bytes: int = 33554432
    max_features: int = 50000
    max_vertices: int = 20000

    SIZE_LIMITS: ClassVar[tuple[str, ...]] = ("max_file_bytes", "max_features", "max_vertices")


class GeofenceConfig(Protocol):
    """The sections the zone checks reads: the whole settings object (:class:`engine.settings.Settings`) fits, and so
    does anything else that has them; this domain never imports the composed settings."""

    @property
    def city(self) -> CitySettings: ...

    @property
    def filters(self) -> FilterSettings: ...

    @property
    def geofence(self) -> GeofenceSettings: ...

    @property
    def kafka(self) -> KafkaSettings: ...

    @property
    def web(self) -> WebSettings: ...

    @property
    def worker(self) -> WorkerSettings: ...

    @property
    def zones(self) -> ZonesSettings: ...
