"""The ``vetting`` settings section: the rules' thresholds and switches, the pseudonym key, the topics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from engine.core.city import CitySettings
from engine.core.errors import ConfigError
from engine.kafka.settings import KafkaSettings
from engine.web.settings import WebSettings


@dataclass(frozen=True)
class VettingTopics:
    applications: str = "vetting.applications"
    requests: str = "vetting.requests"
    decisions: str = "vetting.decisions"
    records_in: str = "vetting.records.in"
    records: str = "vetting.records"
    rejected: str = "vetting.rejected"


@dataclass(frozen=True)
class VettingRules:
    """City rules beyond Article 14 (always on): each switched on or off here."""

    residence: bool = True
    vehicle: bool = True
    retirement_age: bool = False
    taxi_certificate: bool = False
    violations: bool = False


@dataclass(frozen=True)
class VettingSettings:
    """Ride-hailing driver vetting (engine.vetting); lists are comma-separated strings."""

    hmac_key: str = field(default="", repr=False)
    decision_timeout_s: float = 5.0
    licence_classes: str = "A1,A2,A3,B1,B2,C1,C2"
    min_driving_years: int = 3
    points_limit: int = 12
    points_cycles: int = 3
    points_count_current_cycle: bool = True
    violent_offences: str = ("intentional_homicide,intentional_injury,rape,robbery,kidnapping,arson,explosion,"
                             "poisoning")
    city_names: str = "Xiamen,厦门,厦门市"
    residence_permit_min_months: int = 0
    temporary_permit_min_months: int = 6
    plate_prefix: str = "闽D"
    vehicle_max_age_years: int = 3
    retirement_age_male: int = 60
    retirement_age_female: int = 55
    taxi_revocation_years: int = 3
    max_violations: int = 5
    violations_window_months: int = 12
    max_json_depth: int = 8
    rules: VettingRules = field(default_factory=VettingRules)
    topics: VettingTopics = field(default_factory=VettingTopics)

    SIZE_LIMITS: ClassVar[tuple[str, ...]] = ("max_json_depth",)

    def __post_init__(self) -> None:
        if not self.licence_classes.strip():
            raise ConfigError("setting vetting.licence_classes: must list at least one licence class")
        if not self.city_names.strip():
            raise ConfigError("setting vetting.city_names: must name the city")
        if self.points_cycles < 1 or self.points_limit < 1:
            raise ConfigError("setting vetting.points_cycles/points_limit: must be at least 1")


class VettingConfig(Protocol):
    """The sections vetting reads: the whole settings object (:class:`engine.settings.Settings`) fits, and so
    does anything else that has them; this domain never imports the composed settings."""

    @property
    def city(self) -> CitySettings: ...

    @property
    def kafka(self) -> KafkaSettings: ...

    @property
    def vetting(self) -> VettingSettings: ...

    @property
    def web(self) -> WebSettings: ...
