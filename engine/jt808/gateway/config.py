"""The settings sections the gateway reads, as a Protocol: the composed settings fit, and so does a test's own."""

from __future__ import annotations

from typing import Protocol

from engine.jt808.settings import Jt808Settings
from engine.telemetry.settings import TelemetryConfig


class Jt808Config(TelemetryConfig, Protocol):
    """``jt808`` and what the fix rules read (:func:`engine.telemetry.fix_rules.validate_fix` takes a
    :class:`~engine.telemetry.settings.TelemetryConfig`: ``bridge`` for the field limits and Kafka timeouts and
    batch sizes, ``city`` for the bounds, ``worker`` for the future tolerance and top speed, ``kafka`` for the
    cluster and topics, ``web`` for the metrics host). This domain never imports the composed settings."""

    @property
    def jt808(self) -> Jt808Settings: ...
