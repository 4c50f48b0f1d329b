"""Build the Faust app of a worker from settings.

Broker tuning depends on ``kafka.broker``: on the embedded Tansu broker, short
session timeouts (Tansu holds every JoinGroup for half of it) and the
transport corrections of :mod:`engine.kafka.tansu`; on a real Kafka cluster,
production values (see README "Production").
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry

from engine.alerts import mqtt_sink
from engine.casework import wiring as citizen_tasks
from engine.core.clock import Clock, SystemClock
from engine.core.metrics import WorkerMetrics
from engine.geofence import agents as geofence_agents
from engine.geofence import zone_sync
from engine.geofence.checker import ZoneChecker
from engine.geofence.zone_store import build_index
from engine.kafka.faust_fixes import OrderedTableManager
from engine.kafka.producers import KafkaTransport
from engine.kafka.settings import KafkaSettings
from engine.kafka.tansu import TansuTransport
from engine.kafka.topics import declare_topics
from engine.onemap import agents as onemap_agents
from engine.settings import Settings
from engine.telemetry import agents as telemetry_agents
from engine.vetting import agents as vetting_agents
from engine.web import faust_pages, health

log = logging.getLogger(__name__)


def broker_tuning(kafka: KafkaSettings) -> dict[str, Any]:
    """Faust consumer/producer settings for the configured kind of broker (README "Production")."""
    if kafka.broker == "tansu":
        return dict(broker_session_timeout=3.0, broker_heartbeat_interval=0.5, broker_commit_interval=0.2,
                    broker_request_timeout=30.0, producer_linger=0.005, stream_wait_empty=False)
    return dict(broker_session_timeout=30.0, broker_heartbeat_interval=3.0, broker_commit_interval=1.0,
                broker_request_timeout=90.0, producer_linger=0.005, producer_acks=-1)


class CitywatchApp(faust.App):
    """A Faust app on the transport for its broker: Tansu-corrected, or idempotent writes on Kafka."""

    def __init__(self, *args: Any, tansu: bool = False, **kwargs: Any):
        self._tansu = tansu
        super().__init__(*args, **kwargs)

    def _new_transport(self):
        transport = TansuTransport if self._tansu else KafkaTransport
        return transport(self.conf.broker_consumer, self)

    def _new_web(self):
        """Faust's web server without the index it would put at ``/`` (:mod:`engine.web.faust_pages`)."""
        return faust_pages.Web(self)


def create_app(settings: Settings, *, clock: Clock | None = None,
               registry: CollectorRegistry | None = None) -> CitywatchApp:
    """A worker app with every agent registered; ``app.citywatch`` holds its parts.

    Building it reads no broker: the zones are read from their topic once the app has started, before
    the first fix is checked (:mod:`engine.geofence.zone_sync`).
    """
    clock = clock or SystemClock()
    registry = registry or CollectorRegistry()
    k = settings.kafka
    app = CitywatchApp(
        settings.worker.app_id, tansu=k.broker == "tansu",
        broker=[f"kafka://{s}" for s in k.servers], store="memory://",
        datadir=str(Path(settings.worker.data_dir)), autodiscover=False,
        web_bind=settings.web.host, web_host=settings.web.host, web_port=settings.web.port,
        **faust_pages.OFF,  # Faust's own pages (tables, router, graph, stats) answer without a key
        topic_partitions=k.partitions, topic_replication_factor=k.replication,
        consumer_auto_offset_reset="earliest", TableManager=OrderedTableManager, **broker_tuning(k))
    metrics = WorkerMetrics(registry)
    setup_prometheus_sensors(app, registry=registry, name_prefix="faust")
    topics = declare_topics(app, settings.kafka)
    checker = ZoneChecker(build_index((), tz=settings.city.tz, crs=settings.city.crs)[0], tz=settings.city.tz,
                          clock=clock)
    zones = zone_sync.register(app, settings, checker, metrics)   # read from the zones topic once started
    zone_worker = geofence_agents.register(app, topics, settings, metrics, clock, checker, wait_for_zones=zones.wait)
    telemetry_agents.register(app, topics.fixes_rejected, metrics)
    mqtt_sink.register(app, settings, metrics)
    vetting_agents.register(app, settings, metrics, clock, topics)
    citizen_tasks.register(app, settings, metrics, clock, topics)
    onemap_agents.register(app, settings, metrics, clock)
    health.register(app, lambda: {"zones": len(checker.index)})
    app.citywatch = dict(settings=settings, metrics=metrics, registry=registry, topics=topics,  # type: ignore[attr-defined]
                         tracks=zone_worker.tracks, checker=checker, clock=clock, zones=zones)
    return app
