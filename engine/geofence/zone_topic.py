"""Reading and writing the compacted Kafka ``zones`` topic (partition 0: every worker holds every zone).

The record format is :mod:`engine.geofence.zone_store`'s; this module moves
records: the current zone set (the topic folded by key, tombstones applied)
for the workers at start and for ``citywatch zones``, and the writes of
``citywatch zones load|remove``. A Kafka that does not answer is
:class:`BrokerUnreachable`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from engine.geofence.zone_store import apply_records
from engine.kafka.admin import kafka_unreachable, start_client
from engine.kafka.follow import BEGINNING, CONNECT_TIMEOUT_S, Source, read_to_end
from engine.kafka.producers import producer_options
from engine.kafka.settings import KafkaSettings

ZONES_PARTITION = 0
ZONE_WRITE_TIMEOUT_S = 60.0  # for Kafka to take the zone records


async def read_zone_records(kafka: KafkaSettings) -> dict[str, bytes]:
    """The current zone set: the topic folded by key, tombstones applied."""
    return (await read_zone_records_at(kafka))[0]


async def read_zone_records_at(kafka: KafkaSettings) -> tuple[dict[str, bytes], int]:
    """The current zone set and the offset to follow the topic from."""
    records: dict[str, bytes] = {}

    def fold(batch: list[Any]) -> None:
        apply_records(records, batch)

    source = Source(kafka.topics.zones, BEGINNING, fold, partitions=(ZONES_PARTITION,))
    positions = await read_to_end(kafka.servers, [source], name="zones")
    return records, positions[TopicPartition(kafka.topics.zones, ZONES_PARTITION)]


async def write_zone_records(kafka: KafkaSettings, records: dict[str, bytes | None]) -> None:
    """Write ``zone_id -> record`` (None: a tombstone) and wait until Kafka has every one."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.servers, **producer_options(kafka))
    await start_client(producer, kafka.bootstrap, CONNECT_TIMEOUT_S)
    try:
        futures = [await producer.send(kafka.topics.zones, value, key=zid.encode())
                   for zid, value in sorted(records.items())]
        try:  # an idempotent producer retries for good: give up here instead
            await asyncio.wait_for(asyncio.gather(*futures), ZONE_WRITE_TIMEOUT_S)
        except TimeoutError as exc:
            raise kafka_unreachable(exc, kafka.bootstrap, ZONE_WRITE_TIMEOUT_S) from exc
    finally:
        await producer.stop()


async def zone_topic_has_records(kafka: KafkaSettings) -> bool:
    """Whether the zones topic was ever written (its end offset is past 0)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.servers, group_id=None)
    await start_client(consumer, kafka.bootstrap, CONNECT_TIMEOUT_S)
    try:
        tp = TopicPartition(kafka.topics.zones, ZONES_PARTITION)
        return (await consumer.end_offsets([tp]))[tp] > 0
    finally:
        await consumer.stop()
