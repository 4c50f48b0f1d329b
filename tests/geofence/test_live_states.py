"""Write-behind of vehicle states: what reaches the tracks table at once, at a checkpoint, on a rebalance."""

from __future__ import annotations

from engine.geofence.live_states import LiveStates, is_durable


def state(ts: float, zones: dict | None = None, **extra) -> dict:
    return {"ts": ts, "x": 0.0, "y": 0.0, "class": "taxi", "zones": zones or {}, **extra}


def test_position_only_waits_for_the_checkpoint_and_zone_changes_do_not():
    table: dict = {}
    ls = LiveStates(table, partition_of=lambda vid: 0)
    moved, entered = state(2.0), state(2.0, {"z": {"n": 1}})
    ls.put(0, "a", moved, durable=is_durable(state(1.0), moved, alerted=False))
    ls.put(0, "b", entered, durable=is_durable(state(1.0), entered, alerted=False))
    assert "a" not in table and table["b"] is entered
    assert ls.pending == 1
    assert ls.flush() == 1 and table["a"] is moved and ls.pending == 0


def test_new_vehicles_alerts_suspects_and_offline_marks_are_durable():
    old = state(1.0)
    assert is_durable(None, state(1.0), alerted=False)
    assert is_durable(old, state(2.0), alerted=True)
    assert is_durable(old, state(2.0, sus=[[2.0, 1.0, 1.0]]), alerted=False)
    assert is_durable({**old, "off": {"alert": "x", "since": 1}}, state(2.0), alerted=False)
    assert not is_durable(old, state(2.0, pos=[10, 0]), alerted=False)


def test_reads_fall_back_to_the_table_and_release_flushes_then_forgets():
    table = {"a": state(1.0)}
    ls = LiveStates(table, partition_of=lambda vid: 0)
    assert ls.get(0, "a") is table["a"]          # restored from the changelog
    newer = state(5.0)
    ls.put(0, "a", newer, durable=False)
    table["a"] = state(1.0)                      # the table still holds the older one
    assert ls.get(0, "a") is newer               # memory wins while the partition is ours
    assert ls.release() == 1 and table["a"] is newer
    assert len(ls) == 0 and ls.get(0, "a") is newer   # read back from the table


def test_owned_reads_in_silent_vehicles_of_new_partitions_once():
    table = {"a": state(1.0), "b": state(1.0), "c": state(1.0)}
    part = {"a": 0, "b": 1, "c": 0}
    ls = LiveStates(table, partition_of=part.__getitem__)
    got = dict(ls.owned([0]))
    assert sorted(v for v, _ in got[0]) == ["a", "c"]
    table["d"] = state(1.0)                       # written by someone else later: not read again
    part["d"] = 0
    assert sorted(v for v, _ in dict(ls.owned([0]))[0]) == ["a", "c"]
    ls.put(0, "e", state(2.0), durable=False)
    assert sorted(v for v, _ in dict(ls.owned([0, 1]))[0]) == ["a", "c", "e"]
    assert [v for v, _ in dict(ls.owned([0, 1]))[1]] == ["b"]
