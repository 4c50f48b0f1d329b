"""The ``mqtt`` settings section: the broker, Citywatch's topics, and who may log in to do what."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.core.errors import ConfigError


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

    def check(self, prefix: str) -> None:
        if self.qos not in (0, 1, 2):
            raise ConfigError(f"setting {prefix}qos: expected 0, 1 or 2, got {self.qos}")
        """TLS files come in pairs; with ``auth.enabled`` every account has a password; prefixes are real topics."""
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigError(f"setting {prefix}tls_cert_file/tls_key_file: set both (the broker's TLS certificate and key) "
                              "or neither")
        accounts = [(f"services.{n}", getattr(self.auth.services, n)) for n in ("bridge", "worker", "simulator", "console")]
        accounts += [(f"gateways.{n}", g) for n, g in self.auth.gateways.items()]
        accounts += [(f"teams.{n}", t) for n, t in self.auth.teams.items()]
        if self.auth.enabled:
            for name, account in accounts:
                if not account.password:
                    raise ConfigError(f"setting {prefix}auth.{name}.password: required while {prefix}auth.enabled is true")
        for name in self.auth.gateways:
            topic = self.gateway_prefix(name)
            if any(c in topic for c in "+#\x00") or not topic.startswith(self.fixes_topic.rstrip("/") + "/") \
                    or "//" in topic:
                raise ConfigError(f"setting {prefix}auth.gateways.{name}.prefix: expected a topic under "
                                  f"{self.fixes_topic}/ without wildcards, got {topic!r}")


class MqttConfig(Protocol):
    """What the MQTT broker launchers and access files read: the ``mqtt`` section of any settings object."""

    @property
    def mqtt(self) -> MqttSettings: ...
