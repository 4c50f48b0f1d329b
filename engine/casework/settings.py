"""The casework settings sections: ``reports`` (citizen intake, duplicates) and ``tasks`` (routing, SLAs, escalation).

The task-routing checks live here: every department names known services and real grid codes, and each
service has exactly one city-wide department and no two departments for one area.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from engine.core.city import CitySettings
from engine.core.errors import ConfigError
from engine.kafka.settings import KafkaSettings, WorkerSettings
from engine.mqtt.settings import MqttSettings
from engine.web.settings import WebSettings


@dataclass(frozen=True)
class ReportsTopics:
    reports: str = "reports"
    rejected: str = "reports.rejected"


@dataclass(frozen=True)
class ReportsSimulatorSettings:
    """The citizen-report generator and department responders (simulators/reports.py)."""

    reports_per_min: float = 12.0
    mqtt_share: float = 0.3
    duplicate_share: float = 0.2
    late_share: float = 0.3
    return_share: float = 0.05
    sla_scale: float = 0.002
    seed: int = 11


@dataclass(frozen=True)
class ReportsSettings:
    """Citizen hazard reports (engine.casework): Open311 intake over HTTP and MQTT, duplicate merging."""

    grid_dir: str = "zones/grid"
    jurisdiction_id: str = "xiamen"
    mqtt_topic: str = "citywatch/reports"
    mqtt_shared_group: str = ""
    answer_timeout_s: float = 5.0
    max_description: int = 4000
    dedup_radius_m: float = 50.0
    dedup_window_s: float = 86400.0
    dedup_cell_m: float = 1000.0
    list_days: float = 90.0
    list_limit: int = 1000
    raw_retention_days: float = 30.0
    topics: ReportsTopics = field(default_factory=ReportsTopics)
    simulator: ReportsSimulatorSettings = field(default_factory=ReportsSimulatorSettings)

    def __post_init__(self) -> None:
        if self.dedup_cell_m < 2 * self.dedup_radius_m or self.dedup_cell_m <= 0:
            raise ConfigError("setting reports.dedup_cell_m: must be positive and at least 2 x dedup_radius_m")
        if not 0 < self.max_description <= 100000 or self.list_limit < 1 or self.answer_timeout_s <= 0:
            raise ConfigError("setting reports.max_description/list_limit/answer_timeout_s: must be above 0")


@dataclass(frozen=True)
class ServiceSettings:
    """One Open311 service (a hazard category citizens can report) with its SLAs, in seconds per level."""

    name: str = ""
    description: str = ""
    group: str = ""
    keywords: str = ""
    accept_s: float = 3600.0
    resolve_s: float = 86400.0

    def __post_init__(self) -> None:
        if self.accept_s <= 0 or self.resolve_s <= 0:
            raise ConfigError(f"setting tasks.services ({self.name or 'unnamed'}): accept_s and resolve_s must be "
                              "above 0")


@dataclass(frozen=True)
class DepartmentSettings:
    """A department tasks are routed to: the services it handles, in the grid areas it covers ("" = city-wide)."""

    name: str = ""
    services: str = ""
    areas: str = ""

    @property
    def service_codes(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.services.split(",") if s.strip())

    @property
    def area_codes(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.areas.split(",") if a.strip())


@dataclass(frozen=True)
class TasksTopics:
    tasks: str = "tasks"
    commands: str = "tasks.commands"
    events: str = "tasks.events"
    dispatch: str = "tasks.dispatch"
    outcomes: str = "tasks.outcomes"
    rejected: str = "tasks.rejected"


@dataclass(frozen=True)
class TasksSettings:
    """Tasks made from reports (engine.casework): routing, SLAs, warnings and escalation through the grid levels."""

    sla_scale: float = 1.0
    warn_fractions: str = "0.5,0.8"
    scan_s: float = 1.0
    answer_timeout_s: float = 5.0
    history_kept: int = 50
    services: dict[str, ServiceSettings] = field(default_factory=dict)
    departments: dict[str, DepartmentSettings] = field(default_factory=dict)
    topics: TasksTopics = field(default_factory=TasksTopics)

    @property
    def fractions(self) -> tuple[float, ...]:
        return tuple(sorted(float(f) for f in self.warn_fractions.split(",") if f.strip()))

    def __post_init__(self) -> None:
        try:
            fractions = self.fractions
        except ValueError:
            raise ConfigError(f"setting tasks.warn_fractions: expected comma-separated numbers, got "
                              f"{self.warn_fractions!r}") from None
        if any(not 0 < f < 1 for f in fractions):
            raise ConfigError(f"setting tasks.warn_fractions: each must be between 0 and 1, got {self.warn_fractions!r}")
        if self.sla_scale <= 0 or self.scan_s <= 0 or self.answer_timeout_s <= 0:
            raise ConfigError("setting tasks.sla_scale/scan_s/answer_timeout_s: must be above 0")
        for dept_id, dept in self.departments.items():
            for code in dept.service_codes:
                if code not in self.services:
                    raise ConfigError(f"setting tasks.departments.{dept_id}.services: {code!r} is not in tasks.services")
            for area in dept.area_codes:
                if not (area.isdigit() and len(area) in (4, 6, 9, 12)):
                    raise ConfigError(f"setting tasks.departments.{dept_id}.areas: {area!r} is not a grid code "
                                      "(4, 6, 9 or 12 digits)")
        for code in self.services:
            areas = [a for dept in self.departments.values() if code in dept.service_codes for a in dept.area_codes]
            if len(areas) != len(set(areas)):
                raise ConfigError(f"setting tasks.departments: two departments handle service {code!r} in the same area")
            city_wide = [d for d, dept in self.departments.items() if code in dept.service_codes and not dept.areas]
            if len(city_wide) != 1:
                raise ConfigError(f"setting tasks.departments: service {code!r} needs exactly one city-wide department "
                                  f"(areas \"\"), found {len(city_wide)}")


class CaseworkConfig(Protocol):
    """The sections reports and tasks reads: the whole settings object (:class:`engine.settings.Settings`) fits, and so
    does anything else that has them; this domain never imports the composed settings."""

    @property
    def city(self) -> CitySettings: ...

    @property
    def kafka(self) -> KafkaSettings: ...

    @property
    def mqtt(self) -> MqttSettings: ...

    @property
    def reports(self) -> ReportsSettings: ...

    @property
    def tasks(self) -> TasksSettings: ...

    @property
    def web(self) -> WebSettings: ...

    @property
    def worker(self) -> WorkerSettings: ...
