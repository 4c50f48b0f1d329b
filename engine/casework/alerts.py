"""Task alerts: ``task.escalated``, ``task.deadline_warning``, ``task.overdue`` (README "Routing, SLAs and escalation").

Subject = the task id, so MQTT delivery puts them on
``citywatch/alerts/<kind>/<service_request_id>``. Ids are stable: one
escalation per task and level, one warning per task, level, stage window and
fraction, one overdue flag per task and deadline; ``ts`` is the event time the
alert is about (the missed deadline, or the moment the fraction was reached).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from engine.alerts.models import make_alert, stable_id
from engine.casework.task_models import Task
from engine.core.clock import to_iso


def _common(task: Task, tz: ZoneInfo) -> dict[str, Any]:
    return {"service_request_id": task.id, "service_code": task.service_code, "service_name": task.service_name,
            "level": task.level, "grid_code": task.grid.get(task.level), "grid_name": task.grid_names.get(task.level),
            "state": task.state, "department": task.department, "agency_responsible": task.agency,
            "lat": task.lat, "lon": task.lon, "description": task.description[:200]}


def escalated(before: Task, after: Task, now: float, tz: ZoneInfo) -> dict[str, Any]:
    assert before.due_at is not None
    return make_alert(
        "task.escalated", "critical" if after.level == "city" else "warning",
        alert_id=stable_id("task.escalated", after.id, after.level), subject=after.id, ts=before.due_at,
        detected_at=now, tz=tz, **_common(after, tz), from_level=before.level, stage=before.stage,
        deadline=to_iso(before.due_at, tz), overdue_s=round(now - before.due_at, 1),
        next_deadline=to_iso(after.due_at, tz) if after.due_at else None)


def deadline_warning(task: Task, fraction: float, now: float, tz: ZoneInfo) -> dict[str, Any]:
    assert task.due_at is not None
    reached = task.stage_started_at + fraction * (task.due_at - task.stage_started_at)
    return make_alert(
        "task.deadline_warning", "warning" if fraction >= 0.8 else "info",
        alert_id=stable_id("task.deadline_warning", task.id, task.level, task.stage, task.stage_started_at, fraction),
        subject=task.id, ts=reached, detected_at=now, tz=tz, **_common(task, tz), stage=task.stage,
        fraction=fraction, deadline=to_iso(task.due_at, tz), remaining_s=round(max(0.0, task.due_at - now), 1))


def overdue(task: Task, now: float, tz: ZoneInfo) -> dict[str, Any]:
    assert task.due_at is not None
    return make_alert(
        "task.overdue", "critical", alert_id=stable_id("task.overdue", task.id, task.due_at), subject=task.id,
        ts=task.due_at, detected_at=now, tz=tz, **_common(task, tz), stage=task.stage,
        deadline=to_iso(task.due_at, tz), overdue_s=round(now - task.due_at, 1))
