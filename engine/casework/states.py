"""The task state machine as a pure function: ``apply(task, event, now) -> task`` or :class:`Refused`.

Department actions (the ``department`` field must be the task's department):
``accept``, ``start``, ``return`` (wrong department, ``note`` required),
``request_extension`` (``extension_s``), ``resolve``. Supervisor actions (the
grid office; ``by`` names who): ``redispatch`` (``department`` = the new one),
``approve_extension``, ``deny_extension``, ``verify``, ``reopen`` (``note``
required), ``close``, ``reject`` (``note`` required). The transition table is
:data:`TRANSITIONS`; anything else is refused with the reason and changes
nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from engine.casework.settings import DepartmentSettings
from engine.casework.task_models import Task
from engine.core.errors import CitywatchError

DEPARTMENT_ACTIONS = frozenset({"accept", "start", "return", "request_extension", "resolve"})
SUPERVISOR_ACTIONS = frozenset({"redispatch", "approve_extension", "deny_extension", "verify", "reopen", "close",
                                "reject"})
ACTIONS = DEPARTMENT_ACTIONS | SUPERVISOR_ACTIONS
# action -> (states it may be taken from, the state it leads to; None = the state before the extension request)
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "accept": (frozenset({"dispatched"}), "accepted"),
    "start": (frozenset({"accepted"}), "in_progress"),
    "return": (frozenset({"dispatched", "accepted"}), "returned"),
    "request_extension": (frozenset({"accepted", "in_progress"}), "extension_requested"),
    "approve_extension": (frozenset({"extension_requested"}), None),
    "deny_extension": (frozenset({"extension_requested"}), None),
    "resolve": (frozenset({"accepted", "in_progress"}), "resolved"),
    "reopen": (frozenset({"resolved", "verified"}), "in_progress"),
    "verify": (frozenset({"resolved"}), "verified"),
    "close": (frozenset({"verified"}), "closed"),
    "redispatch": (frozenset({"returned"}), "dispatched"),
    "reject": (frozenset({"dispatched", "returned", "accepted"}), "rejected"),
}
NOTE_REQUIRED = frozenset({"return", "reopen", "reject"})
MAX_NOTE = 2000
MAX_EXTENSION_S = 30 * 86400.0


class InvalidEvent(CitywatchError):
    """An event that is not well formed (HTTP 400): names the field."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason, self.code = field, reason, "invalid_event"
        super().__init__(f"{field}: {reason}")


class Refused(CitywatchError):
    """A well-formed event the task cannot take now (HTTP 409, or 404 for an unknown task)."""

    def __init__(self, code: str, reason: str, status: int = 409):
        self.code, self.reason, self.status = code, reason, status
        super().__init__(reason)


@dataclass(frozen=True)
class Event:
    action: str
    department: str = ""
    note: str = ""
    extension_s: float = 0.0
    by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


def parse_event(d: Any) -> Event:
    """Validate an event body (HTTP or ``tasks.events``); raises :class:`InvalidEvent`."""
    if not isinstance(d, Mapping):
        raise InvalidEvent("body", "must be a JSON object")
    action = d.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise InvalidEvent("action", f"must be one of {', '.join(sorted(ACTIONS))}")
    fields: dict[str, Any] = {"action": action}
    for name, limit in (("department", 64), ("note", MAX_NOTE), ("by", 100)):
        v = d.get(name)
        if v is None:
            continue
        if not isinstance(v, str):
            raise InvalidEvent(name, "must be a string")
        if len(v) > limit:
            raise InvalidEvent(name, f"at most {limit} characters, got {len(v)}")
        fields[name] = v.strip()
    if action in DEPARTMENT_ACTIONS and not fields.get("department"):
        raise InvalidEvent("department", f"is required for {action!r}: the department taking the action")
    if action == "redispatch" and not fields.get("department"):
        raise InvalidEvent("department", "is required for 'redispatch': the department to send the task to")
    if action in NOTE_REQUIRED and not fields.get("note"):
        raise InvalidEvent("note", f"is required for {action!r}: say why")
    if action == "request_extension":
        ext = d.get("extension_s")
        if isinstance(ext, bool) or not isinstance(ext, (int, float)) or not math.isfinite(ext) \
                or not 0 < ext <= MAX_EXTENSION_S:
            raise InvalidEvent("extension_s", f"is required for 'request_extension': seconds, above 0 and at most "
                                              f"{MAX_EXTENSION_S:.0f}")
        fields["extension_s"] = float(ext)
    return Event(**fields)


class _Step(TypedDict):
    """The history entry's arguments of :meth:`Task.evolve`, the same for every action."""

    action: str
    by: str
    note: str
    keep: int


def apply(task: Task, event: Event, now: float, *, departments: Mapping[str, DepartmentSettings],
          keep: int = 50) -> Task:
    """The task after ``event``; raises :class:`Refused` (nothing changes) when it may not be taken."""
    allowed, target = TRANSITIONS[event.action]
    if task.state not in allowed:
        froms = ", ".join(sorted(allowed))
        raise Refused("not_allowed", f"cannot {event.action} a task that is {task.state} (only from {froms})")
    if event.action in DEPARTMENT_ACTIONS and event.department != task.department:
        raise Refused("wrong_department", f"the task is assigned to {task.department}, not {event.department}")
    by = event.department if event.action in DEPARTMENT_ACTIONS else (event.by or "supervisor")
    note = event.note
    step: _Step = {"action": event.action, "by": by, "note": note, "keep": keep}
    agency = task.agency
    if event.action == "accept":
        due = now + task.resolve_s
        return task.evolve(now, **step, state="accepted", stage_started_at=now, due_at=due, expected_at=due,
                           warned=(), status_notes=f"Accepted by {agency}." + _tail(note))
    if event.action == "start":
        return task.evolve(now, **step, state="in_progress", status_notes=f"{agency} is working on it." + _tail(note))
    if event.action == "return":
        return task.evolve(now, **step, state="returned",
                           status_notes=f"Returned by {agency} as not theirs.{_tail(note)} It is being re-routed.")
    if event.action == "redispatch":
        dept = departments.get(event.department)
        if dept is None:
            raise Refused("unknown_department", f"no department {event.department!r} (settings tasks.departments)")
        if task.service_code not in dept.service_codes:
            raise Refused("unknown_department", f"{event.department} does not handle {task.service_code}")
        if event.department == task.department:
            raise Refused("not_allowed", f"{event.department} returned this task; send it to another department")
        due = now + task.accept_s
        return task.evolve(now, **step, state="dispatched", department=event.department, agency=dept.name or
                           event.department, stage_started_at=now, due_at=due, expected_at=due + task.resolve_s,
                           warned=(), status_notes=f"Sent to {dept.name or event.department}." + _tail(note))
    if event.action == "request_extension":
        hours = event.extension_s / 3600
        return task.evolve(now, **step, state="extension_requested", resume_state=task.state,
                           extension_s=event.extension_s,
                           status_notes=f"{agency} asked for {hours:.3g} more hours." + _tail(note))
    if event.action == "approve_extension":
        due = (task.due_at or now) + task.extension_s
        return task.evolve(now, **step, state=task.resume_state or "accepted", due_at=due, expected_at=due,
                           resume_state="", extension_s=0.0, status_notes="More time granted." + _tail(note))
    if event.action == "deny_extension":
        return task.evolve(now, **step, state=task.resume_state or "accepted", resume_state="", extension_s=0.0,
                           status_notes="Extension refused." + _tail(note))
    if event.action == "resolve":
        return task.evolve(now, **step, state="resolved", due_at=None, expected_at=now, resolution=note,
                           status_notes=f"{agency} reports it resolved." + _tail(note))
    if event.action == "reopen":
        due = now + task.resolve_s
        return task.evolve(now, **step, state="in_progress", stage_started_at=now, due_at=due, expected_at=due,
                           warned=(), status_notes=f"Reopened: {note}")
    if event.action == "verify":
        return task.evolve(now, **step, state="verified", status_notes="Checked on site: resolved." + _tail(note))
    if event.action == "close":
        done = f"Resolved by {agency}" + (f": {task.resolution.rstrip('.')}." if task.resolution else ".")
        return task.evolve(now, **step, state="closed", due_at=None, closed_at=now,
                           status_notes=f"{done} Verified and closed." + _tail(note))
    assert event.action == "reject"
    return task.evolve(now, **step, state="rejected", due_at=None, closed_at=now, status_notes=f"Not taken up: {note}")


def _tail(note: str) -> str:
    return f" {note.rstrip('.')}." if note else ""
