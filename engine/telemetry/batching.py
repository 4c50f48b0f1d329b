"""Group validated fixes by the Kafka partition their vehicle hashes to.

The bridge produces one ``fixes`` record per partition batch (binary columns,
:mod:`engine.telemetry.wire`), so a worker reads many fixes per Kafka record
while every vehicle's fixes and table state stay on the vehicle's own
partition. Partitioning is Kafka's default (murmur2 of the key), the same hash
Faust's tables use, so a batch keyed by any of its vehicles lands on the
batch's partition. murmur2 is pure Python, so each vehicle's partition is
computed once and kept (``PARTITION_CACHE_MAX`` vehicles, then the cache
starts over).

A batch holds column chunks (rows in arrival order) and, run by run, the
MQTT message the rows came from (``tags`` and ``counts``: :meth:`Batch.owners`);
they are joined and encoded only when the batch is sent (:meth:`Batch.payload`).
:meth:`PartitionBatcher.add` takes one message's rows, :meth:`PartitionBatcher.add_rows`
the rows of many messages at once (each row naming its message), so single-fix
messages cost a few list operations each, not a chunk each.
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
    tags: list[T] = field(default_factory=list)   # whose rows these are (the MQTT message), run by run
    counts: list[int] = field(default_factory=list)  # rows of each run (``tags[i]`` has ``counts[i]``)
    fixes: int = 0
    started: float = 0.0

    def owners(self) -> list[tuple[T, int]]:
        """Each run's owner and its number of rows, in row order (an owner may appear again later)."""
        return list(zip(self.tags, self.counts))

    def payload(self) -> bytes:
        return wire.encode(concat(self.chunks))


def _runs(tags: list[T]) -> tuple[list[T], list[int]]:
    """Run-length encoding of the per-row owners ``tags`` (by identity)."""
    out: list[T] = []
    counts: list[int] = []
    last: object = _NONE
    for t in tags:
        if t is last:
            counts[-1] += 1
        else:
            out.append(t)
            counts.append(1)
            last = t
    return out, counts


_NONE = object()


def _split_runs(tags: list[T], counts: list[int], k: int) -> tuple[list[T], list[int], list[T], list[int]]:
    """The runs of the first ``k`` rows and of the rest (a run straddling ``k`` is cut in two)."""
    done = 0
    for j, c in enumerate(counts):
        if done + c >= k:
            head = k - done
            tail_tags, tail_counts = tags[j:], [c - head, *counts[j + 1:]]
            if head == c:
                tail_tags, tail_counts = tags[j + 1:], counts[j + 1:]
            return tags[:j + 1], [*counts[:j], head], tail_tags, tail_counts
        done += c
    return tags, counts, [], []


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
        full: list[Batch[T]] = []
        for p, rows in self._by_partition(cols):
            chunk = cols if rows is None else cols.take(rows)
            self._append(p, chunk, [tag], [len(chunk)], now, full)
        return full

    def add_rows(self, cols: FixColumns, tags: list[T], now: float) -> list[Batch[T]]:
        """Buffer the rows of many messages (row ``i`` is ``tags[i]``'s); returns the batches now full."""
        if len(tags) != len(cols):
            raise ValueError(f"{len(tags)} owners for {len(cols)} rows")
        full: list[Batch[T]] = []
        for p, rows in self._by_partition(cols):
            chunk, mine = (cols, tags) if rows is None else (cols.take(rows), [tags[i] for i in rows.tolist()])
            self._append(p, chunk, *_runs(mine), now, full)
        return full

    def _by_partition(self, cols: FixColumns) -> list[tuple[int, np.ndarray | None]]:
        """Each partition the rows go to and its rows in order (None: all of them)."""
        if not len(cols):
            return []
        parts = self.partitions_of(cols.vehicle_id)
        if parts.count(parts[0]) == len(parts):  # one vehicle, or vehicles of one partition: no split
            return [(parts[0], None)]
        p = np.asarray(parts)
        order = np.argsort(p, kind="stable")  # stable: each partition's rows keep their order
        return [(parts[rows[0]], rows) for rows in np.split(order, np.flatnonzero(np.diff(p[order])) + 1)]

    def _append(self, p: int, chunk: FixColumns, tags: list[T], counts: list[int], now: float,
                full: list[Batch[T]]) -> None:
        while True:
            batch = self._open.get(p)
            if batch is None:
                batch = self._open[p] = Batch(p, chunk.vehicle_id[0].encode(), started=now)
            room = self.max_fixes - batch.fixes
            if len(chunk) <= room:
                head, rest, head_tags, head_counts = chunk, None, tags, counts
            else:
                head, rest = chunk.take(np.arange(room)), chunk.take(np.arange(room, len(chunk)))
                head_tags, head_counts, tags, counts = _split_runs(tags, counts, room)
            batch.chunks.append(head)
            if batch.tags and head_tags[0] is batch.tags[-1]:  # the same message goes on: one run
                batch.counts[-1] += head_counts[0]
                batch.tags.extend(head_tags[1:])
                batch.counts.extend(head_counts[1:])
            else:
                batch.tags.extend(head_tags)
                batch.counts.extend(head_counts)
            batch.fixes += len(head)
            if batch.fixes >= self.max_fixes:
                full.append(self._open.pop(p))
            if rest is None:
                return
            chunk = rest

    def next_due(self) -> float | None:
        """When the oldest open batch is due (its start + ``linger_s``), None if none is open."""
        return min(b.started for b in self._open.values()) + self.linger_s if self._open else None

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
