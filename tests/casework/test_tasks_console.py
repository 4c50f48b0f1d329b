"""``citywatch up`` prints a readable line for every task alert."""

from __future__ import annotations

from engine.casework.states import Event
from engine.up import format_alert
from tests.casework.factories import World


def test_task_alert_lines():
    w = World()
    task = w.open()
    t = task.created_at
    warn = w.apply(w.book.tick(task.id, t + 1500)).alerts[0]
    up = w.apply(w.book.tick(task.id, t + 1830)).alerts[0]
    line = format_alert(warn)
    assert "task.deadline_warning" in line and task.id in line and "80% of the time to be accepted" in line
    line = format_alert(up)
    assert line.startswith("!  ") and "WARNING" in line and task.id in line and "(obstruction)" in line
    assert "escalated community -> street Kaiyuan Subdistrict [350203004]" in line
    assert "not accepted by Siming Traffic Police Brigade, 30 s late" in line and "at 24.47050,118.11130" in line
    w.apply(w.book.event(task.id, Event("accept", "siming_traffic_police"), "c", t + 1900))
    for _ in range(3):
        fx = w.book.tick(task.id, w.book.get(task.id).due_at + 1)
        w.apply(fx)
    overdue = fx.alerts[0]
    assert overdue["kind"] == "task.overdue"
    assert "overdue at the city Xiamen [3502]: not resolved" in format_alert(overdue)
    assert format_alert(overdue).startswith("!! ")
