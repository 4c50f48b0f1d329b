"""Group validated fixes by the Kafka partition their vehicle hashes to.

The bridge produces one ``fixes`` record per partition batch (binary columns,
:mod:`engine.telemetry.wire`), so a worker reads many fixes per Kafka record
while every vehicle's fixes and table state stay on the vehicle's own
partition. Partitioning is Kafka's default (murmur2 of the key), the same hash
Faust's tables use, so a batch keyed by any of its vehicles lands on the
batch's partition. murmur2 is pure Python, so each vehicle's partition is
computed once and kept (``PARTITION_CACHE_MAX`` vehicles, then the cache
starts over).

A batch holds column chunks, each the rows one MQTT message gave the
partition (in the message's order), and the message each chunk came from;
they are joined and encoded only when the batch is sent (:meth:`Batch.payload`).
A batch never holds more than ``max_fixes`` fixes: a chunk that does not fit
is split, its head closing the full batch and its rest opening the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
from aiokafka.partitioner import murmur2

from engine.telemetry import wire
from engine.telemetry.columns import FixColumns, concat

T = TypeVar("T")

PARTITION_CACHE_MAX = 1_000_000


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's DefaultPartitioner: murmur2 of the key, positive, modulo the partition count."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class Batch(Generic[T]):
    partition: int
    key: bytes            # the first vehicle's id: hashes to ``partition``
    chunks: list[FixColumns] = field(default_factory=list)
    tags: list[T] = field(default_factory=list)   # what each chunk belongs to (the MQTT message)
    fixes: int = 0
    started: float = 0.0

    def payload(self) -> bytes:
        return wire.encode(concat(self.chunks))


class PartitionBatcher(Generic[T]):
    """Per-partition buffers flushed by size (``max_fixes``) or age (``linger_s``)."""

    def __init__(self, partitions: int, *, max_fixes: int, linger_s: float,
                 cache_max: int = PARTITION_CACHE_MAX):
        self.partitions, self.max_fixes, self.linger_s = partitions, max(1, max_fixes), linger_s
        self._open: dict[int, Batch[T]] = {}
        self._partition_of: dict[str, int] = {}
        self._cache_max = cache_max

    def partitions_of(self, ids: list[str]) -> list[int]:
        """Each vehicle's partition (cached: murmur2 in Python is slow per fix)."""
        cache = self._partition_of
        parts = list(map(cache.get, ids))
        if None in parts:
            for i, p in enumerate(parts):
                if p is None:
                    if len(cache) >= self._cache_max:
                        cache.clear()
                    parts[i] = cache[ids[i]] = partition_for(ids[i].encode(), self.partitions)
        return parts  # type: ignore[return-value]

    def add(self, cols: FixColumns, tag: T, now: float) -> list[Batch[T]]:
        """Buffer one message's fixes on their partitions' batches; returns the batches now full (send them)."""
        n = len(cols)
        if n == 0:
            return []
        parts = self.partitions_of(cols.vehicle_id)
        full: list[Batch[T]] = []
        if parts.count(parts[0]) == n:  # one vehicle, or vehicles of one partition: no split
            self._append(parts[0], cols, tag, now, full)
            return full
        p = np.asarray(parts)
        order = np.argsort(p, kind="stable")  # stable: each partition's rows keep the message's order
        for rows in np.split(order, np.flatnonzero(np.diff(p[order])) + 1):
            self._append(parts[rows[0]], cols.take(rows), tag, now, full)
        return full

    def _append(self, p: int, chunk: FixColumns, tag: T, now: float, full: list[Batch[T]]) -> None:
        while True:
            batch = self._open.get(p)
            if batch is None:
                batch = self._open[p] = Batch(p, chunk.vehicle_id[0].encode(), started=now)
            room = self.max_fixes - batch.fixes
            head, rest = (chunk, None) if len(chunk) <= room else (chunk.take(np.arange(room)),
                                                                   chunk.take(np.arange(room, len(chunk))))
            batch.chunks.append(head)
            batch.tags.append(tag)
            batch.fixes += len(head)
            if batch.fixes >= self.max_fixes:
                full.append(self._open.pop(p))
            if rest is None:
                return
            chunk = rest

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
        return sum(b.fixes for b in self._open.values())
