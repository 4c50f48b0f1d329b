"""The report simulator's citizens and departments, with injected senders and a hand-moved clock."""

from __future__ import annotations

from simulators.reports import Citizens, Departments, SimConfig


def test_citizens_report_over_both_channels_and_repeat_recent_hazards_nearby():
    http, mqtt = [], []
    c = Citizens(SimConfig(url="-", mqtt_share=0.3, duplicate_share=0.25, seed=3), http.append, mqtt.append)
    for _ in range(400):
        c.step()
    assert len(http) + len(mqtt) == 400 and 80 < len(mqtt) < 160
    assert all(isinstance(v, str) for r in http for v in r.values())  # form-encoded
    assert all(r["token"].startswith("sim-3-") for r in mqtt)
    repeats = [r for r in http + mqtt if str(r["description"]).endswith("(still there)")]
    assert 60 < len(repeats) < 140
    firsts = {(float(r["lat"]), float(r["long"])) for r in c.recent}
    for r in repeats[:20]:  # within ~15 m of an earlier report
        assert min(abs(float(r["lat"]) - a) + abs(float(r["long"]) - b) for a, b in firsts) < 2.1e-4


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def note(kind: str = "dispatched", sid: str = "T1", window_s: int = 100) -> dict:
    return {"kind": kind, "service_request_id": sid, "department": "siming_traffic_police",
            "service_code": "obstruction", "sent_at": "2026-09-08T10:00:00+08:00",
            "due_datetime": f"2026-09-08T10:{window_s // 60:02d}:{window_s % 60:02d}+08:00"}


def run(d: Departments, clock: Clock, until: float) -> None:
    while clock.t < until:
        clock.t += 1
        for fn in d.due():
            fn()


def test_departments_answer_on_time_or_late_and_walk_the_task_to_closed():
    acts: list[tuple[str, str, float]] = []
    clock = Clock()

    def act(sid: str, event: dict):
        acts.append((sid, event["action"], clock.t))
        return 200, {"updated_datetime": "2026-09-08T10:00:00+08:00", "due_datetime": "2026-09-08T10:10:00+08:00"}

    for late, bounds in ((0.0, (20, 70)), (1.0, (110, 250))):
        acts.clear()
        clock.t = 0.0
        d = Departments(SimConfig(url="-", late_share=late, return_share=0.0), act, clock)
        d.on_dispatch(note())
        d.on_dispatch(note("escalated", "T2"))  # notices to grid offices are not the department's
        run(d, clock, 3000)
        assert [a for _, a, _ in acts] == ["accept", "start", "resolve", "verify", "close"]
        accepted_at = acts[0][2]
        assert bounds[0] <= accepted_at <= bounds[1] + 1
        assert {sid for sid, _, _ in acts} == {"T1"}


def test_a_returned_task_is_redispatched_to_the_city_wide_department():
    acts = []
    clock = Clock()
    d = Departments(SimConfig(url="-", return_share=1.0, city_wide={"obstruction": "xiamen_traffic_police"}),
                    lambda sid, ev: (acts.append(ev), (409, {}))[1], clock)
    d.on_dispatch(note())
    run(d, clock, 200)
    assert [(e["action"], e["department"]) for e in acts] == [("return", "siming_traffic_police"),
                                                              ("redispatch", "xiamen_traffic_police")]
