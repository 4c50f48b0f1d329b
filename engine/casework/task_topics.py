"""The tasks' Kafka topics, declared once: names from ``tasks.topics``, specs for ``ensure_topics``.

All keyed by ``service_request_id`` (the producer's default partitioner), so one task's commands, events,
table entry and outputs share a partition:

* ``tasks`` - compacted: the latest state of every task (the live map and every worker's Open311 reads).
* ``commands`` - from the reports side: ``create`` (a new task) and ``merge`` (a duplicate report).
* ``events`` - department and supervisor actions, from their systems and from the HTTP API.
* ``dispatch`` - notifications to departments (new, re-dispatched) and to grid offices (escalated, overdue).
* ``outcomes`` - what became of each report and event (the HTTP API answers from it; audit).
* ``rejected`` - malformed events from Kafka and events refused by the state machine, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.casework.settings import CaseworkConfig
from engine.kafka.topics import raw_topic

if TYPE_CHECKING:
    import faust


@dataclass(frozen=True)
class TaskTopics:
    tasks: faust.TopicT
    commands: faust.TopicT
    events: faust.TopicT
    dispatch: faust.TopicT
    outcomes: faust.TopicT
    rejected: faust.TopicT
    inputs: faust.TopicT  # commands and events, read by one agent so one task has one writer


def declare_task_topics(app: faust.App, settings: CaseworkConfig) -> TaskTopics:
    t, n = settings.tasks.topics, settings.kafka.partitions

    def topic(*names: str) -> faust.TopicT:
        return raw_topic(app, *names, partitions=n)

    return TaskTopics(topic(t.tasks), topic(t.commands), topic(t.events), topic(t.dispatch), topic(t.outcomes),
                      topic(t.rejected), topic(t.commands, t.events))


def task_topic_specs(settings: CaseworkConfig) -> dict[str, tuple[int, dict[str, str]]]:
    t, n = settings.tasks.topics, settings.kafka.partitions
    return {t.tasks: (n, {"cleanup.policy": "compact"}), t.commands: (n, {}), t.events: (n, {}),
            t.dispatch: (n, {}), t.outcomes: (n, {}), t.rejected: (n, {})}
