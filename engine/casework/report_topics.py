"""The reports' Kafka topics, declared once: names from ``reports.topics``, specs for ``ensure_topics``.

* ``reports`` - validated reports (and the duplicate index's register / unregister records), keyed by place
  key ``{service_code}/{cx}/{cy}`` so near-duplicates meet on one partition. Holds contact fields: retention
  ``reports.raw_retention_days``.
* ``rejected`` - reports refused at intake, with reason and field, contact fields masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.casework.settings import CaseworkConfig
from engine.kafka.topics import raw_topic

if TYPE_CHECKING:
    import faust


@dataclass(frozen=True)
class ReportTopics:
    reports: faust.TopicT
    rejected: faust.TopicT


def declare_report_topics(app: faust.App, settings: CaseworkConfig) -> ReportTopics:
    t, n = settings.reports.topics, settings.kafka.partitions
    return ReportTopics(raw_topic(app, t.reports, partitions=n), raw_topic(app, t.rejected, partitions=n))


def report_topic_specs(settings: CaseworkConfig) -> dict[str, tuple[int, dict[str, str]]]:
    t, n = settings.reports.topics, settings.kafka.partitions
    retention = str(int(settings.reports.raw_retention_days * 86400 * 1000))
    return {t.reports: (n, {"retention.ms": retention}), t.rejected: (n, {"retention.ms": retention})}
