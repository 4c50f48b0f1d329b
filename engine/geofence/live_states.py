"""Vehicle states in memory, written behind to the ``tracks`` table.

The worker reads and updates a vehicle's state once per batch. Writing it to
the table each time costs a changelog record per vehicle per batch, the
largest per-vehicle cost of the pipeline. Here:

- a state whose zone membership, incidents, jump suspects or offline mark
  changed, or that raised an alert, is written to the table at once
  (*durable*): an open incident or its hysteresis is never only in memory;
- a state that only moved the vehicle (position, speed, log position) stays
  in memory and is *checkpointed* to the table by :meth:`LiveStates.flush`,
  which the worker runs every ``worker.checkpoint_s`` and before it gives up
  partitions in a rebalance.

What a worker killed with ``-9`` loses is therefore at most
``worker.checkpoint_s`` of position-only updates (README "Failover"). States
are grouped by the partition their fixes came from, so the offline scan and
a rebalance work per partition without hashing every key again.

States are shared with the table, never copied: the checker returns new
dicts and nothing mutates a state once it is stored, so one object serves
both (memory per vehicle counts once).

>>> table = {}
>>> ls = LiveStates(table, partition_of=lambda vid: 0)
>>> ls.put(0, "v", {"ts": 1.0, "zones": {}}, durable=False)
>>> ls.get(0, "v")["ts"], "v" in table
(1.0, False)
>>> ls.flush()
1
>>> table["v"] is ls.get(0, "v")
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

State = dict[str, Any]


class LiveStates:
    def __init__(self, table: MutableMapping[str, Any], partition_of: Callable[[str], int]):
        self.table = table
        self.partition_of = partition_of
        self._parts: dict[int, dict[str, State]] = {}
        self._dirty: dict[str, int] = {}          # vehicle -> partition, states not yet in the table
        self._loaded: set[int] = set()            # partitions whose table entries have all been read in

    def get(self, partition: int, vid: str) -> State | None:
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = {}
        st = part.get(vid)
        if st is None and partition not in self._loaded:
            st = self.table.get(vid)
            if st is not None:
                part[vid] = st
        return st

    def put(self, partition: int, vid: str, state: State, *, durable: bool) -> None:
        self._parts.setdefault(partition, {})[vid] = state
        if durable:
            self.table[vid] = state
            self._dirty.pop(vid, None)
        else:
            self._dirty[vid] = partition

    def flush(self) -> int:
        """Write every state changed since its last write to the table; returns how many."""
        dirty, self._dirty = self._dirty, {}
        for vid, p in dirty.items():
            st = self._parts.get(p, {}).get(vid)
            if st is not None:
                self.table[vid] = st
        return len(dirty)

    def release(self) -> int:
        """Before partitions go (a rebalance): flush, then forget; the next owner reads the table."""
        n = self.flush()
        self._parts.clear()
        self._loaded.clear()
        return n

    @property
    def pending(self) -> int:
        return len(self._dirty)

    def owned(self, partitions: Iterable[int]) -> Iterator[tuple[int, list[tuple[str, State]]]]:
        """Every state of these partitions, per partition, reading in the table's for new ones once."""
        wanted = set(partitions)
        missing = wanted - self._loaded
        if missing:   # once per partition and rebalance: vehicles known only from the changelog
            for vid, st in list(self.table.items()):
                p = self.partition_of(vid)
                if p in missing and st is not None:
                    self._parts.setdefault(p, {}).setdefault(vid, st)
            self._loaded |= missing
        for p in sorted(wanted):
            yield p, list(self._parts.get(p, {}).items())

    def all_states(self) -> Iterator[State]:
        for part in self._parts.values():
            yield from part.values()

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts.values())


def is_durable(old: State | None, new: State, alerted: bool) -> bool:
    """Must this new state reach the table now (not only at the next checkpoint)?

    >>> a = {"ts": 1.0, "zones": {}}
    >>> is_durable(a, {"ts": 2.0, "zones": {}}, False), is_durable(a, {"ts": 2.0, "zones": {"z": {}}}, False)
    (False, True)
    """
    if alerted or old is None:
        return True
    return (old.get("zones") != new.get("zones") or old.get("sus") != new.get("sus")
            or ("off" in old) != ("off" in new))
