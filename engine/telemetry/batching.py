"""Group validated fixes by the Kafka partition their vehicle hashes to.

The bridge produces one ``fixes`` message per partition batch (a JSON array),
so a worker reads many fixes per Kafka message while every vehicle's fixes
and table state stay on the vehicle's own partition. Partitioning is Kafka's
default (murmur2 of the key), the same hash Faust's tables use, so a batch
keyed by any of its vehicles lands on the batch's partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aiokafka.partitioner import murmur2

T = TypeVar("T")


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's DefaultPartitioner: murmur2 of the key, positive, modulo the partition count."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class Batch(Generic[T]):
    partition: int
    key: bytes            # the first vehicle's id: hashes to ``partition``
    values: list[bytes] = field(default_factory=list)
    tags: list[T] = field(default_factory=list)   # what each value belongs to (the MQTT message)
    started: float = 0.0

    def payload(self) -> bytes:
        return self.values[0] if len(self.values) == 1 else b"[" + b",".join(self.values) + b"]"


class PartitionBatcher(Generic[T]):
    """Per-partition buffers flushed by size (``max_fixes``) or age (``linger_s``)."""

    def __init__(self, partitions: int, *, max_fixes: int, linger_s: float):
        self.partitions, self.max_fixes, self.linger_s = partitions, max(1, max_fixes), linger_s
        self._open: dict[int, Batch[T]] = {}

    def add(self, key: bytes, value: bytes, tag: T, now: float) -> Batch[T] | None:
        """Buffer one fix; returns a batch that is full and must be sent now."""
        p = partition_for(key, self.partitions)
        batch = self._open.get(p)
        if batch is None:
            batch = self._open[p] = Batch(p, key, started=now)
        batch.values.append(value)
        batch.tags.append(tag)
        if len(batch.values) >= self.max_fixes:
            return self._open.pop(p)
        return None

    def due(self, now: float) -> list[Batch[T]]:
        """Batches older than the linger time (taken out of the buffer)."""
        out = [b for b in self._open.values() if now - b.started >= self.linger_s]
        for b in out:
            del self._open[b.partition]
        return out

    def drain(self) -> list[Batch[T]]:
        out = list(self._open.values())
        self._open.clear()
        return out

    def __len__(self) -> int:
        return sum(len(b.values) for b in self._open.values())
