"""SLA warnings and escalation through the four grid levels, driven by a fake clock (no broker)."""

from __future__ import annotations

import pytest

from engine.casework import sla
from engine.casework.states import Event
from tests.casework.factories import MAINLAND, World

# obstruction: accept 1800 s, resolve 14400 s (config.yaml); warnings at 50 % and 80 %


def tick(w: World, at: float):
    w.clock.t = at
    return w.apply(w.book.tick(w.task.id, at))


@pytest.fixture
def w() -> World:
    world = World()
    world.task = world.open()
    world.t0 = world.clock.now()
    return world


def test_unaccepted_task_warns_then_climbs_every_level_to_the_city(w):
    t0, task = w.t0, w.task
    assert (task.level, task.state, task.due_at) == ("community", "dispatched", t0 + 1800)
    assert tick(w, t0 + 899) is None
    fx = tick(w, t0 + 900)
    [warning] = fx.alerts
    assert (warning["kind"], warning["severity"], warning["fraction"], warning["level"]) == \
        ("task.deadline_warning", "info", 0.5, "community")
    assert fx.publish is False and fx.task.state == "dispatched"  # bookkeeping, not a change of the task
    assert tick(w, t0 + 1000) is None  # each warning once
    [warning] = tick(w, t0 + 1440).alerts
    assert (warning["fraction"], warning["severity"], warning["remaining_s"]) == (0.8, "warning", 360.0)
    assert tick(w, t0 + 1799.9) is None

    levels = []
    deadline = t0 + 1800
    for up, code in (("street", "350203004"), ("district", "350203"), ("city", "3502")):
        fx = tick(w, deadline + 5)  # the scan runs a little after the deadline
        [alert] = fx.alerts
        assert alert["kind"] == "task.escalated" and alert["level"] == up and alert["grid_code"] == code
        assert alert["stage"] == "accept" and alert["overdue_s"] == 5.0 and fx.escalated_to == up
        assert [d["kind"] for d in fx.dispatch] == ["escalated"] and fx.dispatch[0]["level"] == up
        assert fx.task.level == up and fx.task.overdue and fx.task.due_at == deadline + 5 + 1800
        assert f"Escalated to the {up} level" in fx.task.status_notes
        levels.append(alert["level"])
        # the clock restarts at the new level: warnings again at 50 % and 80 % of it
        assert tick(w, deadline + 5 + 900).alerts[0]["fraction"] == 0.5
        assert tick(w, deadline + 5 + 1440).alerts[0]["fraction"] == 0.8
        deadline += 5 + 1800
    assert levels == ["street", "district", "city"]
    # Nowhere further up: flagged overdue at the city once per deadline, never escalated again.
    fx = tick(w, deadline + 1)
    [alert] = fx.alerts
    assert (alert["kind"], alert["severity"], fx.task.level) == ("task.overdue", "critical", "city")
    assert tick(w, deadline + 3600) is None
    assert w.book.get(w.task.id).state == "dispatched"


def test_alerts_have_the_contract_fields_and_stable_ids(w):
    fx = tick(w, w.t0 + 1810)
    alert = fx.alerts[0]
    for key in ("alert_id", "kind", "severity", "ts", "detected_at", "subject", "service_request_id", "level",
                "from_level", "grid_code", "deadline", "overdue_s", "lat", "lon"):
        assert key in alert, key
    assert alert["subject"] == w.task.id and alert["ts"].endswith("+08:00") and alert["ts"] == alert["deadline"]
    again = World()
    again.table.update(w.table)
    again.table[w.task.id] = w.task.to_dict()  # the same task before the escalation, processed again elsewhere
    again.task = w.task
    assert tick(again, w.t0 + 1830).alerts[0]["alert_id"] == alert["alert_id"]


def test_a_warning_missed_by_a_late_scan_is_not_sent_after_a_later_one(w):
    [warning] = tick(w, w.t0 + 1500).alerts  # the worker was away past both fractions: only the latest
    assert warning["fraction"] == 0.8
    assert tick(w, w.t0 + 1600) is None


def test_accepting_stops_the_accept_clock_and_starts_the_resolve_clock(w):
    tick(w, w.t0 + 1000)
    w.clock.t = w.t0 + 1200
    fx = w.apply(w.book.event(w.task.id, Event("accept", "siming_traffic_police"), "c1", w.clock.now()))
    assert fx.task.due_at == w.t0 + 1200 + 14400 and fx.task.warned == ()
    assert tick(w, w.t0 + 1900) is None  # the accept deadline no longer applies
    fx = tick(w, w.t0 + 1200 + 14400)
    assert fx.alerts[0]["kind"] == "task.escalated" and fx.alerts[0]["stage"] == "resolve"
    assert fx.task.level == "street" and fx.task.state == "accepted"


def test_approved_extension_moves_the_deadline_and_resolved_tasks_have_none(w):
    book, t0, sid = w.book, w.t0, w.task.id
    w.apply(book.event(sid, Event("accept", "siming_traffic_police"), "c1", t0))
    w.apply(book.event(sid, Event("request_extension", "siming_traffic_police", extension_s=7200), "c2", t0 + 100))
    fx = w.apply(book.event(sid, Event("approve_extension", by="Kaiyuan office"), "c3", t0 + 200))
    assert fx.task.state == "accepted" and fx.task.due_at == t0 + 14400 + 7200
    fx = tick(w, t0 + 14400 + 10)  # past the old deadline: a warning of the longer window, no escalation
    assert [(a["kind"], a["fraction"]) for a in fx.alerts] == [("task.deadline_warning", 0.5)]
    assert w.book.get(sid).level == "community"
    w.apply(book.event(sid, Event("resolve", "siming_traffic_police", note="cleared"), "c4", t0 + 300))
    assert tick(w, t0 + 10 * 86400) is None


def test_a_task_known_only_at_city_level_starts_there(w):
    task = w.open(MAINLAND)
    assert task.level == "city" and task.grid == {"city": "3502"} and task.department == "xiamen_traffic_police"
    w.task = task
    assert tick(w, w.clock.now() + 1800).alerts[0]["kind"] == "task.overdue"


def test_sla_scale_makes_hours_seconds():
    w = World(sla_scale=0.002)
    task = w.open()
    assert task.accept_s == pytest.approx(3.6) and task.resolve_s == pytest.approx(28.8)
    assert sla.check(task, task.created_at + 3.6, (0.5, 0.8)).kind == "escalate"
