"""SLAs, deadline warnings and escalation as pure functions of a task and an injected ``now``.

A task's current *stage* (accept / resolve, see :mod:`engine.casework.task_models`)
runs from ``stage_started_at`` to ``due_at``. Before the deadline, a
``task.deadline_warning`` is due at each fraction of that window in
``tasks.warn_fractions`` (0.5, 0.8: once each per level and stage; when a scan
finds several passed at once, only the latest is sent). At the deadline the
task escalates one level up the grid (community -> street -> district ->
city): the level above becomes answerable, the stage's clock restarts there
with the same SLA, and ``task.escalated`` names the level and the missed
deadline. At the city level there is nowhere further up: the task is flagged
``task.overdue`` once per deadline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.casework.settings import ServiceSettings
from engine.casework.task_models import Task, next_level

OVERDUE_MARK = 1.0  # in Task.warned: the city-level overdue alert for this deadline was sent


@dataclass(frozen=True)
class Due:
    """An action the clock calls for: ``escalate``, ``overdue`` (at the city) or ``warn`` at ``fraction``."""

    kind: str
    fraction: float = 0.0


def slas(service: ServiceSettings, scale: float) -> tuple[float, float]:
    """``(accept_s, resolve_s)`` of a service, scaled by ``tasks.sla_scale`` (demo: seconds instead of hours)."""
    return service.accept_s * scale, service.resolve_s * scale


def check(task: Task, now: float, fractions: tuple[float, ...]) -> Due | None:
    """What, if anything, the clock calls for on ``task`` at ``now``.

    >>> from engine.casework.task_models import Task
    >>> t = Task("t", "s", "S", 24.4, 118.1, {"community": "350203004001"}, {}, "community", "dispatched", "d", "D",
    ...          0.0, 0.0, 0.0, 100.0, 1000.0, 0.0, 100.0, 1100.0)
    >>> check(t, 49.0, (0.5, 0.8)), check(t, 85.0, (0.5, 0.8)), check(t, 100.0, (0.5, 0.8))
    (None, Due(kind='warn', fraction=0.8), Due(kind='escalate', fraction=0.0))
    """
    if task.stage is None or task.due_at is None:
        return None
    if now >= task.due_at:
        if next_level(task.level) is not None:
            return Due("escalate")
        return None if OVERDUE_MARK in task.warned else Due("overdue")
    window = task.due_at - task.stage_started_at
    highest = max((f for f in task.warned if f < OVERDUE_MARK), default=0.0)
    passed = [f for f in fractions if f > highest and now >= task.stage_started_at + f * window]
    return Due("warn", max(passed)) if passed else None


def escalate(task: Task, now: float, *, keep: int = 50) -> Task:
    """The task one level up, with the missed stage's clock restarted there."""
    up = next_level(task.level)
    if up is None or task.due_at is None or task.stage is None:
        raise ValueError(f"task {task.id} cannot escalate from {task.level} in state {task.state}")
    sla = task.accept_s if task.stage == "accept" else task.resolve_s
    due = now + sla
    expected = due + task.resolve_s if task.stage == "accept" else due
    missed = "accepted" if task.stage == "accept" else "resolved"
    where = task.grid_names.get(up) or task.grid.get(up) or up
    notes = f"Escalated to the {up} level ({where}): not {missed} by {task.agency} in time."
    return task.evolve(now, action="escalate", by="clock", keep=keep, level=up, stage_started_at=now, due_at=due,
                       expected_at=max(task.expected_at, expected), warned=(), overdue=True, status_notes=notes)


def mark_warned(task: Task, fraction: float) -> Task:
    """Record that the warning at ``fraction`` was sent (lower ones are then never sent); not a state change."""
    return dataclasses.replace(task, warned=(*task.warned, fraction), version=task.version + 1)


def mark_overdue(task: Task, now: float, *, keep: int = 50) -> Task:
    notes = f"Overdue at the city level: not {'accepted' if task.stage == 'accept' else 'resolved'} in time."
    return task.evolve(now, action="overdue", by="clock", keep=keep, overdue=True,
                       warned=(*task.warned, OVERDUE_MARK), status_notes=notes)
