"""The telemetry settings sections: ``bridge`` (MQTT in, Kafka out), ``filters`` (fix quality), ``simulator``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from engine.core.city import CitySettings
from engine.kafka.settings import KafkaSettings, WorkerSettings
from engine.mqtt.settings import MqttSettings
from engine.web.settings import WebSettings


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

    SIZE_LIMITS: ClassVar[tuple[str, ...]] = ("max_payload_bytes", "max_fixes_per_message", "max_json_depth",
                                              "max_vehicle_id_chars", "max_field_chars")


@dataclass(frozen=True)
class FilterSettings:
    invalid_fix: bool = True
    max_accuracy_m: float = 50.0
    max_implied_speed_kmh: float = 250.0
    jump_tolerance_m: float = 50.0
    reanchor_fixes: int = 3


@dataclass(frozen=True)
class SimulatorSettings:
    vehicles: int = 25
    speedup: float = 1.0
    seed: int = 7
    scripted_violation: bool = True


class TelemetryConfig(Protocol):
    """The sections the bridge reads: the whole settings object (:class:`engine.settings.Settings`) fits, and so
    does anything else that has them; this domain never imports the composed settings."""

    @property
    def bridge(self) -> BridgeSettings: ...

    @property
    def city(self) -> CitySettings: ...

    @property
    def filters(self) -> FilterSettings: ...

    @property
    def kafka(self) -> KafkaSettings: ...

    @property
    def mqtt(self) -> MqttSettings: ...

    @property
    def web(self) -> WebSettings: ...

    @property
    def worker(self) -> WorkerSettings: ...
