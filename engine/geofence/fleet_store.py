"""The vehicles of the partitions a worker owns, as arrays, kept durable in the ``tracks`` table.

Each partition's vehicles live in one :class:`engine.geofence.fleet.PartitionFleet` (a row a vehicle, rows
never reused). The ``tracks`` table (a Faust table, so its changelog restores a partition on whichever worker
takes it next) holds two kinds of entries, both on the partition of the vehicles they describe:

- **blocks**: rows ``b * BLOCK_ROWS`` to ``(b + 1) * BLOCK_ROWS`` of partition ``p`` as one binary record under
  the key ``#fleet/<p>/<b>/<salt>`` (``#`` is never in a vehicle id; the salt makes the producer's partitioner
  put the key on ``p``). :meth:`FleetStore.flush` rewrites the blocks whose rows changed; the worker runs it
  every ``worker.checkpoint_s`` and before it gives partitions up. A vehicle that only moved costs its share of
  one block record per checkpoint instead of one changelog record per batch.
- **journal records**: the whole states of the vehicles whose zone membership, incidents, jump suspects,
  offline mark or open alarm episodes changed in one batch, or that raised an alert there
  (:func:`is_durable`), as one JSON object (vehicle id -> state) under ``#dur/<p>/<n>/<salt>`` (``n`` counts
  up per partition), written by :meth:`FleetStore.commit` before the batch's offsets are committed: an open
  incident, alarm episode or hysteresis is never only in memory, and a batch costs one changelog record for
  all its durable changes instead of one per vehicle. The next checkpoint writes the blocks of those vehicles
  and deletes the partition's journal records (tombstones), so the table holds about one block entry per
  ``BLOCK_ROWS`` vehicles.

What a worker killed with ``-9`` loses is at most ``worker.checkpoint_s`` of position-only updates.
A partition is read back the first time the worker touches it after getting it: its blocks in order, then its
journal records in order, a state there replacing its vehicle's row when it is at least as new (event time).
Entries of the earlier layouts (one JSON record per vehicle, under its id) are read the same way and become
blocks at the next checkpoint.

>>> table = {}
>>> store = FleetStore(table, partition_of=lambda key: 0)
>>> store.put(0, "v", {"ts": 1.0, "lat": 24.5, "lon": 118.1, "x": 0.0, "y": 0.0, "class": "taxi",
...                    "speed": 30.0, "zones": {}}, durable=False)
>>> store.get(0, "v")["speed"], store.commit(), len(table)
(30.0, 0, 0)
>>> store.flush(), sorted(k.split("/")[:3] for k in table)
(1, [['#fleet', '0', '0']])
>>> FleetStore(table, partition_of=lambda key: 0).get(0, "v")["ts"]
1.0
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from typing import Any

import numpy as np
import orjson

from engine.geofence.fleet import PartitionFleet

log = logging.getLogger(__name__)

State = dict[str, Any]
BLOCK_ROWS = 1024          # ~70 kB a block record
BLOCK_PREFIX = "#fleet/"
JOURNAL_PREFIX = "#dur/"
JOURNAL_MAX_BYTES = 256 * 1024   # well under Kafka's default 1 MB record limit


class FleetStore:
    def __init__(self, table: MutableMapping[str, Any], partition_of: Callable[[str], int]):
        self.table = table
        self.partition_of = partition_of      # a table key -> the partition the producer puts it on
        self._fleets: dict[int, PartitionFleet] = {}
        self._dirty: dict[int, set[int]] = {}      # partition -> blocks changed since their last write
        self._records: dict[int, set[str]] = {}    # partition -> vehicles with their own record (earlier layout)
        self._staged: dict[int, dict[str, State]] = {}  # partition -> durable states not yet in a journal record
        self._journals: dict[int, list[str]] = {}  # partition -> its journal keys in the table
        self._journal_seq: dict[int, int] = {}     # partition -> the next journal number
        self._keys: dict[tuple[int, int], str] = {}
        self._stale: dict[int, list[str]] = {}     # partition -> block keys of a layout read back and replaced

    # --- reading ---------------------------------------------------------------------------------------

    def fleet(self, partition: int) -> PartitionFleet:
        """The partition's fleet, read back from the table the first time."""
        fleet = self._fleets.get(partition)
        if fleet is None:
            fleet = self._fleets[partition] = self._restore(partition)
        return fleet

    def get(self, partition: int, vid: str) -> State | None:
        return self.fleet(partition).state(vid)

    def owned(self, partitions: Iterable[int]) -> Iterator[tuple[int, PartitionFleet]]:
        """The fleets of these partitions (read back where needed), in partition order."""
        for p in sorted(set(partitions)):
            yield p, self.fleet(p)

    def fleets(self) -> Iterator[PartitionFleet]:
        """The fleets read so far."""
        yield from self._fleets.values()

    def __len__(self) -> int:
        return sum(len(f) for f in self._fleets.values())

    @property
    def pending(self) -> int:
        """Blocks waiting for the next checkpoint."""
        return sum(len(b) for b in self._dirty.values())

    # --- writing ---------------------------------------------------------------------------------------

    def put(self, partition: int, vid: str, state: State, *, durable: bool) -> None:
        """One vehicle's new state; ``durable``: it goes to the table with the next :meth:`commit`."""
        self.put_many(partition, [(vid, state, durable)])

    def put_many(self, partition: int, changes: Sequence[tuple[str, State, bool]]) -> None:
        """:meth:`put` for ``(vehicle id, state, durable)`` of many vehicles of one partition."""
        if not changes:
            return
        fleet = self.fleet(partition)
        rows = fleet.put_states([c[0] for c in changes], [c[1] for c in changes])
        self._dirty.setdefault(partition, set()).update(np.unique(rows // BLOCK_ROWS).tolist())
        staged = None
        for vid, state, durable in changes:
            if durable:
                staged = self._staged.setdefault(partition, {}) if staged is None else staged
                staged[vid] = state

    def commit(self) -> int:
        """Write the durable states put since the last commit: a journal record per partition (more where one
        would pass ``JOURNAL_MAX_BYTES``); returns how many records."""
        staged, self._staged = self._staged, {}
        written = 0
        for p, states in staged.items():
            for value in _journal_values(states):
                n = self._journal_seq.get(p, 0)
                self._journal_seq[p] = n + 1
                key = self._salted(f"{JOURNAL_PREFIX}{p}/{n}/", p)
                self.table[key] = value
                self._journals.setdefault(p, []).append(key)
                written += 1
        return written

    def moved(self, partition: int, rows: np.ndarray) -> None:
        """Rows of the partition's fleet written in place (position-only): their blocks wait for the checkpoint."""
        if rows.size:
            self._dirty.setdefault(partition, set()).update((np.unique(rows // BLOCK_ROWS)).tolist())

    def flush(self) -> int:
        """Write every changed block, then drop the vehicle records those blocks now hold; returns the rows written."""
        written = 0
        dirty, self._dirty = self._dirty, {}
        self._staged.clear()   # the blocks written now hold those states
        for p, blocks in dirty.items():
            fleet = self._fleets.get(p)
            if fleet is None:
                continue
            for b in sorted(blocks):
                start = b * BLOCK_ROWS
                self.table[self._block_key(p, b)] = fleet.pack(start, start + BLOCK_ROWS)
                written += min(len(fleet), start + BLOCK_ROWS) - start
            for key in [*self._stale.pop(p, []), *self._journals.pop(p, [])]:   # every vehicle there is in a block
                self.table.pop(key, None)
            held = self._records.get(p)
            if held:
                for vid in [v for v in held if fleet.rows[v] // BLOCK_ROWS in blocks]:
                    held.discard(vid)
                    try:
                        del self.table[vid]   # a tombstone, after the block that holds the same state
                    except KeyError:
                        pass
        return written

    def release(self) -> int:
        """Before partitions go (a rebalance, a stop): flush, then forget; the next owner reads the table."""
        n = self.flush()
        self._fleets.clear()
        self._records.clear()
        self._stale.clear()
        self._journals.clear()
        self._journal_seq.clear()
        return n

    # --- the table's layout ----------------------------------------------------------------------------

    def _block_key(self, partition: int, block: int) -> str:
        key = self._keys.get((partition, block))
        if key is None:
            key = self._keys[partition, block] = self._salted(f"{BLOCK_PREFIX}{partition}/{block}/", partition)
        return key

    def _salted(self, stem: str, partition: int) -> str:
        """``stem`` + the first salt that makes the producer's partitioner put the key on ``partition``."""
        salt = 0
        while self.partition_of(key := f"{stem}{salt}") != partition:
            salt += 1
        return key

    def _restore(self, partition: int) -> PartitionFleet:
        blocks: list[tuple[int, bytes]] = []
        keys: list[tuple[int, str]] = []
        journals: list[tuple[int, str, Any]] = []
        records: list[tuple[str, Any]] = []
        for key, value in list(self.table.items()):
            if value is None:
                continue
            if key.startswith(BLOCK_PREFIX) or key.startswith(JOURNAL_PREFIX):
                parts = key.split("/")
                if len(parts) == 4 and parts[1] == str(partition) and parts[2].isdigit():
                    if key.startswith(BLOCK_PREFIX):
                        blocks.append((int(parts[2]), value))
                        keys.append((int(parts[2]), key))
                    else:
                        journals.append((int(parts[2]), key, value))
            elif self.partition_of(key) == partition:
                records.append((key, value))
        fleet = PartitionFleet()
        laid_out = True   # the fleet's rows are where the table's blocks have them
        for b, value in sorted(blocks):
            try:
                block = PartitionFleet.unpack(_as_bytes(value))
            except ValueError as exc:
                log.error("tracks: block %d of partition %d is unreadable (%s); its vehicles start afresh",
                          b, partition, exc)
                laid_out = False
                continue
            if block.first == len(fleet) == b * BLOCK_ROWS and not any(v in fleet.rows for v in block.ids):
                fleet.extend(block)
                continue
            laid_out = False
            for vid, st in block.items():
                _merge(fleet, vid, st)
        held = self._records.setdefault(partition, set())
        for vid, value in records:
            try:
                st = orjson.loads(value) if isinstance(value, (bytes, bytearray, str)) else value
            except orjson.JSONDecodeError as exc:
                log.error("tracks: the record of a vehicle on partition %d is unreadable (%s)", partition, exc)
                continue
            if isinstance(st, dict) and _merge(fleet, vid, st):
                held.add(vid)
        journaled: set[str] = set()
        for n, _key, value in sorted(journals):
            try:
                entries = orjson.loads(value) if isinstance(value, (bytes, bytearray, str)) else value
            except orjson.JSONDecodeError as exc:
                log.error("tracks: journal record %d of partition %d is unreadable (%s)", n, partition, exc)
                entries = {}
            for vid, st in (entries.items() if isinstance(entries, dict) else ()):
                if isinstance(st, dict) and _merge(fleet, vid, st):
                    journaled.add(vid)
        self._journals[partition] = [key for _, key, _ in sorted(journals)]   # deleted at the next checkpoint
        self._journal_seq[partition] = max((n for n, _, _ in journals), default=-1) + 1
        dirty = self._dirty.setdefault(partition, set())
        if not laid_out:   # rewrite every block: the table's layout is not this fleet's
            count = (len(fleet) + BLOCK_ROWS - 1) // BLOCK_ROWS
            dirty.update(range(count))
            self._stale[partition] = [k for b, k in keys if b >= count or k != self._block_key(partition, b)]
        dirty.update(fleet.rows[v] // BLOCK_ROWS for v in held | journaled if v in fleet.rows)
        if len(fleet):
            log.info("tracks: partition %d restored: %d vehicles from %d blocks, %d journal records and %d vehicle "
                     "records", partition, len(fleet), len(blocks), len(journals), len(records))
        return fleet


def _journal_values(states: dict[str, State]) -> Iterator[bytes]:
    """``states`` as JSON objects (vehicle id -> state) of at most ``JOURNAL_MAX_BYTES`` each (one vehicle at least).

    >>> [orjson.loads(v) for v in _journal_values({"a": {"ts": 1}, "b": {"ts": 2}})]
    [{'a': {'ts': 1}, 'b': {'ts': 2}}]
    """
    parts: list[bytes] = []
    size = 2
    for vid, st in states.items():
        item = orjson.dumps(vid) + b":" + orjson.dumps(st)
        if parts and size + len(item) + 1 > JOURNAL_MAX_BYTES:
            yield b"{" + b",".join(parts) + b"}"
            parts, size = [], 2
        parts.append(item)
        size += len(item) + 1
    if parts:
        yield b"{" + b",".join(parts) + b"}"


def _merge(fleet: PartitionFleet, vid: str, st: State) -> bool:
    """Take ``st`` for ``vid`` unless the fleet holds a newer state; whether it was taken.

    A vehicle whose terminal has had no position lock yet but raised an alarm has a state without a position
    (JSON ``null`` for its time and coordinates): it is taken while the fleet holds no position for it, so its
    open episode survives a restart.
    """
    if st.get("ts") is None and isinstance(st.get("alarms"), dict) and st["alarms"]:
        have = fleet.state(vid)
        if have is not None and have["ts"] == have["ts"]:   # a real position (not NaN) is newer than none
            return False
        st = {**st, **{k: math.nan for k in ("ts", "lat", "lon", "x", "y") if st.get(k) is None}}
    if not isinstance(st.get("ts"), (int, float)):
        return False
    have = fleet.state(vid)
    if have is not None and have["ts"] > st["ts"]:
        return False
    try:
        fleet.put_state(vid, st)
    except (KeyError, TypeError, ValueError) as exc:
        log.error("tracks: a stored vehicle state is incomplete (%s); the vehicle starts afresh", exc)
        return False
    return True


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else bytes(value)


def is_durable(old: State | None, new: State, alerted: bool) -> bool:
    """Must this new state reach the table now (not only at the next checkpoint)?

    >>> a = {"ts": 1.0, "zones": {}}
    >>> is_durable(a, {"ts": 2.0, "zones": {}}, False), is_durable(a, {"ts": 2.0, "zones": {"z": {}}}, False)
    (False, True)
    >>> is_durable(a, {"ts": 2.0, "zones": {}, "alarms": {"emergency": 2.0}}, False)
    True
    """
    if alerted:
        return True
    if old is None:
        return bool(new.get("zones") or new.get("sus") or "off" in new or new.get("alarms"))
    return (old.get("zones") != new.get("zones") or old.get("sus") != new.get("sus")
            or ("off" in old) != ("off" in new) or old.get("alarms") != new.get("alarms"))
