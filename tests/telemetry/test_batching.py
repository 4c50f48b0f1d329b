"""Partition batches: same hash as Kafka's default partitioner, flushed by size or age, rows kept in order."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from engine.telemetry.batching import PartitionBatcher, partition_for
from engine.telemetry.columns import from_fixes
from engine.telemetry.models import Fix
from engine.telemetry.wire import decode


def fixes(*vids: str, t0: float = 1_788_832_800.0) -> list[Fix]:
    return [Fix(vid, t0 + i, 24.5, 118.1) for i, vid in enumerate(vids)]


@given(st.text(min_size=1, max_size=20), st.integers(1, 64))
def test_partition_matches_kafkas_default_partitioner(vid, n):
    key = vid.encode()
    assert partition_for(key, n) == DefaultPartitioner()(key, list(range(n)), list(range(n)))


@given(st.lists(st.text(min_size=1, max_size=8), max_size=60), st.integers(1, 16), st.integers(1, 5))
def test_cached_partitions_are_kafkas_also_once_the_cache_starts_over(vids, n, cache_max):
    b: PartitionBatcher[str] = PartitionBatcher(n, max_fixes=10, linger_s=1.0, cache_max=cache_max)
    for _ in range(2):
        assert b.partitions_of(vids) == [partition_for(v.encode(), n) for v in vids]
    assert len(b._partition_of) <= cache_max


def test_full_batches_are_returned_and_keep_order():
    b: PartitionBatcher[str] = PartitionBatcher(4, max_fixes=3, linger_s=1.0)
    vid = "闽DA0001"
    first, second = fixes(vid, vid), fixes(vid, vid, t0=1_788_832_900.0)
    assert b.add(from_fixes(first), "m1", 0.0) == []
    [full] = b.add(from_fixes(second), "m2", 0.0)  # one row fits; the other opens the next batch
    assert full.fixes == 3 and full.tags == ["m1", "m2"] and [len(c) for c in full.chunks] == [2, 1]
    assert full.partition == partition_for(vid.encode(), 4) and full.key == vid.encode()
    assert decode(full.payload()).fixes() == first + second[:1]
    assert len(b) == 1
    [rest] = b.drain()
    assert rest.tags == ["m2"] and decode(rest.payload()).fixes() == second[1:]


def test_a_mixed_message_goes_to_each_vehicles_partition_in_order():
    vids = [f"闽D{i:05d}" for i in range(30)] * 3
    msg = fixes(*vids)
    b: PartitionBatcher[str] = PartitionBatcher(6, max_fixes=1000, linger_s=1.0)
    assert b.add(from_fixes(msg), "m", 0.0) == []
    assert len(b) == len(msg)
    batches = b.drain()
    got = []
    for batch in batches:
        rows = decode(batch.payload()).fixes()
        assert {partition_for(f.vehicle_id.encode(), 6) for f in rows} == {batch.partition}
        assert partition_for(batch.key, 6) == batch.partition and batch.tags == ["m"]
        assert rows == [f for f in msg if partition_for(f.vehicle_id.encode(), 6) == batch.partition]
        got += rows
    assert sorted(got, key=lambda f: f.ts) == msg


@given(st.lists(st.lists(st.integers(0, 9), max_size=12), max_size=12), st.integers(1, 7))
def test_batches_never_exceed_max_fixes_lose_nothing_and_keep_each_vehicles_order(messages, max_fixes):
    b: PartitionBatcher[int] = PartitionBatcher(3, max_fixes=max_fixes, linger_s=1.0)
    sent: list[tuple[Fix, int]] = []
    full = []
    for m, vehicles in enumerate(messages):
        msg = [Fix(f"V{v}", 1_788_832_800.0 + len(sent) + i, 24.5, 118.1) for i, v in enumerate(vehicles)]
        sent += [(f, m) for f in msg]
        out = b.add(from_fixes(msg), m, 0.0)
        assert all(x.fixes == max_fixes for x in out)
        full += out
    got: list[tuple[Fix, int]] = []
    by_vehicle: dict[str, list[float]] = {}
    for x in full + b.drain():  # a partition's batches in the order they are sent
        assert 0 < x.fixes <= max_fixes and sum(len(c) for c in x.chunks) == x.fixes
        got += [(f, tag) for c, tag in zip(x.chunks, x.tags) for f in c.fixes()]
        for f in decode(x.payload()).fixes():
            by_vehicle.setdefault(f.vehicle_id, []).append(f.ts)
    assert sorted(got, key=lambda p: p[0].ts) == sent  # each fix once, with its message
    assert all(ts == sorted(ts) for ts in by_vehicle.values())


def test_linger_and_drain():
    b: PartitionBatcher[str] = PartitionBatcher(8, max_fixes=100, linger_s=0.5)
    vids = [f"v{i}" for i in range(20)]
    for f in fixes(*vids):
        b.add(from_fixes([f]), "m", 10.0)
    assert b.due(10.4) == []
    due = b.due(10.5)
    assert sum(x.fixes for x in due) == 20 and len(b) == 0
    assert all(partition_for(x.key, 8) == x.partition for x in due)
    one = fixes(vids[0])
    b.add(from_fixes(one), "m", 11.0)
    [single] = b.drain()
    assert decode(single.payload()).fixes() == one


def test_an_empty_message_adds_nothing():
    b: PartitionBatcher[str] = PartitionBatcher(8, max_fixes=100, linger_s=0.5)
    assert b.add(from_fixes([]), "m", 0.0) == [] and len(b) == 0 and b.drain() == []


def test_a_batch_that_cannot_be_encoded_says_so_with_a_value_error():
    """The bridge catches it (validated fixes always encode) and rejects the batch's messages whole."""
    b: PartitionBatcher[str] = PartitionBatcher(1, max_fixes=10, linger_s=1.0)
    b.add(from_fixes(fixes("V1")), "good", 0.0)
    b.add(from_fixes(fixes("V\x002")), "bad", 0.0)
    [batch] = b.drain()
    assert batch.tags == ["good", "bad"]
    with pytest.raises(ValueError, match="vehicle id contains NUL"):
        batch.payload()


@given(st.lists(st.integers(0, 9), max_size=80), st.integers(1, 7), st.integers(1, 5))
def test_rows_of_many_messages_keep_their_owners_and_each_vehicles_order(vehicles, max_fixes, per_message):
    """``add_rows``: row i is owned by message i // per_message; every batch says whose rows it holds, in order."""
    b: PartitionBatcher[str] = PartitionBatcher(3, max_fixes=max_fixes, linger_s=1.0)
    sent = [Fix(f"V{v}", 1_788_832_800.0 + i, 24.5, 118.1) for i, v in enumerate(vehicles)]
    names = [f"m{j}" for j in range(len(sent))]  # one object per message: runs are told apart by identity
    owners = [names[i // per_message] for i in range(len(sent))]
    full = b.add_rows(from_fixes(sent), owners, 0.0) if sent else []
    assert all(x.fixes == max_fixes for x in full)
    got: list[tuple[Fix, str]] = []
    for x in full + b.drain():
        rows = decode(x.payload()).fixes()
        assert 0 < x.fixes <= max_fixes and sum(x.counts) == x.fixes == len(rows)
        assert {partition_for(f.vehicle_id.encode(), 3) for f in rows} == {x.partition}
        assert all(a is not c for a, c in zip(x.tags, x.tags[1:]))  # one run per owner in a row
        mine = [tag for tag, n in x.owners() for _ in range(n)]
        got += list(zip(rows, mine, strict=True))
    assert sorted(got, key=lambda p: p[0].ts) == list(zip(sent, owners))  # each row once, with its owner
    by_vehicle: dict[str, list[float]] = {}
    for f, _ in got:  # batches of one partition in the order they were closed
        by_vehicle.setdefault(f.vehicle_id, []).append(f.ts)
    assert all(ts == sorted(ts) for ts in by_vehicle.values())


def test_rows_need_one_owner_each():
    b: PartitionBatcher[str] = PartitionBatcher(3, max_fixes=10, linger_s=1.0)
    with pytest.raises(ValueError, match="2 owners for 1 rows"):
        b.add_rows(from_fixes(fixes("V1")), ["a", "b"], 0.0)


def test_next_due_is_the_oldest_open_batch_plus_the_linger():
    b: PartitionBatcher[str] = PartitionBatcher(8, max_fixes=100, linger_s=0.5)
    assert b.next_due() is None
    for t, vid in ((10.0, "v1"), (10.2, "v2"), (10.1, "v3")):
        b.add(from_fixes(fixes(vid)), vid, t)
    assert b.next_due() == pytest.approx(min(x.started for x in b._open.values()) + 0.5)
    b.due(11.0)
    assert b.next_due() is None
