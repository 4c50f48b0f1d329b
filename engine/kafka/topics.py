"""Topics in a Faust app, and creating topics from their specs.

:class:`Topics` holds the three topics several domains share (``fixes``,
``fixes.rejected``, ``alerts``), named by the ``kafka.topics`` settings; it
lives here, below the domains that are handed it (telemetry, geofence,
vetting, casework), not in the app that declares it. Which topics exist and
how each is configured is the top floor's knowledge (:mod:`engine.topology`):
:func:`ensure_topics` creates whatever specs it is given.

Faust is needed only by whoever passes an app: the bridge creates topics
without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.kafka.admin import TopicSpecs, create_topics
from engine.kafka.settings import KafkaSettings

if TYPE_CHECKING:
    import faust


@dataclass(frozen=True)
class Topics:
    fixes: faust.TopicT
    fixes_rejected: faust.TopicT
    alerts: faust.TopicT


def raw_topic(app: faust.App, *names: str, partitions: int) -> faust.TopicT:
    """A raw-bytes topic (several names: one stream over all of them); records are JSON read with orjson."""
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=partitions)


def declare_topics(app: faust.App, kafka: KafkaSettings) -> Topics:
    names, n = kafka.topics, kafka.partitions
    return Topics(*(raw_topic(app, name, partitions=n) for name in (names.fixes, names.fixes_rejected, names.alerts)))


def ensure_topics(kafka: KafkaSettings, specs: TopicSpecs) -> None:
    """Create ``specs`` with ``kafka.replication`` replicas and ``kafka.min_insync_replicas``.

    Producers (bridge) and Faust workers both call this at start, so whichever starts first creates the
    topics with the same partition count and a vehicle's key hashes to the same partition everywhere.
    """
    create_topics(kafka.bootstrap, specs, replication=kafka.replication, min_insync=kafka.min_insync_replicas)
