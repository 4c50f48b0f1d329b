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


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    """Raw-bytes topics: records are JSON decoded by the agents with orjson."""
    names, n = settings.kafka.topics, settings.kafka.partitions

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=n)

    return Topics(topic(names.fixes), topic(names.fixes_rejected), topic(names.alerts))
