"""Follow a whole Kafka topic without a consumer group (every worker reads every partition).

Like the zones follower (:mod:`engine.geofence.zone_sync`): a plain aiokafka
consumer, partitions assigned by hand, no commits. Where to start:
``"beginning"`` (compacted topics: zones, tasks), ``"end"``, or a number of
seconds of history (``fixes``, ``alerts``): the broker is asked for the
offsets of that time, and records older than it are skipped all the same,
because the embedded Tansu broker answers that question loosely (measured:
offset 0). Where no record is that recent, reading starts at the end offset
taken just before the question (Apache Kafka answers "none" for an empty
partition, and a record written meanwhile must not be skipped). A topic that does not exist yet (``tasks`` before the tasks
service first writes it) is waited for.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from engine.core.clock import Clock
from engine.kafka.metadata import wait_partitions

log = logging.getLogger(__name__)

Handler = Callable[[list[Any]], Any]  # may return an awaitable


async def follow(topic: str, servers: list[str], handle: Handler, *, start: str | float, clock: Clock,
                 poll_ms: int = 300, max_records: int = 5000, topic_wait_s: float = 5.0) -> None:
    """Feed ``handle`` batches of records of every partition of ``topic`` until cancelled.

    ``start``: ``"beginning"``, ``"end"`` or seconds of history (a float). With
    history, records older than ``now - start`` are never handed over.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=200, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic, topic_wait_s)
        consumer.assign(tps)
        cutoff_ms = await _seek(consumer, tps, start, clock)
        log.info("onemap: following %s (%d partitions) from %s", topic, len(tps), start)
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=poll_ms, max_records=max_records)
            except KafkaError as exc:
                log.warning("onemap: reading %s failed (%s); retrying", topic, exc)
                await asyncio.sleep(1.0)
                continue
            for records in batches.values():
                if cutoff_ms is not None:
                    records = [r for r in records if r.timestamp >= cutoff_ms]
                if not records:
                    continue
                try:
                    done = handle(records)
                    if inspect.isawaitable(done):
                        await done
                except Exception:  # noqa: BLE001 - a bug must not stop the page; the records' content is not logged
                    log.exception("onemap: handling %d records of %s partition %d from offset %d failed",
                                  len(records), topic, records[0].partition, records[0].offset)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str, wait_s: float) -> list[TopicPartition]:
    return await wait_partitions(consumer, topic, wait_s,
                                 lambda: log.info("onemap: topic %s does not exist yet; waiting for it", topic))


async def _seek(consumer: AIOKafkaConsumer, tps: list[TopicPartition], start: str | float,
                clock: Clock) -> int | None:
    if start == "beginning":
        await consumer.seek_to_beginning(*tps)
        return None
    if start == "end":
        await consumer.seek_to_end(*tps)
        return None
    cutoff_ms = int((clock.now() - float(start)) * 1000)
    ends = await consumer.end_offsets(tps)  # before the time lookup: what lands in between is still read
    try:
        found = await consumer.offsets_for_times({tp: cutoff_ms for tp in tps})
    except KafkaError as exc:
        log.warning("onemap: %s: offsets for a time not available (%s); reading from the start", tps[0].topic, exc)
        found = {}
    for tp in tps:
        hit = found.get(tp)
        if tp not in found:
            await consumer.seek_to_beginning(tp)
        elif hit is None:  # nothing that recent: from the end as it was (seek_to_end would resolve it later)
            consumer.seek(tp, ends[tp])
        else:
            consumer.seek(tp, hit.offset)
    return cutoff_ms
