"""The state machine: every allowed transition, every refused one, and malformed events."""

from __future__ import annotations

import dataclasses

import pytest

from engine.casework.settings import DepartmentSettings
from engine.casework.states import (
    ACTIONS,
    DEPARTMENT_ACTIONS,
    TRANSITIONS,
    Event,
    InvalidEvent,
    Refused,
    apply,
    parse_event,
)
from engine.casework.task_models import STATES, status_of
from tests.casework.factories import World

DEPT = "siming_traffic_police"
DEPARTMENTS = World().settings.tasks.departments


def task_in(state: str):
    w = World()
    task = w.open()
    return dataclasses.replace(task, state=state, resume_state="in_progress" if state == "extension_requested" else "",
                               extension_s=3600.0 if state == "extension_requested" else 0.0)


def event_for(action: str) -> Event:
    if action in DEPARTMENT_ACTIONS:
        return Event(action, department=DEPT, note="why", extension_s=3600.0 if action == "request_extension" else 0)
    if action == "redispatch":
        return Event(action, department="xiamen_traffic_police")
    return Event(action, note="why", by="grid office")


EXPECTED = {  # (action, from) -> to
    ("accept", "dispatched"): "accepted", ("start", "accepted"): "in_progress",
    ("return", "dispatched"): "returned", ("return", "accepted"): "returned",
    ("request_extension", "accepted"): "extension_requested",
    ("request_extension", "in_progress"): "extension_requested",
    ("approve_extension", "extension_requested"): "in_progress",
    ("deny_extension", "extension_requested"): "in_progress",
    ("resolve", "accepted"): "resolved", ("resolve", "in_progress"): "resolved",
    ("reopen", "resolved"): "in_progress", ("reopen", "verified"): "in_progress",
    ("verify", "resolved"): "verified", ("close", "verified"): "closed",
    ("redispatch", "returned"): "dispatched",
    ("reject", "dispatched"): "rejected", ("reject", "returned"): "rejected", ("reject", "accepted"): "rejected",
}


def test_the_table_is_what_this_test_expects():
    table = {(a, s): None for a, (froms, _) in TRANSITIONS.items() for s in froms}
    assert set(table) == set(EXPECTED) and set(TRANSITIONS) == ACTIONS


@pytest.mark.parametrize("action,state", sorted(EXPECTED), ids=lambda v: v)
def test_every_allowed_transition(action, state):
    before = task_in(state)
    after = apply(before, event_for(action), before.updated_at + 60, departments=DEPARTMENTS)
    assert after.state == EXPECTED[(action, state)]
    assert after.version == before.version + 1 and after.updated_at == before.updated_at + 60
    assert after.history[-1]["action"] == action and after.status_notes
    assert after.status == status_of(after.state)


@pytest.mark.parametrize("action,state", sorted((a, s) for a in ACTIONS for s in STATES if (a, s) not in EXPECTED),
                         ids=lambda v: v)
def test_every_other_transition_is_refused_and_changes_nothing(action, state):
    before = task_in(state)
    with pytest.raises(Refused) as exc:
        apply(before, event_for(action), before.updated_at + 60, departments=DEPARTMENTS)
    assert exc.value.code == "not_allowed" and exc.value.status == 409
    assert f"cannot {action} a task that is {state}" in exc.value.reason


def test_only_the_assigned_department_may_act_for_it():
    task = task_in("dispatched")
    with pytest.raises(Refused) as exc:
        apply(task, Event("accept", department="huli_traffic_police"), 1.0, departments=DEPARTMENTS)
    assert exc.value.code == "wrong_department" and DEPT in exc.value.reason


@pytest.mark.parametrize("target,code", [("nobody", "unknown_department"), ("xiamen_landscaping", "unknown_department"),
                                         (DEPT, "not_allowed")])
def test_redispatch_needs_another_department_that_handles_the_service(target, code):
    with pytest.raises(Refused) as exc:
        apply(task_in("returned"), Event("redispatch", department=target), 1.0, departments=DEPARTMENTS)
    assert exc.value.code == code


def test_return_and_redispatch_restart_the_accept_clock_at_the_new_department():
    task = task_in("dispatched")
    t = task.created_at
    returned = apply(task, Event("return", DEPT, note="Not on our road"), t + 100, departments=DEPARTMENTS)
    assert returned.due_at == task.due_at and "Not on our road" in returned.status_notes
    again = apply(returned, Event("redispatch", department="xiamen_traffic_police"), t + 200, departments=DEPARTMENTS)
    assert again.department == "xiamen_traffic_police" and again.agency == "Xiamen Traffic Police Detachment"
    assert again.due_at == t + 200 + task.accept_s and again.stage_started_at == t + 200


def test_denied_extension_keeps_the_deadline_and_close_tells_the_outcome():
    task = apply(task_in("dispatched"), Event("accept", DEPT), 10.0, departments=DEPARTMENTS)
    asked = apply(task, Event("request_extension", DEPT, extension_s=7200), 20.0, departments=DEPARTMENTS)
    denied = apply(asked, Event("deny_extension", by="office"), 30.0, departments=DEPARTMENTS)
    assert denied.state == "accepted" and denied.due_at == task.due_at
    done = apply(denied, Event("resolve", DEPT, note="Container towed away."), 40.0, departments=DEPARTMENTS)
    done = apply(done, Event("verify", by="grid worker"), 50.0, departments=DEPARTMENTS)
    closed = apply(done, Event("close", by="office"), 60.0, departments=DEPARTMENTS)
    assert closed.status == "closed" and closed.closed_at == 60.0 and closed.due_at is None
    assert closed.status_notes == "Resolved by Siming Traffic Police Brigade: Container towed away. Verified and closed."


def test_history_is_bounded():
    task = task_in("resolved")
    for i in range(10):
        task = apply(task, Event("reopen", note=f"still there {i}"), float(i), departments=DEPARTMENTS, keep=4)
        task = apply(task, Event("resolve", DEPT), float(i), departments=DEPARTMENTS, keep=4)
    assert len(task.history) == 4 and task.history[-1]["action"] == "resolve"


@pytest.mark.parametrize("body,field", [
    ([], "body"), ({}, "action"), ({"action": "fly"}, "action"), ({"action": "accept"}, "department"),
    ({"action": "accept", "department": 7}, "department"), ({"action": "redispatch"}, "department"),
    ({"action": "return", "department": DEPT}, "note"), ({"action": "reject"}, "note"),
    ({"action": "request_extension", "department": DEPT}, "extension_s"),
    ({"action": "request_extension", "department": DEPT, "extension_s": -5}, "extension_s"),
    ({"action": "request_extension", "department": DEPT, "extension_s": True}, "extension_s"),
    ({"action": "close", "note": "x" * 2001}, "note"),
])
def test_malformed_events_name_the_field(body, field):
    with pytest.raises(InvalidEvent) as exc:
        parse_event(body)
    assert exc.value.field == field


def test_a_well_formed_event():
    ev = parse_event({"action": "request_extension", "department": f" {DEPT} ", "extension_s": 3600, "x": 1})
    assert ev == Event("request_extension", department=DEPT, extension_s=3600.0)
    assert isinstance(DEPARTMENTS[DEPT], DepartmentSettings)
