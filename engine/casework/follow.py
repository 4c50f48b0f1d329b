"""Each worker follows ``tasks`` (from the start: the directory) and ``tasks.outcomes`` (from the end: answers).

A group-less consumer, as vetting's decisions follower (engine.vetting.waiter):
every worker sees every outcome, so whichever worker took an HTTP request or
an MQTT report answers it, whoever owns the task's partition; and no reply
topic is added to the consumer group (Faust's ``agent.ask()`` would force a
rebalance). On errors it reconnects; meanwhile POSTs time out into a token.
"""

from __future__ import annotations

import logging

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from engine.kafka.metadata import wait_partitions
from engine.settings import Settings
from engine.casework.directory import TaskDirectory
from engine.vetting.waiter import DecisionWaiter, follow_forever

log = logging.getLogger(__name__)

RETRY_S = 2.0


async def follow_tasks(settings: Settings, directory: TaskDirectory, waiter: DecisionWaiter) -> None:
    await follow_forever("follow_tasks", lambda: _follow(settings, directory, waiter), waiter)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    return await wait_partitions(consumer, topic, 0.5)


async def _follow(settings: Settings, directory: TaskDirectory, waiter: DecisionWaiter) -> None:
    t = settings.tasks.topics
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.servers, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=20)
    await consumer.start()
    try:
        tasks_tps = await _partitions(consumer, t.tasks)
        outcome_tps = await _partitions(consumer, t.outcomes)
        consumer.assign(tasks_tps + outcome_tps)
        await consumer.seek_to_beginning(*tasks_tps)
        await consumer.seek_to_end(*outcome_tps)
        for tp in outcome_tps:
            await consumer.position(tp)  # resolve the end now: outcomes after this point are seen
        ends = await consumer.end_offsets(tasks_tps)
        waiter.ready.set()
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    try:
                        if tp.topic == t.tasks:
                            _on_task(directory, r.key, r.value)
                        else:
                            _on_outcome(directory, waiter, orjson.loads(r.value))
                    except (orjson.JSONDecodeError, TypeError, AttributeError, ValueError):
                        log.error("follow_tasks: undecodable record at %s[%s]@%s", r.topic, r.partition, r.offset)
            if not directory.ready.is_set():
                # Tansu can report an end offset short of the true end (engine.kafka.tansu): close enough to start
                # answering; the rest arrives within the next fetches.
                positions = [await consumer.position(tp) for tp in tasks_tps]
                if all(p >= ends[tp] for p, tp in zip(positions, tasks_tps)):
                    directory.ready.set()
                    log.info("follow_tasks: %d tasks read from %s", len(directory), t.tasks)
    finally:
        await consumer.stop()


def _on_task(directory: TaskDirectory, key: bytes | None, value: bytes | None) -> None:
    if value is None:  # a tombstone on the compacted topic
        if key:
            directory.remove(key.decode())
        return
    directory.upsert(orjson.loads(value))


def _on_outcome(directory: TaskDirectory, waiter: DecisionWaiter, outcome: dict) -> None:
    task = outcome.get("task")
    if isinstance(task, dict):
        directory.upsert(task)
    if outcome.get("kind") == "report" and outcome.get("ok"):
        directory.remember_token(str(outcome["id"]), str(outcome.get("service_request_id")))
    if len(waiter):
        waiter.resolve(outcome)
