"""One typed, frozen settings object, read from ``config.yaml`` with env overrides.

``load_settings()`` is the only place configuration is read. Every key of
``config.yaml`` maps onto a field below; ``CITYWATCH_SECTION__KEY`` environment
variables override single values (nested keys joined with ``__``). Unknown keys,
wrong types and missing files raise :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError

ENV_PREFIX = "CITYWATCH_"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"
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
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password: str = ""
    keepalive_s: int = 30
    fixes_topic: str = "citywatch/fixes"
    alerts_topic: str = "citywatch/alerts"
    qos: int = 1


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
    topics: KafkaTopics = field(default_factory=KafkaTopics)

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap.split(",") if s.strip()]

    @property
    def first_host_port(self) -> tuple[str, int]:
        host, _, port = self.servers[0].rpartition(":")
        return host, int(port)


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 6066


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

    hmac_key: str = ""
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
class LogSettings:
    level: str = "info"


@dataclass(frozen=True)
class UpSettings:
    data_dir: str = "var"


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
            return typ(value)
        if isinstance(value, str):
            try:
                return typ(value.strip())
            except ValueError:
                pass
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
    unknown = sorted(set(raw) - names)
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
        else:
            kwargs[name] = _coerce(raw[name], typ, key)
    obj = cls(**kwargs)
    _check(obj, prefix)
    return obj


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
    if isinstance(obj, WorkerSettings) and (obj.checkpoint_s <= 0 or obj.batch_size < 1):
        raise ConfigError(f"setting {prefix}checkpoint_s/batch_size: must be above 0")
    if isinstance(obj, LogSettings) and obj.level.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise ConfigError(f"setting {prefix}level: expected debug, info, warning, error or critical, got {obj.level!r}")
    if isinstance(obj, MqttSettings) and obj.qos not in (0, 1, 2):
        raise ConfigError(f"setting {prefix}qos: expected 0, 1 or 2, got {obj.qos}")


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


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``path`` (default: the repository's ``config.yaml``) and ``env``.

    A missing ``path`` given explicitly is an error; with no path and no default
    file, built-in defaults are used.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    cfg = Path(path) if path is not None else DEFAULT_CONFIG
    if path is not None and not cfg.is_file():
        raise ConfigError(f"config file {cfg} does not exist")
    if cfg.is_file():
        try:
            loaded = yaml.safe_load(cfg.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {cfg}: not valid YAML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {cfg}: not UTF-8: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {cfg}: top level must be a mapping")
        raw = loaded or {}
    raw = _apply_env(raw, env)
    return _build(Settings, raw, "")

