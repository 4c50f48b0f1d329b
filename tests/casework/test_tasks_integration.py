"""Citizen reports to closed tasks on real brokers (Tansu, mosquitto) and a real worker process.

The seed case: a citizen reports a container left on a main road in Siming over Open311 (form-encoded, as the
standard says); a second citizen reports the same container in JSON and is told the existing request id; the
Siming traffic police are notified on ``tasks.dispatch``, accept, work on it and resolve it; the grid office
verifies and closes; the citizen reads ``closed`` with the outcome in ``status_notes``. Around it: a report
over MQTT answered over MQTT, an action from a department's own system over Kafka, bad input of every
entrance refused and recorded, and a report nobody accepts escalating through every level with real time.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.casework.helpers import citizen_settings, start_worker
from tests.conftest import metric_value, read_topic, scrape, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

STATION = {"lat": 24.4705, "long": 118.1113}  # Hubin South Road by the railway station: Kaiyuan, Siming
CEC = {"lat": 24.478, "long": 118.185}  # the exhibition centre: Binhai, Siming
AIRPORT_ROAD = {"lat": 24.5300, "long": 118.1300}  # Huli
CALM = {"sla_scale": 0.02}  # obstruction: accept 36 s, resolve 288 s: no escalation while the test acts
DEMO = {"sla_scale": 0.002, "scan_s": 0.2}  # obstruction: accept 3.6 s, resolve 28.8 s


def produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(run())


def values(bootstrap: str, topic: str, *, min_count: int = 1, timeout: float = 30) -> list[dict]:
    return [orjson.loads(v) for _, v in read_topic(bootstrap, topic, min_count=min_count, timeout=timeout) if v]


def test_seed_case_duplicates_states_and_bad_input(make_settings, spawn, mqtt_probe):
    settings = citizen_settings(make_settings, tasks=CALM)
    rt, tt, bootstrap = settings.reports.topics, settings.tasks.topics, settings.kafka.bootstrap
    worker, http = start_worker(spawn, settings)
    answers = mqtt_probe([f"{settings.reports.mqtt_topic}/answers/#"])

    # The seed report, form-encoded; then the same container from another citizen in JSON, 20 m away.
    status, body = http.call("POST", "/open311/v2/requests.json", form={
        "service_code": "obstruction", **{k: str(v) for k, v in STATION.items()}, "account_id": "app-77",
        "description": "A shipping container left on Hubin South Road", "email": "chen@example.cn",
        "api_key": "ignored-here"})
    assert status == 201, body
    [created] = body
    sid = created["service_request_id"]
    assert set(created) == {"service_request_id", "service_notice", "account_id"} and created["account_id"] == "app-77"
    assert "Siming Traffic Police Brigade" in created["service_notice"]
    status, body = http.call("POST", "/open311/v2/requests.json", {
        "service_code": "obstruction", "lat": STATION["lat"] + 0.00018, "long": STATION["long"],
        "description": "Container blocking a lane"})
    assert status == 201 and body[0]["service_request_id"] == sid, body
    assert "Already reported" in body[0]["service_notice"] and sid in body[0]["service_notice"]

    # A different hazard at the exhibition centre (another department), and one over MQTT with an answer.
    status, body = http.call("POST", "/open311/v2/requests.json", {"service_code": "road_damage", **CEC,
                                                                  "description": "Pothole at the east gate"})
    assert status == 201, body
    pothole = body[0]["service_request_id"]
    assert pothole != sid
    answers.publish(settings.reports.mqtt_topic, orjson.dumps({"service_code": "obstruction", **AIRPORT_ROAD,
                                                               "description": "Fallen load", "token": "tok-1"}))
    wait_for(lambda: answers.received(), 30, "the MQTT report's answer")
    topic, payload = answers.received()[0]
    mqtt_answer = orjson.loads(payload)
    assert topic == f"{settings.reports.mqtt_topic}/answers/tok-1"
    assert mqtt_answer["token"] == "tok-1" and mqtt_answer["duplicate"] is False
    huli = mqtt_answer["service_request_id"]

    # Open311 reads: one request, the list, filters.
    status, [req] = http.call("GET", f"/open311/v2/requests/{sid}.json")
    assert status == 200 and req["status"] == "open" and req["agency_responsible"] == "Siming Traffic Police Brigade"
    assert req["requested_datetime"].endswith("+08:00") and req["expected_datetime"] > req["requested_datetime"]
    assert (req["lat"], req["long"]) == (STATION["lat"], STATION["long"])
    status, listed = http.call("GET", "/open311/v2/requests.json?service_code=road_damage")
    assert status == 200 and [r["service_request_id"] for r in listed] == [pothole]
    wait_for(lambda: len(http.call("GET", "/open311/v2/requests.json")[1]) == 3, 30, "the directory to hold 3 tasks")
    status, err = http.call("GET", "/open311/v2/requests.json?status=pending&start_date=yesterday")
    assert status == 400 and {e["description"].split(":")[0] for e in err} == {"status", "start_date"}
    assert http.call("GET", "/open311/v2/requests/nope.json")[0] == 404
    assert http.call("GET", "/open311/v2/services/obstruction.json") == (200, {"service_code": "obstruction",
                                                                                "attributes": []})
    assert http.call("GET", "/open311/v2/services/ufo.json")[0] == 404
    status, err = http.call("GET", "/open311/v2/services.json?jurisdiction_id=fuzhou")
    assert status == 400 and err[0]["description"].startswith("jurisdiction_id")

    # The department is notified; it accepts, works, resolves; the grid office verifies and closes.
    dispatched = values(bootstrap, tt.dispatch, min_count=3)
    to = {d["service_request_id"]: d["department"] for d in dispatched}
    assert to == {sid: "siming_traffic_police", pothole: "siming_urban_management", huli: "huli_traffic_police"}

    def act(task: str, **event) -> tuple[int, dict]:
        return http.call("POST", f"/api/v1/tasks/{task}/events", event)

    status, refused = act(sid, action="close", by="grid office")
    assert status == 409 and refused["error"] == "not_allowed" and "dispatched" in refused["reason"]
    status, refused = act(sid, action="accept", department="huli_traffic_police")
    assert status == 409 and refused["error"] == "wrong_department"
    status, bad = act(sid, action="teleport")
    assert status == 400 and bad["field"] == "action"
    assert act("20990101-0000000000", action="accept", department="x")[0] == 404
    for event, state in [({"action": "accept", "department": "siming_traffic_police"}, "accepted"),
                         ({"action": "start", "department": "siming_traffic_police"}, "in_progress"),
                         ({"action": "resolve", "department": "siming_traffic_police",
                           "note": "Container towed away"}, "resolved"),
                         ({"action": "verify", "by": "Kaiyuan grid worker"}, "verified"),
                         ({"action": "close", "by": "Kaiyuan grid office"}, "closed")]:
        status, doc = act(sid, **event)
        assert status == 200 and doc["state"] == state, (event, doc)
    status, [req] = http.call("GET", f"/open311/v2/requests/{sid}.json")
    assert req["status"] == "closed" and "Container towed away" in req["status_notes"]
    assert "Siming Traffic Police Brigade" in req["status_notes"]

    # A department's own system acts over Kafka; a malformed event is refused there, with the reason.
    produce(bootstrap, tt.events, pothole.encode(), orjson.dumps({"action": "accept",
                                                                  "department": "siming_urban_management"}))
    produce(bootstrap, tt.events, pothole.encode(), orjson.dumps({"action": "accept"}))
    wait_for(lambda: http.call("GET", f"/api/v1/tasks/{pothole}")[1].get("state") == "accepted", 30,
             "the Kafka event to be applied")
    def refusals() -> list[dict]:
        return values(bootstrap, tt.rejected, min_count=4)

    wait_for(lambda: any(r["source"] == "kafka" for r in refusals()), 30, "the refused Kafka event")
    [refusal] = [r for r in refusals() if r["source"] == "kafka"]
    assert refusal["code"] == "invalid_event" and refusal["reason"].startswith("department")
    assert sorted(r["code"] for r in refusals() if r["source"] == "http") == ["not_allowed", "not_found",
                                                                               "wrong_department"]

    # Bad reports: 400 with the standard's error array, nothing created, recorded with the reason.
    status, err = http.call("POST", "/open311/v2/requests.json", form={"service_code": "obstruction",
                                                                       "lat": "39.9", "long": "116.4"})
    assert status == 400 and err[0]["code"] == 400 and "outside the city" in err[0]["description"]
    status, err = http.call("POST", "/open311/v2/requests.json", {"service_code": "ufo", "lat": "north",
                                                                 "description": "x" * 4001})
    assert status == 400 and {e["description"].split(":")[0] for e in err} >= {"service_code", "lat", "long",
                                                                                 "description"}
    assert http.call("POST", "/open311/v2/requests.json", b"{broken", headers={"Content-Type": "application/json"}
                     )[0] == 400
    answers.publish(settings.reports.mqtt_topic, orjson.dumps({"service_code": "obstruction", "token": "tok-2",
                                                               "phone": "13812345678"}))
    wait_for(lambda: len(answers.received()) == 2, 30, "the bad MQTT report's answer")
    assert orjson.loads(answers.received()[1][1])["errors"][0]["code"] == 400
    rejected = wait_for(lambda: (r := values(bootstrap, rt.rejected, min_count=4)) and len(r) >= 4 and r, 30,
                        "four rejections")
    assert sorted(r["source"] for r in rejected) == ["http", "http", "http", "mqtt"]
    mqtt_rejection = next(r for r in rejected if r["source"] == "mqtt")
    assert mqtt_rejection["payload"]["phone"] == "1*********8" and "13812345678" not in str(rejected)
    assert len(http.call("GET", "/open311/v2/requests.json")[1]) == 3

    # The compacted tasks topic holds every change with the agreed shape; the last of the seed task is closed.
    docs = values(bootstrap, tt.tasks, min_count=8)
    seed = [d for d in docs if d["service_request_id"] == sid]
    assert [d["state"] for d in seed][-1] == "closed" and seed[-1]["status"] == "closed"
    for key in ("service_request_id", "service_code", "service_name", "status", "state", "level", "grid",
                "agency_responsible", "lat", "long", "description", "requested_datetime", "updated_datetime",
                "expected_datetime", "overdue", "status_notes"):
        assert key in seed[-1], key
    assert seed[-1]["grid"] == {"community": "350203004001", "street": "350203004", "district": "350203",
                                "city": "3502"}
    assert seed[-1]["reports"] == 2 and "chen@example.cn" not in str(docs)

    text = scrape(settings.web.port)
    assert metric_value(text, "citywatch_reports_total", outcome="new") == 3
    assert metric_value(text, "citywatch_reports_total", outcome="duplicate") == 1
    assert metric_value(text, "citywatch_reports_rejected_total", reason="out_of_area") == 1
    assert metric_value(text, "citywatch_reports_rejected_total") == 4
    assert metric_value(text, "citywatch_task_close_seconds_count") == 1
    assert metric_value(text, "citywatch_task_events_total", action="close", outcome="not_allowed") == 1
    assert metric_value(text, "citywatch_task_events_total", action="-", outcome="invalid") == 1


def test_unaccepted_report_escalates_through_every_level(make_settings, spawn, mqtt_probe):
    """Real time, short SLAs: nobody accepts, so the task climbs community -> street -> district -> city."""
    settings = citizen_settings(make_settings, tasks=DEMO)
    tt, bootstrap = settings.tasks.topics, settings.kafka.bootstrap
    worker, http = start_worker(spawn, settings)
    alerts = mqtt_probe([f"{settings.mqtt.alerts_topic}/task.escalated/#", f"{settings.mqtt.alerts_topic}/task.overdue/#"])
    citizen = mqtt_probe()
    citizen.publish(settings.reports.mqtt_topic, orjson.dumps({"service_code": "obstruction", **STATION}))
    wait_for(lambda: len(http.call("GET", "/open311/v2/requests.json")[1]) == 1, 30, "the task")
    [req] = http.call("GET", "/open311/v2/requests.json")[1]
    sid = req["service_request_id"]

    def escalations() -> list[dict]:
        return [orjson.loads(p) for t, p in alerts.received() if "/task.escalated/" in t]

    wait_for(lambda: len(escalations()) >= 3, 90, "escalations to street, district and city over MQTT")
    wait_for(lambda: any("/task.overdue/" in t for t, _ in alerts.received()), 60, "the task overdue at the city")
    got = escalations()
    assert [(a["from_level"], a["level"]) for a in got] == [("community", "street"), ("street", "district"),
                                                            ("district", "city")]
    assert [a["grid_code"] for a in got] == ["350203004", "350203", "3502"]
    assert [a["severity"] for a in got] == ["warning", "warning", "critical"]
    first = got[0]
    for key in ("alert_id", "kind", "severity", "ts", "detected_at", "service_request_id", "level", "stage",
                "deadline", "overdue_s"):
        assert key in first, key
    assert first["service_request_id"] == sid and first["stage"] == "accept" and first["ts"] == first["deadline"]
    assert {t for t, p in alerts.received() if "/task.escalated/" in t} == {
        f"{settings.mqtt.alerts_topic}/task.escalated/{sid}"}
    kafka_alerts = values(bootstrap, settings.kafka.topics.alerts, min_count=6)
    kinds = [a["kind"] for a in kafka_alerts if a.get("service_request_id") == sid]
    assert kinds.count("task.escalated") == 3 and kinds.count("task.overdue") == 1
    warnings = [a for a in kafka_alerts if a["kind"] == "task.deadline_warning"]
    assert warnings and {a["fraction"] for a in warnings} <= {0.5, 0.8}
    assert len({a["alert_id"] for a in kafka_alerts}) == len(kafka_alerts)

    status, [req] = http.call("GET", f"/open311/v2/requests/{sid}.json")
    assert req["status"] == "open" and "city level" in req["status_notes"]
    doc = http.call("GET", f"/api/v1/tasks/{sid}")[1]
    assert doc["level"] == "city" and doc["overdue"] is True
    escalated = [d for d in values(bootstrap, tt.dispatch, min_count=4) if d["kind"] == "escalated"]
    assert [(d["level"], d["grid_code"]) for d in escalated] == [("street", "350203004"), ("district", "350203"),
                                                                  ("city", "3502")]
    # Late acceptance still works at the city level, and stops the accept clock.
    status, doc = http.call("POST", f"/api/v1/tasks/{sid}/events", {"action": "accept",
                                                                   "department": "siming_traffic_police"})
    assert status == 200 and doc["state"] == "accepted" and doc["level"] == "city"
    text = scrape(settings.web.port)
    for level in ("street", "district", "city"):
        assert metric_value(text, "citywatch_tasks_escalated_total", level=level) == 1
    wait_for(lambda: metric_value(scrape(settings.web.port), "citywatch_tasks_open", level="city",
                                  state="accepted") == 1, 30, "the open-task gauge")
