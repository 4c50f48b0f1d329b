"""The fleet's durability in the tracks table: blocks at checkpoints, durable changes in one journal record a batch
at once, read back by the next owner of a partition."""

from __future__ import annotations

import zlib

import numpy as np
import orjson

from engine.geofence.fleet_store import BLOCK_PREFIX, BLOCK_ROWS, JOURNAL_PREFIX, FleetStore, is_durable


def state(ts: float, zones: dict | None = None, **extra) -> dict:
    return {"ts": ts, "lat": 24.5, "lon": 118.1, "x": ts, "y": 0.0, "class": "taxi", "speed": 30.0,
            "zones": zones or {}, **extra}


def two_partitions(key: str) -> int:
    """A stand-in for the producer's partitioner: any stable hash of the key's bytes."""
    return zlib.crc32(key.encode()) % 2


IN_ZONE = {"z": {"rule": "forbid", "in": True, "since": 1.0, "inc": "i1"}}


def test_position_only_waits_for_the_checkpoint_and_zone_changes_do_not():
    table: dict = {}
    store = FleetStore(table, partition_of=lambda key: 0)
    moved, entered = state(2.0), state(2.0, IN_ZONE)
    store.put(0, "a", moved, durable=is_durable(state(1.0), moved, alerted=False))
    store.put(0, "b", entered, durable=is_durable(state(1.0), entered, alerted=False))
    assert table == {} and store.commit() == 1
    [key] = table
    assert key.startswith(f"{JOURNAL_PREFIX}0/0/") and orjson.loads(table[key]) == {"b": entered}
    assert store.pending == 1
    assert store.flush() == 2 and store.pending == 0
    assert [k.split("/")[:3] for k in table] == [["#fleet", "0", "0"]]   # journal -> block


def test_one_journal_record_a_batch_and_partition_each_on_its_partition_read_in_order():
    table: dict = {}
    store = FleetStore(table, partition_of=two_partitions)
    vids = {p: [v for v in (f"闽D{i:05d}" for i in range(40)) if two_partitions(v) == p][:3] for p in (0, 1)}
    for p in (0, 1):
        for vid in vids[p]:
            store.put(p, vid, state(1.0, IN_ZONE), durable=True)
    assert store.commit() == 2
    store.put(0, vids[0][0], state(2.0), durable=True)   # left the zone in the next batch
    assert store.commit() == 1
    journals = sorted(k for k in table if k.startswith(JOURNAL_PREFIX))
    assert [k.split("/")[1:3] for k in journals] == [["0", "0"], ["0", "1"], ["1", "0"]]
    assert all(two_partitions(k) == int(k.split("/")[1]) for k in journals)
    nxt = FleetStore(dict(table), partition_of=two_partitions)
    assert nxt.get(0, vids[0][0]) == state(2.0) and nxt.get(0, vids[0][1]) == state(1.0, IN_ZONE)
    assert nxt.get(1, vids[1][2]) == state(1.0, IN_ZONE)
    nxt.put(0, vids[0][1], state(3.0), durable=True)
    nxt.commit()
    assert sorted(k.split("/")[2] for k in nxt.table if k.startswith(f"{JOURNAL_PREFIX}0/")) == ["0", "1", "2"]
    nxt.flush()
    assert not any(k.startswith(JOURNAL_PREFIX) for k in nxt.table)   # all in blocks now
    assert FleetStore(dict(nxt.table), two_partitions).get(0, vids[0][1]) == state(3.0)


def test_new_vehicles_alerts_suspects_and_offline_marks_are_durable():
    old = state(1.0)
    assert not is_durable(None, state(1.0), alerted=False)      # a new vehicle far from zones: a position only
    assert is_durable(None, state(1.0, IN_ZONE), alerted=False)
    assert is_durable(old, state(2.0), alerted=True)
    assert is_durable(old, state(2.0, sus=[[2.0, 1.0, 1.0]]), alerted=False)
    assert is_durable({**old, "off": {"alert": "x", "since": 1}}, state(2.0), alerted=False)
    assert not is_durable(old, state(2.0, pos=10 << 20), alerted=False)


def test_the_next_owner_reads_blocks_then_newer_vehicle_records():
    table: dict = {}
    store = FleetStore(table, partition_of=two_partitions)
    ids = [f"闽D{i:05d}" for i in range(3 * BLOCK_ROWS + 5)]
    mine = {0: [v for v in ids if two_partitions(v) == 0], 1: [v for v in ids if two_partitions(v) == 1]}
    for p, vids in mine.items():
        for k, vid in enumerate(vids):
            store.put(p, vid, state(float(k)), durable=False)
    assert store.flush() == len(ids)
    assert all(two_partitions(k) == int(k.split("/")[1]) for k in table)   # each block on its partition
    store.put(0, mine[0][3], state(1e6, IN_ZONE), durable=True)   # after the checkpoint: a journal record only
    store.put(0, mine[0][4], state(2e6), durable=False)           # lost with a kill: not yet checkpointed
    store.commit()
    nxt = FleetStore(dict(table), partition_of=two_partitions)
    assert nxt.get(0, mine[0][3]) == state(1e6, IN_ZONE)
    assert nxt.get(0, mine[0][4]) == state(4.0)
    assert len(nxt.fleet(0)) == len(mine[0]) and len(nxt.fleet(1)) == len(mine[1])
    assert list(nxt.fleet(0).ids) == list(store.fleet(0).ids)              # the rows where the blocks have them
    assert nxt.pending == 1                                      # the journaled vehicle's block is rewritten next
    nxt.flush()
    assert not any(k.startswith(JOURNAL_PREFIX) for k in nxt.table)


def test_release_flushes_and_forgets_then_reads_back():
    table: dict = {}
    store = FleetStore(table, partition_of=lambda key: 0)
    store.put(0, "a", state(5.0), durable=False)
    assert store.release() == 1 and len(store) == 0
    assert store.get(0, "a") == state(5.0)


def test_records_of_the_earlier_layout_are_read_and_become_blocks():
    table = {f"v{i}": orjson.dumps(state(float(i), IN_ZONE if i == 3 else None, pos=[i, 0])) for i in range(10)}
    store = FleetStore(table, partition_of=lambda key: 0)
    assert store.get(0, "v3")["zones"] == IN_ZONE and store.get(0, "v7")["pos"] == 7 << 20
    assert store.flush() == 10
    assert not any(k.startswith("v") for k in table) and len(FleetStore(table, lambda key: 0).fleet(0)) == 10


def test_an_unreadable_block_loses_only_its_own_vehicles_and_the_rest_are_rewritten():
    table: dict = {}
    store = FleetStore(table, partition_of=lambda key: 0)
    for i in range(2 * BLOCK_ROWS):
        store.put(0, f"v{i}", state(float(i)), durable=False)
    store.flush()
    first = next(k for k in table if k.startswith(f"{BLOCK_PREFIX}0/0/"))
    table[first] = b"garbage"
    nxt = FleetStore(table, partition_of=lambda key: 0)
    fleet = nxt.fleet(0)
    assert len(fleet) == BLOCK_ROWS and fleet.state(f"v{BLOCK_ROWS}") == state(float(BLOCK_ROWS))
    assert nxt.pending == 1 and nxt.flush() == BLOCK_ROWS         # laid out anew: block 0 now holds them
    assert len(FleetStore(table, lambda key: 0).fleet(0)) == BLOCK_ROWS
    assert len([k for k in table if k.startswith(BLOCK_PREFIX)]) == 1     # the old block 1 is gone


def test_moved_rows_mark_their_blocks():
    store = FleetStore({}, partition_of=lambda key: 0)
    for i in range(3 * BLOCK_ROWS):
        store.put(0, f"v{i}", state(1.0), durable=False)
    store.flush()
    store.moved(0, np.array([1, 2, 2 * BLOCK_ROWS + 7]))
    assert store.pending == 2 and store.flush() == 2 * BLOCK_ROWS


def test_a_large_batch_of_durable_changes_is_split_into_records_under_the_size_bound():
    from engine.geofence.fleet_store import JOURNAL_MAX_BYTES

    table: dict = {}
    store = FleetStore(table, partition_of=lambda key: 0)
    n = 3 * JOURNAL_MAX_BYTES // 150
    for i in range(n):
        store.put(0, f"v{i}", state(float(i), IN_ZONE), durable=True)
    assert store.commit() > 1
    assert all(len(v) <= JOURNAL_MAX_BYTES for v in table.values())
    nxt = FleetStore(dict(table), partition_of=lambda key: 0)
    assert len(nxt.fleet(0)) == n and nxt.get(0, f"v{n - 1}") == state(float(n - 1), IN_ZONE)
