"""Every Kafka topic Citywatch owns, with its partition count and configs, assembled above the domains.

The shared topics (``fixes``, ``fixes.rejected``, ``alerts``) get
``kafka.partitions`` each and the ``zones`` topic one compacted partition
(its readers, :mod:`engine.geofence.zone_topic`, read partition 0: every
worker holds every zone); vetting and casework name their own. The command line (worker,
bridge, ``citywatch zones``) and ``citywatch up`` create them all with
:func:`ensure_all_topics` before anything reads or writes.
"""

from __future__ import annotations

from engine.casework.report_topics import report_topic_specs
from engine.casework.task_topics import task_topic_specs
from engine.kafka.admin import TopicSpecs
from engine.kafka.topics import ensure_topics
from engine.settings import Settings
from engine.vetting.topics import vetting_topic_specs


def topic_specs(settings: Settings) -> TopicSpecs:
    n, t = settings.kafka.partitions, settings.kafka.topics
    return {t.fixes: (n, {}), t.fixes_rejected: (n, {}), t.alerts: (n, {}),
            t.zones: (1, {"cleanup.policy": "compact"}), **vetting_topic_specs(settings),
            **report_topic_specs(settings), **task_topic_specs(settings)}


def ensure_all_topics(settings: Settings) -> None:
    """Create every topic of :func:`topic_specs` that does not exist yet (see :func:`engine.kafka.topics.ensure_topics`)."""
    ensure_topics(settings.kafka, topic_specs(settings))
