"""Faust transport corrections for the embedded Tansu broker (README "Production").

Two measured quirks, corrected only when ``kafka.broker`` is ``tansu``:

* Tansu answers ListOffsets(latest) with "base offset of the newest record
  batch + 1", not the true end offset. Faust restores a table's changelog up
  to that answer, so a restarted worker would silently lose the tail of the
  last changelog batch. We take, per partition, the larger of ListOffsets and
  the high watermark a Fetch response reports (which is right).
* Faust hard-codes ``fetch_max_wait_ms=1500`` and Tansu holds every fetch that
  long even when data arrives; we lower it to ``FETCH_MAX_WAIT_MS``.

On a real Kafka cluster neither applies; the corrections every broker needs
(engine.kafka.faust_fixes) are the base of these classes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from engine.kafka.faust_fixes import SafeConsumer, SafeConsumerThread, SafeTransport

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 20


async def fetch_highwaters(bootstrap: list[str], tps: Iterable[TP], *, timeout_ms: int = 2000) -> dict[TP, int]:
    """High watermark of each partition as a Fetch response reports it."""
    tps = list(tps)
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=50, max_partition_fetch_bytes=1)
    await consumer.start()
    try:
        parts = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        for p in parts:  # fetch from just before the reported end: the response carries the true watermark
            consumer.seek(p, max(ends[p] - 1, 0))
        result: dict[TP, int] = {}
        for _ in range(5):
            await consumer.getmany(*parts, timeout_ms=timeout_ms // 5)
            for tp, p in zip(tps, parts):
                hw = consumer.highwater(p)
                if hw is not None:
                    result[tp] = max(hw, ends[p])
            if len(result) == len(tps):
                break
        for tp, p in zip(tps, parts):
            result.setdefault(tp, ends[p])
        return result
    finally:
        await consumer.stop()


class TansuConsumerThread(SafeConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by the Fetcher built in start()
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        reported = dict(await super()._highwaters(partitions))
        if self.consumer.in_transaction:
            return reported
        servers = self._ensure_consumer()._client._bootstrap_servers
        true_ends = await fetch_highwaters(servers, [tp for tp, v in reported.items() if v])
        corrected = {tp: max(v or 0, true_ends.get(tp, 0)) for tp, v in reported.items()}
        for tp in corrected:
            if corrected[tp] != reported[tp]:
                log.info("tansu: highwater of %s corrected %s -> %s", tp, reported[tp], corrected[tp])
        return corrected


class TansuConsumer(SafeConsumer):
    def _new_consumer_thread(self) -> TansuConsumerThread:
        return TansuConsumerThread(self, loop=self.loop, beacon=self.beacon)


class TansuTransport(SafeTransport):
    Consumer = TansuConsumer
