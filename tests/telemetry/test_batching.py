"""Partition batches: same hash as Kafka's default partitioner, flushed by size or age."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from engine.telemetry.batching import PartitionBatcher, partition_for


@given(st.text(min_size=1, max_size=20), st.integers(1, 64))
def test_partition_matches_kafkas_default_partitioner(vid, n):
    key = vid.encode()
    assert partition_for(key, n) == DefaultPartitioner()(key, list(range(n)), list(range(n)))


def test_full_batches_are_returned_and_keep_order():
    b: PartitionBatcher[str] = PartitionBatcher(4, max_fixes=3, linger_s=1.0)
    key = "闽DA0001".encode()
    assert b.add(key, b"1", "m1", 0.0) is None
    assert b.add(key, b"2", "m1", 0.0) is None
    full = b.add(key, b"3", "m2", 0.0)
    assert full is not None and full.values == [b"1", b"2", b"3"] and full.tags == ["m1", "m1", "m2"]
    assert full.partition == partition_for(key, 4) and full.key == key
    assert full.payload() == b"[1,2,3]" and len(b) == 0


def test_linger_and_drain():
    b: PartitionBatcher[str] = PartitionBatcher(8, max_fixes=100, linger_s=0.5)
    keys = [f"v{i}".encode() for i in range(20)]
    for k in keys:
        b.add(k, b"{}", "m", 10.0)
    assert b.due(10.4) == []
    due = b.due(10.5)
    assert sum(len(x.values) for x in due) == 20 and len(b) == 0
    assert all(partition_for(k, 8) == x.partition for x in due for k in [x.key])
    b.add(keys[0], b"{}", "m", 11.0)
    [single] = b.drain()
    assert single.payload() == b"{}"  # a one-fix batch is a plain object, as single-fix messages always were
