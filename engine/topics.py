"""The Faust topic objects of one app, declared once (names come from settings)."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from engine.settings import Settings


@dataclass(frozen=True)
class Topics:
    fixes: faust.TopicT
    fixes_rejected: faust.TopicT
    alerts: faust.TopicT


def raw_topic(app: faust.App, *names: str, partitions: int) -> faust.TopicT:
    """A raw-bytes topic (several names: one stream over all of them); records are JSON read with orjson."""
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=partitions)


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    names, n = settings.kafka.topics, settings.kafka.partitions
    return Topics(*(raw_topic(app, name, partitions=n) for name in (names.fixes, names.fixes_rejected, names.alerts)))
