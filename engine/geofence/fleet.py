"""The fleet of one partition as arrays: one row per tracked vehicle, Python objects only for the few near a zone.

A vehicle's live state is its last accepted fix (time, position, projected position, speed, class) and its
place in the log; these are columns here (about 50 bytes a vehicle), found through a ``vehicle id -> row``
index of arrays (engine.geofence.id_index, ~24 bytes a vehicle besides its id). What only vehicles in or near a zone have (per-zone incident state, pending jump suspects, an offline
mark, open terminal-alarm episodes) is kept per row in ``extra``, as the checker's dicts. The bits of a row's
open alarm episodes are also the column ``alarm`` (engine.geofence.alarms.open_bits of its ``alarms``), so the
fast lane compares a batch's ``alarm_flags`` with them without a Python look; it is derived from ``extra``
wherever a row is written or read back, and not a column of the checkpoint record.

:meth:`PartitionFleet.state` and :meth:`PartitionFleet.put_state` convert one row to and from the dict the
checker's per-fix path reads and returns (``ts``, ``lat``, ``lon``, ``x``, ``y``, ``class``, ``speed``,
``zones``, and ``pos``, ``sus``, ``off``, ``alarms`` when present), so the fast lane and the per-fix path share
one store.
:meth:`PartitionFleet.pack` and :meth:`PartitionFleet.unpack` write a range of rows as one binary record (its
first row, the columns, the ids joined by NUL, the extras as JSON): the checkpoint blocks of
engine.geofence.fleet_store. Its layout (``CWS`` version 2) is unchanged since before the ``alarm`` column:
open alarm episodes travel in the extras, so blocks of either version read in the other.

>>> f = PartitionFleet()
>>> f.put_state("闽DH0001", {"ts": 1.0, "lat": 24.5, "lon": 118.1, "x": 1.0, "y": 2.0, "class": "hazmat",
...                          "speed": 30.0, "zones": {}, "pos": 7})
0
>>> f.state("闽DH0001")["class"], f.state("闽DH0001")["pos"], f.state("nobody")
('hazmat', 7, None)
>>> g = PartitionFleet.unpack(f.pack())
>>> g.state("闽DH0001") == f.state("闽DH0001")
True
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from engine.geofence.alarms import open_bits
from engine.geofence.id_index import IdIndex
from engine.geofence.intake import stored_position
from engine.telemetry.models import CLASSES

_COLUMNS = (("ts", "<f8"), ("lat", "<f8"), ("lon", "<f8"), ("x", "<f8"), ("y", "<f8"), ("speed", "<f8"),
            ("pos", "<i8"), ("class_code", "u1"))
_FILL = {"ts": np.nan, "lat": np.nan, "lon": np.nan, "x": np.nan, "y": np.nan, "speed": np.nan, "pos": -1,
         "class_code": 0}
_EXTRA_KEYS = ("zones", "sus", "off", "alarms")
_MAGIC = b"CWS\x02"
_HEADER = struct.Struct("<4sIIII")   # magic+version, first row, rows, ids bytes, extras bytes
NO_ZONES: dict[str, dict] = {}  # shared by every state near no zone (never mutated)


class PartitionFleet:
    """Every vehicle of one partition this worker has seen, one row each."""

    # the columns of ``_COLUMNS`` (set by name in __init__ and _grow)
    ts: NDArray[np.float64]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    speed: NDArray[np.float64]
    pos: NDArray[np.int64]
    class_code: NDArray[np.uint8]
    alarm: NDArray[np.uint8]   # bits of the open alarm episodes (derived from ``extra``; not in the record)

    def __init__(self, capacity: int = 1024):
        self.first = 0   # the row this fleet's row 0 stands for (a checkpoint block's place in its partition)
        self.rows = IdIndex(capacity)   # vehicle id -> row
        self.extra: dict[int, dict[str, Any]] = {}
        self.classes: list[str] = list(CLASSES)
        self._class_codes = {c: i for i, c in enumerate(self.classes)}
        for name, dtype in _COLUMNS:
            setattr(self, name, np.full(capacity, _FILL[name], dtype=dtype))
        self.alarm = np.zeros(capacity, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> np.ndarray:
        """The vehicle id of each row."""
        return self.rows.ids

    def __contains__(self, vid: str) -> bool:
        return vid in self.rows

    def lookup(self, ids: Sequence[str]) -> np.ndarray:
        """The row of each id, -1 for a vehicle not seen yet."""
        return self.rows.lookup(ids)

    def add(self, ids: Sequence[str]) -> np.ndarray:
        """Rows for ids not seen yet (each once, in order); returns them."""
        rows = self.rows.add(ids)
        self._grow(len(self.rows))
        return rows

    def code_of_class(self, vclass: str) -> int:
        code = self._class_codes.get(vclass)
        if code is None:
            if len(self.classes) >= 255:
                raise ValueError("more than 255 vehicle classes in one partition")
            code = self._class_codes[vclass] = len(self.classes)
            self.classes.append(vclass)
        return code

    def write(self, rows: np.ndarray, *, ts: np.ndarray, lat: np.ndarray, lon: np.ndarray, x: np.ndarray,
              y: np.ndarray, speed: np.ndarray, class_code: np.ndarray, pos: np.ndarray | None = None) -> None:
        """Vectorised update of the rows' last fix (``class_code`` in this fleet's class table)."""
        self.ts[rows], self.lat[rows], self.lon[rows] = ts, lat, lon
        self.x[rows], self.y[rows], self.speed[rows], self.class_code[rows] = x, y, speed, class_code
        if pos is not None:
            self.pos[rows] = pos

    # --- one row as the checker's dict -----------------------------------------------------------------

    def state(self, vid: str) -> dict[str, Any] | None:
        return self.state_at(self.rows.get(vid))

    def state_at(self, r: int | None) -> dict[str, Any] | None:
        """Row ``r``'s state (None for no row, or a row without a fix yet)."""
        if r is None or r < 0 or self.ts[r] != self.ts[r]:
            return None
        speed = float(self.speed[r])
        st: dict[str, Any] = {"ts": float(self.ts[r]), "lat": float(self.lat[r]), "lon": float(self.lon[r]),
                              "x": float(self.x[r]), "y": float(self.y[r]), "class": self.classes[self.class_code[r]],
                              "speed": None if speed != speed else speed, "zones": NO_ZONES}
        extra = self.extra.get(r)
        if extra:
            st.update(extra)
        if self.pos[r] >= 0:
            st["pos"] = int(self.pos[r])
        return st

    def put_state(self, vid: str, st: dict[str, Any]) -> int:
        """Write one vehicle's state (a new row for a new vehicle); returns its row."""
        r = self.rows.get(vid)
        if r is None:
            r = int(self.add([vid])[0])
        self._put_row(r, st)
        return r

    def put_states(self, vids: Sequence[str], sts: Sequence[dict[str, Any]]) -> np.ndarray:
        """:meth:`put_state` for many vehicles with one lookup; returns their rows."""
        rows = self.lookup(vids)
        if (rows < 0).any():
            self.add([v for v, r in zip(vids, rows.tolist()) if r < 0])
            rows = self.lookup(vids)
        for r, st in zip(rows.tolist(), sts):
            self._put_row(r, st)
        return rows

    def _put_row(self, r: int, st: dict[str, Any]) -> None:
        self.ts[r], self.lat[r], self.lon[r], self.x[r], self.y[r] = st["ts"], st["lat"], st["lon"], st["x"], st["y"]
        self.speed[r] = np.nan if st.get("speed") is None else st["speed"]
        self.class_code[r] = self.code_of_class(st.get("class") or "other")
        pos = stored_position(st.get("pos"))
        self.pos[r] = -1 if pos is None else pos
        extra = {k: st[k] for k in _EXTRA_KEYS if st.get(k)}
        if extra:
            self.extra[r] = extra
        else:
            self.extra.pop(r, None)
        self.alarm[r] = open_bits(extra.get("alarms"))

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every vehicle as ``(id, state dict)`` (the offline scan and tools; not the hot path)."""
        for vid in self.ids:
            st = self.state(vid)
            if st is not None:
                yield vid, st

    # --- checkpoints ---------------------------------------------------------------------------------------

    def pack(self, start: int = 0, stop: int | None = None) -> bytes:
        """Rows ``start:stop`` as one record: header, ids, the class table, extras (JSON), then the columns."""
        stop = len(self.ids) if stop is None else min(stop, len(self.ids))
        n = max(0, stop - start)
        ids = "\x00".join(self.ids[start:stop]).encode("utf-8")
        extras = orjson.dumps({"classes": self.classes,
                               "extra": {str(r - start): e for r, e in self.extra.items() if start <= r < stop}})
        parts = [_HEADER.pack(_MAGIC, start, n, len(ids), len(extras)), ids, extras]
        parts += [getattr(self, name)[start:start + n].astype(dtype, copy=False).tobytes() for name, dtype in _COLUMNS]
        return b"".join(parts)

    @classmethod
    def unpack(cls, data: bytes) -> PartitionFleet:
        """The rows of one :meth:`pack` record (``first`` says where they stand); ValueError naming the problem
        for anything else."""
        if len(data) < _HEADER.size:
            raise ValueError("fleet record: shorter than its header")
        magic, first, n, n_ids, n_extras = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError(f"fleet record: unknown header {magic!r}")
        width = sum(np.dtype(dtype).itemsize for _, dtype in _COLUMNS)
        if _HEADER.size + n_ids + n_extras + n * width != len(data):
            raise ValueError("fleet record: its lengths do not add up to its size")
        at = _HEADER.size
        ids = data[at:at + n_ids].decode("utf-8").split("\x00") if n else []
        at += n_ids
        meta = orjson.loads(data[at:at + n_extras])
        at += n_extras
        if len(ids) != n or len(set(ids)) != n:
            raise ValueError(f"fleet record: {len(set(ids))} distinct ids for {n} rows")
        fleet = cls(capacity=max(n, 1))
        fleet.first = first
        fleet.rows.add(ids)
        fleet.classes = list(meta["classes"])
        fleet._class_codes = {c: i for i, c in enumerate(fleet.classes)}
        fleet.extra = {int(r): e for r, e in meta["extra"].items()}
        fleet._derive_alarm(fleet.extra)
        for name, dtype in _COLUMNS:
            size = n * np.dtype(dtype).itemsize
            getattr(fleet, name)[:n] = np.frombuffer(data, dtype=dtype, count=n, offset=at)
            at += size
        if n and int(fleet.class_code[:n].max()) >= len(fleet.classes):
            raise ValueError("fleet record: a class code outside its class table")
        return fleet

    def extend(self, block: PartitionFleet) -> None:
        """Append a block's rows (ids not in this fleet yet) as they are: its row ``k`` becomes ``len(self) + k``."""
        n, start = len(block), len(self.rows)
        self.rows.add(block.ids)
        self._grow(start + n)
        codes = np.array([self.code_of_class(c) for c in block.classes], dtype=np.uint8)
        for name, _ in _COLUMNS:
            getattr(self, name)[start:start + n] = getattr(block, name)[:n]
        self.class_code[start:start + n] = codes[block.class_code[:n]]
        extra = {start + r: e for r, e in block.extra.items()}
        self.extra.update(extra)
        self._derive_alarm(extra)

    def _derive_alarm(self, extra: dict[int, dict[str, Any]]) -> None:
        """The ``alarm`` column of rows whose extras were set as they are (a record read back, a block appended)."""
        for r, e in extra.items():
            alarms = e.get("alarms")
            if alarms:
                if not isinstance(alarms, dict):
                    raise ValueError(f"fleet record: the alarms of row {r} are not an object")
                self.alarm[r] = open_bits(alarms)

    # --- counts over the columns -------------------------------------------------------------------------

    def active_by_class(self, cutoff: float) -> dict[str, int]:
        """Vehicles whose last fix is at ``cutoff`` or later, per class."""
        n = len(self.ids)
        counts = np.bincount(self.class_code[:n][self.ts[:n] >= cutoff], minlength=len(self.classes))
        return {c: int(k) for c, k in zip(self.classes, counts.tolist()) if k}

    # --- memory ------------------------------------------------------------------------------------------

    def _grow(self, needed: int) -> None:
        cap = len(self.ts)
        if needed <= cap:
            return
        new_cap = max(needed, cap + cap // 2)
        for name, dtype in _COLUMNS:
            old = getattr(self, name)
            arr = np.full(new_cap, _FILL[name], dtype=dtype)
            arr[:cap] = old
            setattr(self, name, arr)
        alarm = np.zeros(new_cap, dtype=np.uint8)
        alarm[:cap] = self.alarm
        self.alarm = alarm


class StateView:
    """A fleet's rows as the checker's per-fix path reads them (``get``): each vehicle's dict built once.

    ``vids``: the vehicles the batch will ask for, looked up together up front."""

    def __init__(self, fleet: PartitionFleet, vids: Sequence[str] = ()):
        self.fleet = fleet
        self.seen: dict[str, dict[str, Any] | None] = {}
        self._rows: dict[str, int] = dict(zip(vids, fleet.lookup(vids).tolist())) if len(vids) else {}

    def get(self, vid: str, default: Any = None) -> dict[str, Any] | None:
        seen = self.seen
        if vid in seen:
            return seen[vid]
        r = self._rows.get(vid)
        st = seen[vid] = self.fleet.state_at(self.fleet.rows.get(vid) if r is None else r)
        return st
