"""The tasks of the partitions a worker owns: every change worked out here, written by the agents.

:class:`TaskBook` reads and writes a ``task id -> dict`` mapping (the Faust
``tasks`` table; a plain dict in unit tests) and returns :class:`Effects`:
what to produce (the task on ``tasks``, department notifications on
``tasks.dispatch``, alerts, the outcome for whoever waits on the command) and
what to count. It does no I/O, so every path is testable with a
:class:`~engine.core.clock.FakeClock`. Commands are idempotent: creating a task
that exists, or merging a report it already holds, changes nothing and
answers the same (a rebalance replays events).
"""

from __future__ import annotations

import dataclasses
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from engine.casework import alerts, sla
from engine.casework.report_models import Report
from engine.casework.routing import route
from engine.casework.settings import TasksSettings
from engine.casework.states import Event, Refused, apply
from engine.casework.task_models import FINAL_STATES, Outcome, Task, iso, to_doc

APPLIED_KEPT = 100  # event ids kept per task to tell a replay from a new event


@dataclass
class Effects:
    task: Task | None = None  # the new state: store it and publish it on ``tasks``
    outcome: Outcome | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dispatch: list[dict[str, Any]] = field(default_factory=list)
    unregister: tuple[str, ...] = ()  # place keys to take a closed task out of (duplicate checks)
    closed_after_s: float | None = None
    escalated_to: str | None = None
    publish: bool = True  # False: a bookkeeping change (warning sent) that does not change the published task


class TaskBook:
    def __init__(self, table: MutableMapping[str, Any], cfg: TasksSettings, tz: ZoneInfo):
        self.table, self.cfg, self.tz = table, cfg, tz

    def get(self, task_id: str) -> Task | None:
        d = self.table.get(task_id)
        return Task.from_dict(d) if d else None

    def put(self, task: Task) -> None:
        self.table[task.id] = task.to_dict()

    def doc(self, task: Task) -> dict[str, Any]:
        return to_doc(task, self.tz)

    # Commands from the reports side -------------------------------------------------------------

    def create(self, report: Report, task_id: str, now: float) -> Effects:
        existing = self.get(task_id)
        if existing is not None:  # a replay: answer as before
            return Effects(outcome=self._report_outcome(report, existing, duplicate=False))
        service = self.cfg.services[report.service_code]
        dept_id = route(report.service_code, report.grid, self.cfg.departments)
        dept = self.cfg.departments[dept_id]
        accept_s, resolve_s = sla.slas(service, self.cfg.sla_scale)
        level = next(iter(report.grid))  # the lowest level the place is known at
        due = now + accept_s
        agency = dept.name or dept_id
        task = Task(
            id=task_id, service_code=report.service_code, service_name=service.name or report.service_code,
            lat=report.lat, lon=report.lon, grid=dict(report.grid), grid_names=dict(report.grid_names), level=level,
            state="dispatched", department=dept_id, agency=agency, requested_at=report.received_at,
            created_at=now, updated_at=now, accept_s=accept_s, resolve_s=resolve_s, stage_started_at=now, due_at=due,
            expected_at=due + resolve_s, description=report.description, address=report.address,
            media_url=report.media_url, reports=(report.report_id,), cells=report.cells,
            status_notes=f"Received and sent to {agency}.",
            history=({"at": now, "action": "create", "state": "dispatched", "level": level, "by": report.source},))
        return Effects(task=task, outcome=self._report_outcome(report, task, duplicate=False),
                       dispatch=[self._dispatch("dispatched", task, now)])

    def merge(self, report: Report, task_id: str, now: float) -> Effects:
        task = self.get(task_id)
        if task is None:  # the cell entry outlived the task (cannot happen in order; be safe): open a new one
            return self.create(report, task_id, now)
        if report.report_id in task.reports:
            return Effects(outcome=self._report_outcome(report, task, duplicate=True))
        reports = (*task.reports, report.report_id)[-1000:]
        merged = task.evolve(now, action="merge", by=report.source, keep=self.cfg.history_kept, reports=reports)
        return Effects(task=merged, outcome=self._report_outcome(report, merged, duplicate=True))

    def _report_outcome(self, report: Report, task: Task, *, duplicate: bool) -> Outcome:
        notice = (f"Already reported: merged into request {task.id} ({task.status}, {task.state})." if duplicate
                  else f"Sent to {task.agency}; expected by {iso(task.expected_at, self.tz)}.")
        return Outcome(id=report.report_id, kind="report", ok=True, status=201, service_request_id=task.id,
                       duplicate=duplicate, task=self.doc(task),
                       extra={"service_notice": notice, "account_id": report.contact.get("account_id"),
                              "token": report.token, "source": report.source})

    # Department and supervisor events ----------------------------------------------------------

    def event(self, task_id: str, event: Event, command_id: str, now: float) -> Effects:
        task = self.get(task_id)
        if task is None:
            return Effects(outcome=Outcome(id=command_id, kind="event", ok=False, status=404, service_request_id=task_id,
                                           code="not_found", reason=f"no task {task_id}",
                                           extra={"action": event.action}))
        if command_id in task.applied:  # a replay (rebalance) of an event already applied: answer as before
            return Effects(outcome=Outcome(id=command_id, kind="event", ok=True, status=200, service_request_id=task_id,
                                           task=self.doc(task), extra={"action": event.action, "replay": True}))
        try:
            after = apply(task, event, now, departments=self.cfg.departments, keep=self.cfg.history_kept)
            after = dataclasses.replace(after, applied=(*task.applied, command_id)[-APPLIED_KEPT:])
        except Refused as exc:
            return Effects(outcome=Outcome(id=command_id, kind="event", ok=False, status=exc.status,
                                           service_request_id=task_id, code=exc.code, reason=exc.reason,
                                           task=self.doc(task), extra={"action": event.action}))
        fx = Effects(task=after, outcome=Outcome(id=command_id, kind="event", ok=True, status=200,
                                                 service_request_id=task_id, task=self.doc(after),
                                                 extra={"action": event.action}))
        if event.action == "redispatch":
            fx.dispatch.append(self._dispatch("redispatched", after, now))
        if after.state in FINAL_STATES:
            fx.unregister = after.cells
            fx.closed_after_s = max(0.0, now - after.requested_at)
        return fx

    # The clock -------------------------------------------------------------------------------

    def tick(self, task_id: str, now: float) -> Effects | None:
        """Warn, escalate or flag the task if its deadline calls for it at ``now``."""
        task = self.get(task_id)
        if task is None:
            return None
        due = sla.check(task, now, self.cfg.fractions)
        if due is None:
            return None
        if due.kind == "warn":
            return Effects(task=sla.mark_warned(task, due.fraction), publish=False,
                           alerts=[alerts.deadline_warning(task, due.fraction, now, self.tz)])
        if due.kind == "overdue":
            after = sla.mark_overdue(task, now, keep=self.cfg.history_kept)
            return Effects(task=after, alerts=[alerts.overdue(after, now, self.tz)],
                           dispatch=[self._dispatch("overdue", after, now)])
        after = sla.escalate(task, now, keep=self.cfg.history_kept)
        return Effects(task=after, alerts=[alerts.escalated(task, after, now, self.tz)],
                       dispatch=[self._dispatch("escalated", after, now)], escalated_to=after.level)

    def _dispatch(self, kind: str, task: Task, now: float) -> dict[str, Any]:
        """A notification on ``tasks.dispatch``: the department (and, on escalation, the level's office)."""
        return {"kind": kind, "service_request_id": task.id, "service_code": task.service_code,
                "service_name": task.service_name, "department": task.department,
                "agency_responsible": task.agency, "level": task.level, "grid_code": task.grid.get(task.level),
                "grid_name": task.grid_names.get(task.level), "state": task.state, "lat": task.lat,
                "long": task.lon, "description": task.description, "address": task.address,
                "due_datetime": iso(task.due_at, self.tz), "expected_datetime": iso(task.expected_at, self.tz),
                "sent_at": iso(now, self.tz), "version": task.version}
