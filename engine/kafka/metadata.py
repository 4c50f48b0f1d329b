"""A topic's partitions as a plain consumer sees them, on any broker.

aiokafka's ``consumer.partitions_for_topic`` reads the client's own view of
the cluster, which holds only the topics the consumer subscribed to or was
assigned; ``consumer.topics()`` fetches every topic's metadata but hands it
back without keeping it. Tansu answers the client's periodic metadata request
for "no topics" with all of them, so the two seemed to agree there; Apache
Kafka answers it with none, and a topic that exists looked missing for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic`` from a fresh metadata request (empty if the topic does not exist)."""
    cluster = await consumer._client.fetch_all_metadata()
    return [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]


async def wait_partitions(consumer: AIOKafkaConsumer, topic: str, wait_s: float,
                          on_missing: Callable[[], None] | None = None) -> list[TopicPartition]:
    """The partitions of ``topic`` once it exists, asking every ``wait_s`` s; ``on_missing`` once if it does not yet."""
    told = False
    while True:
        parts = await partitions_of(consumer, topic)
        if parts:
            return parts
        if on_missing is not None and not told:
            on_missing()
            told = True
        await asyncio.sleep(wait_s)
