"""Duplicate reports: same service, within ``dedup_radius_m`` and ``dedup_window_s`` of an open task's latest report.

Partitioning (nothing here assumes one worker): a report is keyed by its *place
key*, ``{service_code}/{cx}/{cy}``, the square cell of ``dedup_cell_m`` metres
(projected, ``city.crs``) it falls in, so every report of one kind in one cell
is checked on one partition against that cell's entries in the
``report_cells`` table. A new task registers in its own cell at once and, when
it lies within ``dedup_radius_m`` of a cell edge, also in each neighbouring
cell that the radius reaches (a ``register`` record on ``reports`` keyed by
that cell: one Kafka hop). A later report on the other side of the edge then
finds it on its own partition. The limit: two reports of one hazard that
straddle a cell edge *and* arrive within that hop (tens of milliseconds) of
each other open two tasks.

Entries expire ``dedup_window_s`` after the task's latest report, and a task
that closes is unregistered from its cells, so a new hazard at the spot of a
cleared one opens a new task.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Entry = dict[str, Any]  # {"id": task id, "x", "y": metres, "t": latest report (epoch s)}


def cell_of(x: float, y: float, cell_m: float) -> tuple[int, int]:
    return math.floor(x / cell_m), math.floor(y / cell_m)


def place_key(service_code: str, cell: tuple[int, int]) -> str:
    return f"{service_code}/{cell[0]}/{cell[1]}"


def cells_within(x: float, y: float, cell_m: float, radius_m: float) -> list[tuple[int, int]]:
    """The cell of ``(x, y)`` first, then every other cell that comes within ``radius_m`` of it.

    >>> cells_within(150.0, 150.0, 1000.0, 50.0)
    [(0, 0)]
    >>> cells_within(980.0, 20.0, 1000.0, 50.0)
    [(0, 0), (0, -1), (1, -1), (1, 0)]
    """
    own = cell_of(x, y, cell_m)
    out = [own]
    for cx in (own[0] - 1, own[0], own[0] + 1):
        for cy in (own[1] - 1, own[1], own[1] + 1):
            if (cx, cy) == own:
                continue
            dx = max(cx * cell_m - x, 0.0, x - (cx + 1) * cell_m)
            dy = max(cy * cell_m - y, 0.0, y - (cy + 1) * cell_m)
            if math.hypot(dx, dy) <= radius_m:
                out.append((cx, cy))
    return out


def place_keys(service_code: str, x: float, y: float, cell_m: float, radius_m: float) -> list[str]:
    return [place_key(service_code, c) for c in cells_within(x, y, cell_m, radius_m)]


def alive(entries: Iterable[Entry], now: float, window_s: float) -> list[Entry]:
    """Entries whose latest report is within the window of ``now``."""
    return [e for e in entries if now - float(e["t"]) <= window_s]


def find_duplicate(entries: Iterable[Entry], x: float, y: float, now: float, *, radius_m: float,
                   window_s: float) -> Entry | None:
    """The nearest live entry within ``radius_m`` of ``(x, y)``, or ``None``.

    >>> e = [{"id": "a", "x": 0.0, "y": 0.0, "t": 100.0}, {"id": "b", "x": 30.0, "y": 0.0, "t": 100.0}]
    >>> find_duplicate(e, 25.0, 0.0, 200.0, radius_m=50, window_s=3600)["id"]
    'b'
    >>> find_duplicate(e, 25.0, 0.0, 9999.0, radius_m=50, window_s=3600) is None
    True
    """
    best, best_d = None, math.inf
    for e in alive(entries, now, window_s):
        d = math.hypot(float(e["x"]) - x, float(e["y"]) - y)
        if d <= radius_m and d < best_d:
            best, best_d = e, d
    return best


def upsert(entries: Iterable[Entry], entry: Entry, now: float, window_s: float) -> list[Entry]:
    """Entries with ``entry`` added or refreshed (by id), expired ones dropped."""
    kept = [e for e in alive(entries, now, window_s) if e["id"] != entry["id"]]
    return kept + [entry]


def remove(entries: Iterable[Entry], task_id: str) -> list[Entry]:
    return [e for e in entries if e["id"] != task_id]


@dataclass(frozen=True)
class Decision:
    """What the duplicate check makes of one report, in its own cell."""

    kind: str  # "create" (a new task, or the replay of its first report) | "merge"
    task_id: str
    entries: list[Entry]  # the report's cell afterwards
    entry: Entry  # the task's entry, to (re)register in ``register``
    register: list[str]  # other cells the entry goes to (one Kafka hop each)
    new: bool  # a task not seen before (False for a merge or a replayed first report)


def decide(entries: list[Entry], *, own: str, cells: list[str] | tuple[str, ...], first_id: str, x: float, y: float,
           t: float, radius_m: float, window_s: float) -> Decision:
    """Merge into the nearest live task within the radius, else open ``first_id`` (the id this report would give).

    >>> d = decide([], own="s/0/0", cells=["s/0/0", "s/1/0"], first_id="T1", x=990.0, y=5.0, t=0.0,
    ...            radius_m=50, window_s=3600)
    >>> d.kind, d.task_id, d.register, d.new
    ('create', 'T1', ['s/1/0'], True)
    >>> decide(d.entries, own="s/0/0", cells=["s/0/0"], first_id="T2", x=980.0, y=5.0, t=60.0, radius_m=50,
    ...        window_s=3600).kind
    'merge'
    """
    dup = find_duplicate(entries, x, y, t, radius_m=radius_m, window_s=window_s)
    if dup is not None and dup["id"] != first_id:
        entry = {**dup, "t": max(float(dup["t"]), t)}
        return Decision("merge", dup["id"], upsert(entries, entry, t, window_s), entry,
                        [k for k in entry.get("cells", []) if k != own], new=False)
    entry = {"id": first_id, "x": x, "y": y, "t": t, "cells": list(cells)}
    return Decision("create", first_id, upsert(entries, entry, t, window_s), entry,
                    [k for k in cells if k != own], new=dup is None)
