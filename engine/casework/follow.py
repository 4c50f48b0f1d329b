"""Each worker follows ``tasks`` (from the start: the directory) and ``tasks.outcomes`` (from the end: answers).

One group-less consumer (engine.kafka.follow), as vetting's decisions
follower: every worker sees every outcome, so whichever worker took an HTTP
request or an MQTT report answers it, whoever owns the task's partition; and
no reply topic is added to the consumer group (Faust's ``agent.ask()`` would
force a rebalance). On errors it reconnects; meanwhile POSTs time out into a
token. The directory is ready once the tasks topic is read to the end it had
when reading started.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from engine.casework.directory import TaskDirectory
from engine.casework.settings import CaseworkConfig
from engine.kafka.answers import ANSWER_FETCH_WAIT_MS, AnswerWaiter
from engine.kafka.follow import BEGINNING, END, Source, follow, follow_forever

log = logging.getLogger(__name__)

DECODE_ERRORS = (orjson.JSONDecodeError, TypeError, AttributeError, ValueError)


async def follow_tasks(settings: CaseworkConfig, directory: TaskDirectory, waiter: AnswerWaiter) -> None:
    t = settings.tasks.topics

    def tasks(records: list[Any]) -> None:
        for r in records:
            try:
                _on_task(directory, r.key, r.value)
            except DECODE_ERRORS:
                _undecodable(r)

    def outcomes(records: list[Any]) -> None:
        for r in records:
            try:
                _on_outcome(directory, waiter, orjson.loads(r.value))
            except DECODE_ERRORS:
                _undecodable(r)

    def caught_up() -> None:
        if not directory.ready.is_set():
            directory.ready.set()
            log.info("follow_tasks: %d tasks read from %s", len(directory), t.tasks)

    await follow_forever("follow_tasks", lambda: follow(
        settings.kafka.servers, [Source(t.tasks, BEGINNING, tasks), Source(t.outcomes, END, outcomes)],
        name="follow_tasks", fetch_max_wait_ms=ANSWER_FETCH_WAIT_MS, poll_ms=500, on_ready=waiter.ready.set,
        on_caught_up=caught_up), ready=waiter.ready)


def _undecodable(r: Any) -> None:
    log.error("follow_tasks: undecodable record at %s[%s]@%s", r.topic, r.partition, r.offset)


def _on_task(directory: TaskDirectory, key: bytes | None, value: bytes | None) -> None:
    if value is None:  # a tombstone on the compacted topic
        if key:
            directory.remove(key.decode())
        return
    directory.upsert(orjson.loads(value))


def _on_outcome(directory: TaskDirectory, waiter: AnswerWaiter, outcome: dict) -> None:
    task = outcome.get("task")
    if isinstance(task, dict):
        directory.upsert(task)
    if outcome.get("kind") == "report" and outcome.get("ok"):
        directory.remember_token(str(outcome["id"]), str(outcome.get("service_request_id")))
    if len(waiter):
        waiter.resolve(outcome)
