"""The task book: creation, duplicates, events and outcomes are idempotent and say what happened."""

from __future__ import annotations

from engine.casework.report_models import task_id_for
from engine.casework.states import Event
from tests.casework.factories import TZ, World, report


def test_create_routes_notifies_and_answers_and_a_replay_changes_nothing():
    w = World()
    r = report(w.intake, description="A shipping container", email="a@b.cn")
    sid = task_id_for(r, TZ)
    fx = w.apply(w.book.create(r, sid, w.clock.now()))
    task = fx.task
    assert (task.state, task.level, task.department) == ("dispatched", "community", "siming_traffic_police")
    assert task.reports == (r.report_id,) and task.cells == r.cells and task.requested_at == r.received_at
    assert fx.outcome.ok and fx.outcome.status == 201 and fx.outcome.service_request_id == sid
    assert fx.outcome.to_dict()["service_notice"].startswith("Sent to Siming Traffic Police Brigade; expected by")
    [note] = fx.dispatch
    assert note["kind"] == "dispatched" and note["department"] == "siming_traffic_police" and note["long"] == r.lon
    doc = w.book.doc(task)
    assert doc["expected_datetime"].endswith("+08:00") and doc["overdue"] is False and "a@b.cn" not in str(doc)
    replay = w.book.create(r, sid, w.clock.now() + 5)
    assert replay.task is None and replay.dispatch == [] and replay.outcome.service_request_id == sid


def test_merge_adds_the_reporter_once():
    w = World()
    task = w.open()
    other = report(w.intake)
    fx = w.apply(w.book.merge(other, task.id, w.clock.now() + 60))
    assert fx.task.reports == (task.reports[0], other.report_id) and fx.outcome.duplicate
    assert "Already reported: merged into request" in fx.outcome.to_dict()["service_notice"]
    again = w.book.merge(other, task.id, w.clock.now() + 90)
    assert again.task is None and again.outcome.duplicate and again.outcome.service_request_id == task.id


def test_events_answer_not_found_refused_or_applied():
    w = World()
    task = w.open()
    fx = w.book.event("20990101-0000000000", Event("accept", "x"), "c0", 1.0)
    assert (fx.outcome.ok, fx.outcome.status, fx.outcome.code, fx.task) == (False, 404, "not_found", None)
    fx = w.book.event(task.id, Event("verify", by="office"), "c1", 1.0)
    assert (fx.outcome.ok, fx.outcome.status, fx.outcome.code, fx.task) == (False, 409, "not_allowed", None)
    assert fx.outcome.task["state"] == "dispatched"
    fx = w.apply(w.book.event(task.id, Event("accept", "siming_traffic_police"), "c2", task.created_at + 30))
    assert fx.outcome.ok and fx.outcome.id == "c2" and fx.outcome.task["state"] == "accepted"


def test_closing_takes_the_task_out_of_duplicate_checks_and_measures_time_to_close():
    w = World()
    task = w.open()
    t = task.created_at
    for i, ev in enumerate([Event("accept", "siming_traffic_police"), Event("resolve", "siming_traffic_police"),
                            Event("verify"), Event("close")]):
        fx = w.apply(w.book.event(task.id, ev, f"c{i}", t + 3600 * (i + 1)))
    assert fx.task.state == "closed" and fx.unregister == task.cells
    assert fx.closed_after_s == t + 4 * 3600 - task.requested_at
    rejected = w.open()
    fx = w.book.event(rejected.id, Event("reject", note="Not a hazard: a parked car"), "r", t + 60)
    assert fx.task.status == "closed" and fx.unregister == rejected.cells and fx.closed_after_s is not None


def test_a_replayed_event_is_answered_as_before_and_changes_nothing():
    w = World()
    task = w.open()
    first = w.apply(w.book.event(task.id, Event("accept", "siming_traffic_police"), "tasks.events:2:41", 10.0))
    replay = w.book.event(task.id, Event("accept", "siming_traffic_police"), "tasks.events:2:41", 11.0)
    assert replay.task is None and replay.outcome.ok and replay.outcome.status == 200
    assert replay.outcome.task["version"] == first.task.version
    again = w.book.event(task.id, Event("accept", "siming_traffic_police"), "tasks.events:2:99", 12.0)
    assert not again.outcome.ok and again.outcome.code == "not_allowed"  # a new event is judged on its own
