"""The Kafka topics Citywatch owns, created once with the configured partition count and replication.

Producers (bridge) and Faust workers both call :func:`ensure_topics` at start,
so whichever starts first creates them with the same partition count and a
vehicle's key hashes to the same partition everywhere.
"""

from __future__ import annotations

from engine.brokers.kafka import create_topics
from engine.casework.report_topics import report_topic_specs
from engine.settings import Settings
from engine.casework.task_topics import task_topic_specs
from engine.vetting.topics import vetting_topic_specs


def topic_specs(settings: Settings) -> dict[str, tuple[int, dict[str, str]]]:
    n, t = settings.kafka.partitions, settings.kafka.topics
    return {t.fixes: (n, {}), t.fixes_rejected: (n, {}), t.alerts: (n, {}),
            t.zones: (1, {"cleanup.policy": "compact"}), **vetting_topic_specs(settings),
            **report_topic_specs(settings), **task_topic_specs(settings)}


def ensure_topics(settings: Settings) -> None:
    """Create the topics with ``kafka.replication`` replicas and ``kafka.min_insync_replicas``."""
    k = settings.kafka
    create_topics(k.bootstrap, topic_specs(settings), replication=k.replication, min_insync=k.min_insync_replicas)
