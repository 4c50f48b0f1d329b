"""What the alerts domain reads of the settings."""

from __future__ import annotations

from typing import Protocol

from engine.kafka.settings import KafkaSettings, WorkerSettings
from engine.mqtt.settings import MqttSettings


class AlertsConfig(Protocol):
    """The sections alert delivery reads: the whole settings object (:class:`engine.settings.Settings`) fits, and so
    does anything else that has them; this domain never imports the composed settings."""

    @property
    def kafka(self) -> KafkaSettings: ...

    @property
    def mqtt(self) -> MqttSettings: ...

    @property
    def worker(self) -> WorkerSettings: ...
