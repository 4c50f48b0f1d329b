"""The ``onemap`` settings section: the live operations page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.casework.settings import TasksSettings
from engine.core.city import CitySettings
from engine.core.errors import ConfigError
from engine.geofence.settings import ZonesSettings
from engine.kafka.settings import KafkaSettings
from engine.telemetry.settings import FilterSettings
from engine.web.settings import WebSettings


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


class OneMapConfig(Protocol):
    """The sections the operations page reads: the whole settings object (:class:`engine.settings.Settings`) fits, and so
    does anything else that has them; this domain never imports the composed settings."""

    @property
    def city(self) -> CitySettings: ...

    @property
    def filters(self) -> FilterSettings: ...

    @property
    def kafka(self) -> KafkaSettings: ...

    @property
    def onemap(self) -> OneMapSettings: ...

    @property
    def tasks(self) -> TasksSettings: ...

    @property
    def web(self) -> WebSettings: ...

    @property
    def zones(self) -> ZonesSettings: ...
