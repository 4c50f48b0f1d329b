"""One typed, frozen settings object, read from ``config.yaml`` with env overrides.

``load_settings()`` is the only place configuration is read; :func:`resolve_config_path`
picks the file (``--config``, ``$CITYWATCH_CONFIG``, ``./config.yaml``, the packaged
defaults in :mod:`engine.defaults`). Every key of ``config.yaml`` maps onto a field
below; ``CITYWATCH_SECTION__KEY`` environment variables override single values (nested
keys joined with ``__``). Unknown keys, wrong types and missing files raise
:class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.core.errors import ConfigError

ENV_PREFIX = "CITYWATCH_"
CONFIG_ENV = "CITYWATCH_CONFIG"  # names the settings file; not a setting itself
DEFAULT_CONFIG = Path(str(importlib.resources.files("engine") / "defaults" / "config.yaml"))  # packaged defaults
# Read from the packaged defaults, these relative paths name the packaged sample zones and grid
# (next to that config.yaml); data folders such as worker.data_dir stay relative to the current folder.
PACKAGED_RELATIVE_PATHS = (("zones", "dir"), ("reports", "grid_dir"))
SECRET_KEYS = frozenset({"password", "secret", "hmac_key", "api_key"})


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


@dataclass(frozen=True)
class MqttAccount:
    """An MQTT login; an empty ``username`` means the default name of the service."""

    username: str = ""
    password: str = field(default="", repr=False)

    def login(self, service: str) -> tuple[str, str]:
        return self.username or f"citywatch-{service}", self.password


def _dev_account(service: str) -> Any:
    return field(default_factory=lambda: MqttAccount(f"citywatch-{service}", f"citywatch-dev-{service}"))


@dataclass(frozen=True)
class MqttServiceAccounts:
    """Internal accounts (engine.brokers.mqtt_access): what each of Citywatch's own clients may do."""

    bridge: MqttAccount = _dev_account("bridge")        # reads <fixes_topic>/#
    worker: MqttAccount = _dev_account("worker")        # writes <alerts_topic>/#
    simulator: MqttAccount = _dev_account("simulator")  # writes <fixes_topic>/# (any vehicle)
    console: MqttAccount = _dev_account("console")      # reads <alerts_topic>/# (``citywatch up``'s alert lines)


@dataclass(frozen=True)
class MqttGateway:
    """A vehicle gateway; its MQTT username is its name in ``mqtt.auth.gateways``."""

    password: str = field(default="", repr=False)
    prefix: str = ""      # topic prefix it may publish under; "" = <fixes_topic>/<name>
    vehicles: str = ""    # comma-separated vehicle-id prefixes it may report ("" = any)

    @property
    def vehicle_prefixes(self) -> tuple[str, ...]:
        return tuple(v.strip() for v in self.vehicles.split(",") if v.strip())


@dataclass(frozen=True)
class MqttTeam:
    """A security team's subscriber: alerts only; its username is its name in ``mqtt.auth.teams``."""

    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class MqttAuthSettings:
    enabled: bool = True
    services: MqttServiceAccounts = field(default_factory=MqttServiceAccounts)
    gateways: dict[str, MqttGateway] = field(default_factory=lambda: {
        "gw_demo": MqttGateway(password="citywatch-dev-gateway")})
    teams: dict[str, MqttTeam] = field(default_factory=lambda: {"ops_centre": MqttTeam("citywatch-dev-team")})


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password: str = field(default="", repr=False)
    keepalive_s: int = 30
    fixes_topic: str = "citywatch/fixes"
    alerts_topic: str = "citywatch/alerts"
    qos: int = 1
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    auth: MqttAuthSettings = field(default_factory=MqttAuthSettings)

    def gateway_prefix(self, name: str) -> str:
        """The topic prefix gateway ``name`` publishes under."""
        return self.auth.gateways[name].prefix.rstrip("/") or f"{self.fixes_topic}/{name}"


@dataclass(frozen=True)
class KafkaTopics:
    fixes: str = "fixes"
    fixes_rejected: str = "fixes.rejected"
    alerts: str = "alerts"
    zones: str = "zones"


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = "127.0.0.1:9092"
    broker: str = "tansu"
    partitions: int = 4
    replication: int = 1            # replicas of each topic citywatch creates (checked against the broker count)
    min_insync_replicas: int = 1    # min.insync.replicas of those topics (acks=all writes need this many)
    topics: KafkaTopics = field(default_factory=KafkaTopics)

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap.split(",") if s.strip()]

    @property
    def first_host_port(self) -> tuple[str, int]:
        host, _, port = self.servers[0].rpartition(":")
        return host, int(port)

    @property
    def table_topic_configs(self) -> dict[str, str]:
        """Topic configs for the changelogs Faust creates for tables (their replication is Faust's
        ``topic_replication_factor``, set from ``replication``)."""
        return {"min.insync.replicas": str(self.min_insync_replicas)}


@dataclass(frozen=True)
class ApiKey:
    """An HTTP API key (engine.web.auth) and the role it carries."""

    api_key: str = field(default="", repr=False)
    role: str = ""        # admin | clerk | records | public | operator | department:<name>


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 6066
    max_body_bytes: int = 1048576
    require_api_keys: bool = True
    api_keys: dict[str, ApiKey] = field(default_factory=lambda: {
        name: ApiKey(f"citywatch-dev-{role}-key", role) for name, role in (
            ("dev_admin", "admin"), ("dev_clerk", "clerk"), ("dev_records", "records"), ("dev_public", "public"),
            ("dev_operator", "operator"))})


@dataclass(frozen=True)
class BridgeSettings:
    client_id: str = "citywatch-bridge"
    metrics_port: int = 6067
    max_payload_bytes: int = 262144
    max_fixes_per_message: int = 1000
    max_in_flight: int = 10000
    batch_max_fixes: int = 500
    batch_linger_ms: float = 20.0
    shared_group: str = ""
    kafka_timeout_s: float = 10.0
    shutdown_timeout_s: float = 10.0
    max_json_depth: int = 8
    max_vehicle_id_chars: int = 64
    max_field_chars: int = 64


@dataclass(frozen=True)
class WorkerSettings:
    app_id: str = "citywatch"
    data_dir: str = "var/worker"
    batch_size: int = 500
    batch_window_s: float = 0.05
    max_speed_kmh: float = 250.0
    future_tolerance_s: float = 300.0
    active_window_s: float = 600.0
    checkpoint_s: float = 60.0
    max_lag_s: float = 30.0  # system.overloaded past this lag (engine.geofence.overload); 0 = off


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
class FilterSettings:
    invalid_fix: bool = True
    max_accuracy_m: float = 50.0
    max_implied_speed_kmh: float = 250.0
    jump_tolerance_m: float = 50.0
    reanchor_fixes: int = 3


@dataclass(frozen=True)
class ZonesSettings:
    dir: str = "zones"
    max_file_bytes: int = 33554432
    max_features: int = 50000
    max_vertices: int = 20000


@dataclass(frozen=True)
class SimulatorSettings:
    vehicles: int = 25
    speedup: float = 1.0
    seed: int = 7
    scripted_violation: bool = True


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

    def __post_init__(self) -> None:
        if not self.licence_classes.strip():
            raise ConfigError("setting vetting.licence_classes: must list at least one licence class")
        if not self.city_names.strip():
            raise ConfigError("setting vetting.city_names: must name the city")
        if self.points_cycles < 1 or self.points_limit < 1:
            raise ConfigError("setting vetting.points_cycles/points_limit: must be at least 1")


@dataclass(frozen=True)
class OneMapSettings:
    """The live operations page (engine.onemap): ``/`` on every worker's web server."""

    enabled: bool = True
    tasks_topic: str = ""  # empty: the tasks service's own topic (tasks.topics.tasks)
    push_interval_ms: float = 500.0
    track_fixes: int = 20
    alerts_kept: int = 200
    stale_s: float = 600.0
    fixes_history_s: float = 600.0
    alerts_history_s: float = 86400.0
    client_queue: int = 16
    max_clients: int = 50
    tile_url: str = ""
    tile_attribution: str = ""
    tile_max_zoom: int = 18

    def __post_init__(self) -> None:
        if self.push_interval_ms < 50:
            raise ConfigError("setting onemap.push_interval_ms: must be at least 50 (it bounds the push rate)")
        if self.track_fixes < 1 or self.alerts_kept < 1 or self.client_queue < 1 or self.max_clients < 1:
            raise ConfigError("setting onemap.track_fixes/alerts_kept/client_queue/max_clients: must be at least 1")
        if self.tile_url and not (self.tile_url.startswith(("http://", "https://", "/"))
                                  and all(k in self.tile_url for k in ("{z}", "{x}", "{y}"))):
            raise ConfigError("setting onemap.tile_url: expected an http(s) or /path URL template with {z}, {x} "
                              f"and {{y}}, got {self.tile_url!r}")


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


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"


@dataclass(frozen=True)
class UpSettings:
    data_dir: str = "var"
    kafka: str = "tansu"            # the broker `citywatch up` starts where none listens: tansu | apache


@dataclass(frozen=True)
class Settings:
    city: CitySettings = field(default_factory=CitySettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    web: WebSettings = field(default_factory=WebSettings)
    bridge: BridgeSettings = field(default_factory=BridgeSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    zones: ZonesSettings = field(default_factory=ZonesSettings)
    geofence: GeofenceSettings = field(default_factory=GeofenceSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    up: UpSettings = field(default_factory=UpSettings)
    log: LogSettings = field(default_factory=LogSettings)
    vetting: VettingSettings = field(default_factory=VettingSettings)
    onemap: OneMapSettings = field(default_factory=OneMapSettings)
    reports: ReportsSettings = field(default_factory=ReportsSettings)
    tasks: TasksSettings = field(default_factory=TasksSettings)

    def replace(self, **changes: Mapping[str, Any]) -> Settings:
        """Return a copy with ``section={key: value}`` changes applied (validated)."""
        raw = to_dict(self)
        for section, values in changes.items():
            raw.setdefault(section, {}).update(values)
        return _build(Settings, raw, "")

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secrets replaced by ``***``."""
        return _redact(to_dict(self))


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def _redact(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = _redact(v)
        else:
            out[k] = "***" if k in SECRET_KEYS and v else v
    return out


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Check or convert ``value`` to ``typ``; env strings are converted."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"setting {key}: expected true/false, got {value!r}")
    if typ in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"setting {key}: expected a number, got {value!r}")
        if isinstance(value, (int, float)) and (typ is float or isinstance(value, int)):
            if not math.isfinite(value):
                raise ConfigError(f"setting {key}: expected a finite number, got {value!r}")
            return typ(value)
        if isinstance(value, str):
            try:
                number = typ(value.strip())
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
        raise ConfigError(f"setting {key}: expected {'an integer' if typ is int else 'a number'}, got {value!r}")
    if typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"setting {key}: expected a string, got {value!r}")
    raise ConfigError(f"setting {key}: unsupported type {typ!r}")  # pragma: no cover - programming error


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"setting {prefix or '(root)'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(raw) - names)
    if unknown:
        raise ConfigError(f"unknown setting {prefix}{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs: dict[str, Any] = {}
    for name in names:
        if name not in raw:
            continue
        typ = hints[name]
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, raw[name], key + ".")
        elif typing.get_origin(typ) is dict:
            kwargs[name] = _build_named(typing.get_args(typ)[1], raw[name], key)
        else:
            kwargs[name] = _coerce(raw[name], typ, key)
    obj = cls(**kwargs)
    _check(obj, prefix)
    return obj


_NAME = re.compile(r"[a-z0-9]+(?:[_-][a-z0-9]+)*")


def _build_named(cls: type, raw: Any, key: str) -> dict[str, Any]:
    """A ``name -> settings`` mapping (e.g. ``mqtt.auth.gateways``); names are lower case (env keys are)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"setting {key}: expected a mapping of name -> settings, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or len(name) > 64 or not _NAME.fullmatch(name):
            raise ConfigError(f"setting {key}: name {str(name)[:64]!r} must be 1-64 lower-case letters or digits "
                              "joined by single '_' or '-'")
        out[name] = _build(cls, value, f"{key}.{name}.")
    return out


def _check(obj: Any, prefix: str) -> None:
    """Range checks that types alone cannot express."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if (f.name == "port" or f.name.endswith("_port")) and not (0 < v < 65536):
            raise ConfigError(f"setting {key}: port must be 1-65535, got {v}")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and f.name != "port" and v < 0:
            raise ConfigError(f"setting {key}: must not be negative, got {v}")
    if isinstance(obj, KafkaSettings):
        if obj.broker not in ("tansu", "kafka"):
            raise ConfigError(f"setting {prefix}broker: expected 'tansu' or 'kafka', got {obj.broker!r}")
        if not obj.servers or any(":" not in s or not s.rpartition(":")[2].isdigit() for s in obj.servers):
            raise ConfigError(f"setting {prefix}bootstrap: expected host:port[,host:port], got {obj.bootstrap!r}")
        if obj.partitions < 1:
            raise ConfigError(f"setting {prefix}partitions: must be at least 1")
        _check_replication(obj, prefix)
    if isinstance(obj, UpSettings) and obj.kafka not in ("tansu", "apache"):
        raise ConfigError(f"setting {prefix}kafka: expected 'tansu' or 'apache', got {obj.kafka!r}")
    if isinstance(obj, WorkerSettings) and (obj.checkpoint_s <= 0 or obj.batch_size < 1):
        raise ConfigError(f"setting {prefix}checkpoint_s/batch_size: must be above 0")
    if isinstance(obj, LogSettings) and obj.level.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise ConfigError(f"setting {prefix}level: expected debug, info, warning, error or critical, got {obj.level!r}")
    if isinstance(obj, MqttSettings) and obj.qos not in (0, 1, 2):
        raise ConfigError(f"setting {prefix}qos: expected 0, 1 or 2, got {obj.qos}")
    if isinstance(obj, MqttSettings):
        _check_mqtt_access(obj, prefix)
    if isinstance(obj, WebSettings):
        _check_api_keys(obj, prefix)
    limits = {BridgeSettings: ("max_payload_bytes", "max_fixes_per_message", "max_json_depth", "max_vehicle_id_chars",
                               "max_field_chars"),
              ZonesSettings: ("max_file_bytes", "max_features", "max_vertices"), WebSettings: ("max_body_bytes",),
              VettingSettings: ("max_json_depth",)}.get(type(obj), ())
    for name in limits:
        if getattr(obj, name) < 1:
            raise ConfigError(f"setting {prefix}{name}: a size limit must be at least 1, got {getattr(obj, name)}")


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        if not all(path):
            raise ConfigError(f"environment variable {name}: empty key part")
        node = raw
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name}: {'.'.join(path[:depth + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return raw


def resolve_config_path(cli_path: str | os.PathLike[str] | None, env: Mapping[str, str],
                        cwd: str | os.PathLike[str]) -> tuple[Path, str]:
    """The settings file to read and why: ``--config``, else ``$CITYWATCH_CONFIG``, else ``./config.yaml``,
    else the packaged defaults. A file named by ``--config`` or the variable must exist (:class:`ConfigError`)."""
    cwd = Path(cwd)
    if cli_path is not None:
        return _named_config(cwd, cli_path, "--config"), "--config"
    if env.get(CONFIG_ENV):
        return _named_config(cwd, env[CONFIG_ENV], f"environment variable {CONFIG_ENV}"), CONFIG_ENV
    if (cwd / "config.yaml").is_file():
        return cwd / "config.yaml", "config.yaml in the current folder"
    if not DEFAULT_CONFIG.is_file():
        raise ConfigError(f"no settings file: no --config, {CONFIG_ENV} or ./config.yaml, and the packaged "
                          f"defaults {DEFAULT_CONFIG} are missing (reinstall citywatch)")
    return DEFAULT_CONFIG, "packaged defaults"


def _named_config(cwd: Path, value: str | os.PathLike[str], source: str) -> Path:
    cfg = cwd / value  # an absolute path stays as it is
    if not cfg.is_file():
        raise ConfigError(f"config file {value} ({source}) {'is not a file' if cfg.exists() else 'does not exist'}")
    return cfg


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``path`` (default: :func:`resolve_config_path` without ``--config``) and ``env``.

    A missing ``path`` given explicitly is an error. Read from the packaged defaults, the
    relative :data:`PACKAGED_RELATIVE_PATHS` name the packaged zones and grid.
    """
    env = os.environ if env is None else env
    cfg = Path(path) if path is not None else resolve_config_path(None, env, Path.cwd())[0]
    if not cfg.is_file():
        raise ConfigError(f"config file {cfg} does not exist")
    try:
        loaded = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {cfg}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {cfg}: not valid YAML: nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {cfg}: not UTF-8: {exc}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"config file {cfg}: top level must be a mapping")
    raw: dict[str, Any] = loaded or {}
    if cfg.absolute() == DEFAULT_CONFIG.absolute():
        _anchor_packaged_paths(raw)
    raw = _apply_env(raw, {k: v for k, v in env.items() if k != CONFIG_ENV})
    return _build(Settings, raw, "")


def _anchor_packaged_paths(raw: dict[str, Any]) -> None:
    """Make the packaged config's relative zone and grid paths point next to it (before env overrides)."""
    for section, key in PACKAGED_RELATIVE_PATHS:
        values = raw.get(section)
        if isinstance(values, dict) and isinstance(values.get(key), str) and values[key] \
                and not Path(values[key]).is_absolute():
            values[key] = str(DEFAULT_CONFIG.parent / values[key])


def _check_replication(k: KafkaSettings, prefix: str) -> None:
    if k.replication < 1:
        raise ConfigError(f"setting {prefix}replication: must be at least 1, got {k.replication}")
    if not 1 <= k.min_insync_replicas <= k.replication:
        raise ConfigError(f"setting {prefix}min_insync_replicas: must be 1 to {prefix}replication "
                          f"({k.replication}), got {k.min_insync_replicas}")


def _check_mqtt_access(m: MqttSettings, prefix: str) -> None:
    """TLS files come in pairs; with ``auth.enabled`` every account has a password; prefixes are real topics."""
    if bool(m.tls_cert_file) != bool(m.tls_key_file):
        raise ConfigError(f"setting {prefix}tls_cert_file/tls_key_file: set both (the broker's TLS certificate and key) "
                          "or neither")
    accounts = [(f"services.{n}", getattr(m.auth.services, n)) for n in ("bridge", "worker", "simulator", "console")]
    accounts += [(f"gateways.{n}", g) for n, g in m.auth.gateways.items()]
    accounts += [(f"teams.{n}", t) for n, t in m.auth.teams.items()]
    if m.auth.enabled:
        for name, account in accounts:
            if not account.password:
                raise ConfigError(f"setting {prefix}auth.{name}.password: required while {prefix}auth.enabled is true")
    for name in m.auth.gateways:
        topic = m.gateway_prefix(name)
        if any(c in topic for c in "+#\x00") or not topic.startswith(m.fixes_topic.rstrip("/") + "/") \
                or "//" in topic:
            raise ConfigError(f"setting {prefix}auth.gateways.{name}.prefix: expected a topic under "
                              f"{m.fixes_topic}/ without wildcards, got {topic!r}")


def _check_api_keys(w: WebSettings, prefix: str) -> None:
    seen: dict[str, str] = {}
    for name, k in w.api_keys.items():
        role, _, dept = k.role.partition(":")
        if role not in ("admin", "clerk", "records", "public", "operator", "department") \
                or (role == "department") != bool(dept):
            raise ConfigError(f"setting {prefix}api_keys.{name}.role: expected admin, clerk, records, public, "
                              f"operator or department:<name>, got {k.role!r}")
        if len(k.api_key) < 16:
            raise ConfigError(f"setting {prefix}api_keys.{name}.api_key: must be at least 16 characters")
        if k.api_key in seen:
            raise ConfigError(f"setting {prefix}api_keys.{name}.api_key: the same key as {seen[k.api_key]}")
        seen[k.api_key] = name
