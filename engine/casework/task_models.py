"""The task a report becomes, its states and levels, and the record on the compacted ``tasks`` topic.

States (the case flow of digital urban management: dispatch, accept, handle, resolve, verify, close)::

    dispatched --accept--> accepted --start--> in_progress --resolve--> resolved --verify--> verified --close--> closed
        |  ^                 |  |                  |                      |
        |  +--redispatch-- returned <--return------+ (wrong department)   +--reopen--> in_progress
        +--reject--> rejected            accepted/in_progress --request_extension--> extension_requested
                                         extension_requested --approve_extension/deny_extension--> back

Open311 ``status`` is ``closed`` for ``closed`` and ``rejected``, else ``open``.
SLA *stages*: ``dispatched`` and ``returned`` wait for acceptance (``accept``
stage, ``accept_s``); ``accepted``, ``in_progress`` and ``extension_requested``
wait for resolution (``resolve`` stage, ``resolve_s``); later states have no
deadline. A missed deadline escalates the task one level up the grid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.casework.grid import LEVELS

STATES = ("dispatched", "returned", "accepted", "in_progress", "extension_requested", "resolved", "verified",
          "closed", "rejected")
FINAL_STATES = frozenset({"closed", "rejected"})
ACCEPT_STAGE = frozenset({"dispatched", "returned"})
RESOLVE_STAGE = frozenset({"accepted", "in_progress", "extension_requested"})

__all__ = ["LEVELS", "STATES", "FINAL_STATES", "Task", "status_of", "stage_of", "next_level", "to_doc", "iso"]


def iso(epoch: float | None, tz: ZoneInfo) -> str | None:
    """ISO 8601 to the second with the city's offset, as Open311 writes datetimes (``2026-09-08T10:00:00+08:00``)."""
    return None if epoch is None else datetime.fromtimestamp(epoch, tz).isoformat(timespec="seconds")


def status_of(state: str) -> str:
    """Open311 status: ``closed`` or ``open``."""
    return "closed" if state in FINAL_STATES else "open"


def stage_of(state: str) -> str | None:
    """The SLA stage a state is in (``accept`` / ``resolve``), or ``None`` when no deadline runs."""
    if state in ACCEPT_STAGE:
        return "accept"
    if state in RESOLVE_STAGE:
        return "resolve"
    return None


def next_level(level: str) -> str | None:
    """The level above (``None`` above the city)."""
    i = LEVELS.index(level)
    return LEVELS[i + 1] if i + 1 < len(LEVELS) else None


@dataclass(frozen=True)
class Task:
    id: str
    service_code: str
    service_name: str
    lat: float
    lon: float
    grid: dict[str, str]        # level -> code, lowest first
    grid_names: dict[str, str]
    level: str                  # the level currently answerable for it
    state: str
    department: str             # id (tasks.departments)
    agency: str                 # the department's name: Open311 agency_responsible
    requested_at: float         # the first report
    created_at: float           # dispatched: the SLA clock starts
    updated_at: float
    accept_s: float             # SLAs (scaled) fixed when the task is created
    resolve_s: float
    stage_started_at: float     # current stage's clock start (renewed on accept, escalation, redispatch, reopen)
    due_at: float | None        # current deadline; None when no stage runs
    expected_at: float          # Open311 expected_datetime
    description: str = ""
    address: str = ""
    media_url: str = ""
    status_notes: str = ""
    resume_state: str = ""      # extension_requested: the state it returns to
    extension_s: float = 0.0    # extension asked for
    warned: tuple[float, ...] = ()  # warning fractions already sent at this level and stage
    overdue: bool = False       # a deadline was missed (sticky)
    reports: tuple[str, ...] = ()   # report ids; the first opened the task
    cells: tuple[str, ...] = ()     # place keys it is registered in for duplicate checks
    history: tuple[dict[str, Any], ...] = ()
    applied: tuple[str, ...] = ()  # ids of the latest events applied (a replayed event changes nothing)
    resolution: str = ""        # the department's note when it resolved it
    closed_at: float | None = None
    version: int = 1

    @property
    def status(self) -> str:
        return status_of(self.state)

    @property
    def stage(self) -> str | None:
        return stage_of(self.state)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Task:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("warned", "reports", "cells", "history", "applied"):
            kw[k] = tuple(kw.get(k) or ())
        return cls(**kw)

    def evolve(self, now: float, *, action: str, by: str = "", note: str = "", keep: int = 50,
               **changes: Any) -> Task:
        """A copy with ``changes``, one more history entry, ``updated_at`` and ``version`` moved on."""
        new = dataclasses.replace(self, **changes)
        entry = {"at": now, "action": action, "state": new.state, "level": new.level}
        if by:
            entry["by"] = by
        if note:
            entry["note"] = note
        history = (self.history + (entry,))[-keep:] if keep > 0 else ()
        return dataclasses.replace(new, history=history, updated_at=now, version=self.version + 1)


@dataclass(frozen=True)
class Outcome:
    """What became of one command: the record on ``tasks.outcomes`` (id = the command's id)."""

    id: str
    kind: str  # "report" | "event"
    ok: bool
    status: int  # the HTTP status it answers with
    service_request_id: str = ""
    code: str = ""
    reason: str = ""
    duplicate: bool = False
    task: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(d.pop("extra"))
        return d


def to_doc(task: Task, tz: ZoneInfo) -> dict[str, Any]:
    """The value on the compacted ``tasks`` topic (the live map and Open311 read it).

    Contract fields: service_request_id, service_code, service_name, status, state, level, grid,
    agency_responsible, lat, long, description, requested_datetime, updated_datetime, expected_datetime,
    overdue, status_notes. The rest are extras (``version`` orders updates of one task).
    """
    return {
        "service_request_id": task.id, "service_code": task.service_code, "service_name": task.service_name,
        "status": task.status, "state": task.state, "level": task.level, "grid": dict(task.grid),
        "grid_names": dict(task.grid_names), "agency_responsible": task.agency, "department": task.department,
        "lat": task.lat, "long": task.lon, "description": task.description, "address": task.address,
        "media_url": task.media_url, "requested_datetime": iso(task.requested_at, tz),
        "updated_datetime": iso(task.updated_at, tz), "expected_datetime": iso(task.expected_at, tz),
        "due_datetime": iso(task.due_at, tz), "stage": task.stage, "overdue": task.overdue,
        "status_notes": task.status_notes, "reports": len(task.reports), "closed_datetime": iso(task.closed_at, tz),
        "version": task.version,
    }
