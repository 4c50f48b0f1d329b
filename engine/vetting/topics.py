"""Vetting's Kafka topics, declared once: names from ``vetting.topics``, specs for ``ensure_topics``.

* ``applications`` - applications from platforms' systems, raw (ID numbers): short retention.
* ``requests`` - validated applications keyed by person key, no ID number; ``vet_application`` reads it.
* ``decisions`` - every decision with rule and record ids, keyed by person key: the audit log (kept forever).
* ``records_in`` - record feeds from police and transport departments, raw: short retention.
* ``records`` - compacted, pseudonymised records, key ``{person key}/{record id}``, partition chosen by
  the person key (so a person's records, requests and table entries share a partition).
* ``rejected`` - invalid applications and records with field and reason, ID numbers masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiokafka.partitioner import DefaultPartitioner

from engine.kafka.topics import raw_topic
from engine.vetting.settings import VettingConfig

if TYPE_CHECKING:  # the bridge imports the specs below and has no need of Faust
    import faust

RAW_RETENTION_MS = str(7 * 24 * 3600 * 1000)


@dataclass(frozen=True)
class VettingTopics:
    applications: faust.TopicT
    requests: faust.TopicT
    decisions: faust.TopicT
    records_in: faust.TopicT
    records: faust.TopicT
    rejected: faust.TopicT


def declare_vetting_topics(app: faust.App, settings: VettingConfig) -> VettingTopics:
    t, n = settings.vetting.topics, settings.kafka.partitions

    def topic(name: str) -> faust.TopicT:
        return raw_topic(app, name, partitions=n)

    return VettingTopics(topic(t.applications), topic(t.requests), topic(t.decisions), topic(t.records_in),
                         topic(t.records), topic(t.rejected))


def vetting_topic_specs(settings: VettingConfig) -> dict[str, tuple[int, dict[str, str]]]:
    """``name -> (partitions, configs)`` for :func:`engine.kafka.topics.ensure_topics`."""
    t, n = settings.vetting.topics, settings.kafka.partitions
    raw = {"retention.ms": RAW_RETENTION_MS}
    return {t.applications: (n, raw), t.requests: (n, {}), t.decisions: (n, {"retention.ms": "-1"}),
            t.records_in: (n, raw), t.records: (n, {"cleanup.policy": "compact"}), t.rejected: (n, {})}


class PersonPartitioner:
    """The partition of a person key: the producer's default partitioner over ``kafka.partitions``."""

    def __init__(self, partitions: int):
        self.all = list(range(partitions))
        self._p = DefaultPartitioner()

    def __call__(self, person_key: str) -> int:
        return self._p(person_key.encode(), self.all, self.all)


def record_key(person_key: str, record_id: str) -> bytes:
    return f"{person_key}/{record_id}".encode()
