"""The group-less follower on a real broker: start positions, the hooks, the bounded read, the retry wrapper."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from engine.brokers.ports import SpawnedBroker
from engine.kafka import follow as follow_mod
from engine.kafka.admin import create_topics
from engine.kafka.follow import BEGINNING, END, At, Source, follow, follow_forever, read_to_end

pytestmark = pytest.mark.timeout(120)


def topic(kafka_broker: SpawnedBroker, partitions: int = 1) -> str:
    name = f"cw.follow.{uuid.uuid4().hex[:8]}"
    create_topics(kafka_broker.address, {name: (partitions, {})})
    return name


async def produce(address: str, name: str, values: list[bytes], *, timestamp_ms: int | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=address)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(name, v, key=v, partition=0, timestamp_ms=timestamp_ms)
    finally:
        await producer.stop()


async def until(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_read_to_end_hands_over_every_record_and_returns_the_position(kafka_broker: SpawnedBroker):
    name = topic(kafka_broker)
    seen: list[bytes] = []

    async def run() -> dict[TopicPartition, int]:
        await produce(kafka_broker.address, name, [b"a", b"b", b"c"])
        return await read_to_end([kafka_broker.address], [Source(name, BEGINNING, lambda rs: seen.extend(
            r.value for r in rs), partitions=(0,))], name="test")

    assert asyncio.run(run()) == {TopicPartition(name, 0): 3} and seen == [b"a", b"b", b"c"]


def test_from_the_end_only_what_comes_after_ready(kafka_broker: SpawnedBroker):
    name = topic(kafka_broker, partitions=2)
    seen: list[bytes] = []

    async def run() -> None:
        await produce(kafka_broker.address, name, [b"old"])
        ready = asyncio.Event()
        task = asyncio.create_task(follow([kafka_broker.address], [Source(name, END, lambda rs: seen.extend(
            r.value for r in rs))], name="test", on_ready=ready.set))
        await asyncio.wait_for(ready.wait(), 20)
        await produce(kafka_broker.address, name, [b"new"])
        await until(lambda: seen, "the new record")
        await stop(task)

    asyncio.run(run())
    assert seen == [b"new"]


def test_an_offset_start_idle_fetches_and_caught_up(kafka_broker: SpawnedBroker):
    name, other = topic(kafka_broker), topic(kafka_broker)
    seen: list[bytes] = []
    events: list[str] = []

    async def idle() -> None:
        events.append("idle")

    async def run() -> None:
        await produce(kafka_broker.address, name, [b"0", b"1", b"2", b"3"])
        task = asyncio.create_task(follow(
            [kafka_broker.address],
            [Source(name, At(2), lambda rs: seen.extend(r.value for r in rs), partitions=(0,)),
             Source(other, END, lambda rs: None)],
            name="test", on_idle=idle, on_caught_up=lambda: events.append(f"caught up after {len(seen)}")))
        await until(lambda: "idle" in events and any(e.startswith("caught up") for e in events), "idle, caught up")
        await stop(task)

    asyncio.run(run())
    assert seen == [b"2", b"3"] and "caught up after 2" in events


def test_seconds_of_history_skip_older_records(kafka_broker: SpawnedBroker):
    name = topic(kafka_broker)
    seen: list[bytes] = []

    async def run() -> None:
        now_ms = int(time.time() * 1000)
        await produce(kafka_broker.address, name, [b"an hour ago"], timestamp_ms=now_ms - 3_600_000)
        await produce(kafka_broker.address, name, [b"just now"], timestamp_ms=now_ms)
        task = asyncio.create_task(follow([kafka_broker.address], [Source(name, 60.0, lambda rs: seen.extend(
            r.value for r in rs))], name="test"))
        await until(lambda: seen, "the recent record")
        await asyncio.sleep(0.5)
        await stop(task)

    asyncio.run(run())
    assert seen == [b"just now"]


def test_a_failing_handler_is_logged_and_reading_goes_on(kafka_broker: SpawnedBroker, caplog):
    name = topic(kafka_broker)
    seen: list[bytes] = []

    async def handle(records: list[Any]) -> None:
        if records[0].value == b"bad":
            raise ValueError("a bug")
        seen.extend(r.value for r in records)

    async def run() -> None:
        await produce(kafka_broker.address, name, [b"bad"])
        task = asyncio.create_task(follow([kafka_broker.address], [Source(name, BEGINNING, handle)], name="test"))
        await asyncio.sleep(1.0)
        await produce(kafka_broker.address, name, [b"good"])
        await until(lambda: seen, "the good record")
        await stop(task)

    with caplog.at_level(logging.ERROR, logger=follow_mod.__name__):
        asyncio.run(run())
    assert seen == [b"good"] and f"test: handling 1 records of {name} partition 0 from offset 0 failed" in caplog.text


def test_follow_forever_clears_ready_and_runs_the_follower_again(monkeypatch):
    monkeypatch.setattr(follow_mod, "RETRY_S", 0.01)
    runs: list[bool] = []

    async def run() -> None:
        ready = asyncio.Event()

        async def once() -> None:
            runs.append(ready.is_set())
            ready.set()
            if len(runs) == 1:
                raise ConnectionError("Kafka away")
            await asyncio.Event().wait()

        task = asyncio.create_task(follow_forever("test", once, ready=ready))
        await until(lambda: len(runs) == 2, "the second run")
        await stop(task)

    asyncio.run(run())
    assert runs == [False, False]
