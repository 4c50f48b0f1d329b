"""The whole settings object: every section, composed, read from ``config.yaml`` with env overrides.

Each section is a small typed module next to the code it configures (``engine.kafka.settings``,
``engine.geofence.settings``, ...); this module only puts them together and reads the file.
``load_settings()`` is the only place configuration is read; :func:`resolve_config_path`
picks the file (``--config``, ``$CITYWATCH_CONFIG``, ``./config.yaml``, the packaged
defaults in :mod:`engine.defaults`). Every key of ``config.yaml`` maps onto a field of a
section; ``CITYWATCH_SECTION__KEY`` environment variables override single values (nested
keys joined with ``__``). Unknown keys, wrong types and missing files raise
:class:`ConfigError` naming the key (:mod:`engine.core.config`).
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.casework.settings import ReportsSettings, TasksSettings
from engine.core.city import CitySettings
from engine.core.config import apply_env, build, redact, to_dict
from engine.core.errors import ConfigError
from engine.geofence.settings import GeofenceSettings, ZonesSettings
from engine.jt808.settings import Jt808Settings
from engine.kafka.settings import KafkaSettings, WorkerSettings
from engine.mqtt.settings import MqttSettings
from engine.onemap.settings import OneMapSettings
from engine.telemetry.settings import BridgeSettings, FilterSettings, SimulatorSettings
from engine.vetting.settings import VettingSettings
from engine.web.settings import WebSettings

ENV_PREFIX = "CITYWATCH_"
CONFIG_ENV = "CITYWATCH_CONFIG"  # names the settings file; not a setting itself
DEFAULT_CONFIG = Path(str(importlib.resources.files("engine") / "defaults" / "config.yaml"))  # packaged defaults
# Read from the packaged defaults, these relative paths name the packaged sample zones and grid
# (next to that config.yaml); data folders such as worker.data_dir stay relative to the current folder.
PACKAGED_RELATIVE_PATHS = (("zones", "dir"), ("reports", "grid_dir"))


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML itself keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"

    def check(self, prefix: str) -> None:
        if self.level.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise ConfigError(f"setting {prefix}level: expected debug, info, warning, error or critical, "
                              f"got {self.level!r}")


@dataclass(frozen=True)
class UpSettings:
    data_dir: str = "var"
    kafka: str = "tansu"            # the broker `citywatch up` starts where none listens: tansu | apache

    def check(self, prefix: str) -> None:
        if self.kafka not in ("tansu", "apache"):
            raise ConfigError(f"setting {prefix}kafka: expected 'tansu' or 'apache', got {self.kafka!r}")


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
    jt808: Jt808Settings = field(default_factory=Jt808Settings)

    def replace(self, **changes: Mapping[str, Any]) -> Settings:
        """Return a copy with ``section={key: value}`` changes applied (validated)."""
        raw = to_dict(self)
        for section, values in changes.items():
            raw.setdefault(section, {}).update(values)
        settings: Settings = build(Settings, raw)
        return settings

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secrets replaced by ``***``."""
        return redact(to_dict(self))


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
        loaded = yaml.load(cfg.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
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
    raw = apply_env(raw, {k: v for k, v in env.items() if k != CONFIG_ENV}, ENV_PREFIX)
    settings: Settings = build(Settings, raw)
    return settings


def _anchor_packaged_paths(raw: dict[str, Any]) -> None:
    """Make the packaged config's relative zone and grid paths point next to it (before env overrides)."""
    for section, key in PACKAGED_RELATIVE_PATHS:
        values = raw.get(section)
        if isinstance(values, dict) and isinstance(values.get(key), str) and values[key] \
                and not Path(values[key]).is_absolute():
            values[key] = str(DEFAULT_CONFIG.parent / values[key])
