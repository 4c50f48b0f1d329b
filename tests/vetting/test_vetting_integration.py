"""Driver vetting end to end on real brokers: HTTP and Kafka in, decisions, monitoring alerts on MQTT and Kafka.

The seed case: a record of repeated drug use in 2006 exists; the application
for that person is rejected naming the rule and the records; a clean
applicant is approved; a bad ID number is refused with nothing stored; a new
record for the approved driver suspends them and raises ``driver.flagged``.
Then a sweep of everything the system wrote - HTTP bodies, every vetting and
changelog topic, the alerts, MQTT, the worker's log - for a raw ID number.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from engine.brokers.ports import free_port
from engine.vetting import idnumber
from tests.conftest import metric_value, read_topic, scrape, wait_for
from tests.sweep import Sweep, id_variants

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SEED_ID = "35020319900101123X"
CLEAN_ID = "11010519491231002X"
KAFKA_ID = idnumber.compose("350206", date(1988, 8, 8), 515)
BAD_ID = "340524198001010013"
SECRET = "integration-hmac-" + uuid.uuid4().hex


def today() -> date:
    """Today in Xiamen, as the worker sees it (the host's zone may differ)."""
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


class Api:
    """A tiny JSON client for one worker; keeps every response body for the privacy sweep.

    Sends the settings' ``records`` key to /records and the ``clerk`` key elsewhere (``key`` overrides).
    """

    bodies: list[str] = []

    def __init__(self, port: int, keys: dict[str, str] | None = None):
        self.base, self.keys = f"http://127.0.0.1:{port}/api/v1", keys or {}

    def call(self, method: str, path: str, body: object = None, key: str | None = None) -> tuple[int, dict]:
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        key = key if key is not None else self.keys.get("records" if path.startswith("/records") else "clerk", "")
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        Api.bodies.append(text)
        return status, json.loads(text)

    def ready(self) -> bool:
        try:
            return self.call("GET", "/vetting/health")[0] == 200
        except OSError:
            return False


def vetting_settings(make_settings, **extra):
    tag = uuid.uuid4().hex[:8]
    names = ("applications", "requests", "decisions", "records_in", "records", "rejected")
    return make_settings(vetting={"hmac_key": SECRET, "topics": {n: f"vetting-{tag}.{n}" for n in names}, **extra})


def role_keys(settings) -> dict[str, str]:
    """The first configured key of each role."""
    keys: dict[str, str] = {}
    for k in settings.web.api_keys.values():
        keys.setdefault(k.role, k.api_key)
    return keys


def start_worker(spawn, settings, name="worker"):
    worker = spawn(name, ["worker"], settings)
    api = Api(settings.web.port, role_keys(settings))

    def ready() -> bool:
        assert worker.proc.poll() is None, f"{name} exited:\n{worker.log()}"
        return api.ready()

    wait_for(ready, 90, f"{name} to be ready")
    return worker, api


def application(id_number: str, name: str, **extra) -> dict:
    return {"name": name, "id_number": id_number, "licence_class": "C1", "licence_first_issued": "2012-05-01",
            "hukou_city": "厦门", "plate": "闽D 8A123", "vehicle_registered": str(today().replace(day=1)),
            **extra}


def produce(bootstrap: str, topic: str, value: bytes) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=b"platform-7")
        finally:
            await producer.stop()

    asyncio.run(run())


def test_seed_case_clean_approval_bad_input_and_monitoring(make_settings, spawn, mqtt_probe):
    settings = vetting_settings(make_settings)
    t, bootstrap = settings.vetting.topics, settings.kafka.bootstrap
    worker, api = start_worker(spawn, settings)
    flagged = mqtt_probe([f"{settings.mqtt.alerts_topic}/driver.flagged/#"])

    # The police feed: repeated drug use in 2006 (ID typed with a lower-case x and spaces).
    status, body = api.call("POST", "/records", [
        {"id": "XMPSB-2006-0113", "id_number": "350203 19900101 123x", "kind": "drug_use", "date": "2006-03-02"},
        {"id": "XMPSB-2006-0542", "id_number": SEED_ID, "kind": "drug_use", "date": "2006-09-15",
         "source": "Xiamen PSB"}])
    assert status == 202 and body["accepted"] == 2
    seed_key = body["records"][0]["driver_key"]
    assert body["records"][1]["driver_key"] == seed_key and body["records"][0]["id_number"] == "3502**********123X"
    wait_for(lambda: api.call("GET", f"/vetting/drivers/{seed_key}")[1].get("records") == 2, 30,
             "the seed records to be stored")

    # The seed case: rejected, with the rule, the records and the masked number.
    status, seed = api.call("POST", "/vetting/applications", application(SEED_ID, "Chen Jianguo"))
    assert status == 201, seed
    assert seed["decision"] == "rejected" and seed["id_number"] == "3502**********123X"
    assert seed["driver_key"] == seed_key and seed["id"].startswith(seed_key)
    (reason,) = seed["reasons"]
    assert reason["rule"] == "art14.drug_use" and reason["records"] == ["XMPSB-2006-0113", "XMPSB-2006-0542"]
    assert "drug use on 2006-03-02 and 2006-09-15" in reason["reason"]

    # A clean applicant: approved and licensed, and the GET says so later.
    status, clean = api.call("POST", "/vetting/applications", application(CLEAN_ID, "Lin Xiaomei"))
    assert status == 201 and (clean["decision"], clean["status"], clean["reasons"]) == ("approved", "licensed", [])
    assert clean["id_number"] == "1101**********002X"
    status, again = api.call("GET", f"/vetting/applications/{clean['id']}")
    assert status == 200 and again["decision"] == "approved" and again["status"] == "licensed"

    # A bad ID number: 400 naming the field, nothing stored.
    status, err = api.call("POST", "/vetting/applications", application(BAD_ID, "Wang Wu"))
    assert status == 400 and err["field"] == "id_number" and "check character" in err["reason"]
    status, err = api.call("POST", "/vetting/applications", {"name": "x"})
    assert status == 400 and {e["field"] for e in err["errors"]} >= {"id_number", "licence_class"}
    status, err = api.call("POST", "/records", {"id": "R1", "id_number": BAD_ID, "kind": "drug_use",
                                                 "date": "2006-01-01"})
    assert status == 400 and err["field"] == "id_number"
    assert api.call("GET", "/vetting/applications/" + "0" * 64 + "-000000000000")[0] == 404

    # The same application on Kafka: decided too, and rejected input lands in the rejected topic, masked.
    produce(bootstrap, t.applications, orjson.dumps(application(KAFKA_ID.lower(), "Huang Lei")))
    produce(bootstrap, t.applications, orjson.dumps(application(BAD_ID, "Kafka Bad")))

    # Monitoring: a drink-driving record for the licensed driver suspends them and alerts.
    status, body = api.call("POST", "/records", {"id": "XMTP-2026-0077", "id_number": CLEAN_ID,
                                                 "kind": "drink_driving", "date": str(today())})
    assert status == 202

    def flagged_alerts() -> list[dict]:
        return [orjson.loads(p) for _, p in flagged.received()]

    wait_for(lambda: flagged_alerts(), 60, "driver.flagged on MQTT")
    (alert,) = flagged_alerts()
    assert alert["kind"] == "driver.flagged" and alert["severity"] == "critical"
    assert alert["rule"] == "art14.drink_driving" and alert["records"] == ["XMTP-2026-0077"]
    assert alert["subject"] == clean["driver_key"] and alert["id_number"] == "1101**********002X"
    assert alert["application_id"] == clean["id"] and alert["action"] == "suspended"
    assert alert["ts"].endswith("+08:00") and alert["detected_at"] and alert["alert_id"]
    topic = flagged.received()[0][0]
    assert topic == f"{settings.mqtt.alerts_topic}/driver.flagged/{clean['driver_key']}"
    kafka_alerts = [orjson.loads(v) for _, v in read_topic(bootstrap, settings.kafka.topics.alerts, min_count=1)]
    assert [a["alert_id"] for a in kafka_alerts if a["kind"] == "driver.flagged"] == [alert["alert_id"]]
    status, now = api.call("GET", f"/vetting/applications/{clean['id']}")
    assert now["status"] == "suspended" and now["suspension"]["record_id"] == "XMTP-2026-0077"
    assert api.call("GET", f"/vetting/drivers/{clean['driver_key']}")[1]["status"] == "suspended"

    # Every decision is on the audit topic with its rule and record ids.
    decisions = [orjson.loads(v) for _, v in read_topic(bootstrap, t.decisions, min_count=3)]
    by_id = {d["id"]: d for d in decisions}
    assert len(decisions) == 3
    assert by_id[seed["id"]]["reasons"][0]["records"] == ["XMPSB-2006-0113", "XMPSB-2006-0542"]
    assert by_id[clean["id"]]["decision"] == "approved"
    (from_kafka,) = [d for d in decisions if d["source"] == "kafka"]
    assert from_kafka["decision"] == "approved" and from_kafka["id_number"] == KAFKA_ID[:4] + "*" * 10 + KAFKA_ID[-4:]
    rejected = [orjson.loads(v) for _, v in read_topic(bootstrap, t.rejected, min_count=1)]
    assert [(r["kind"], r["field"], r["source"]) for r in rejected] == [("application", "id_number", "kafka")]
    requests = read_topic(bootstrap, t.requests, min_count=3)
    assert len(requests) == 3  # the refused HTTP applications never reached Kafka

    text = scrape(settings.web.port)
    assert metric_value(text, "citywatch_vetting_decisions_total", outcome="rejected") == 1
    assert metric_value(text, "citywatch_vetting_decisions_total", outcome="approved") == 2
    assert metric_value(text, "citywatch_vetting_records_total", kind="drug_use") == 2
    assert metric_value(text, "citywatch_vetting_drivers_flagged_total", rule="art14.drink_driving") == 1
    assert metric_value(text, "citywatch_vetting_inputs_rejected_total", source="http", reason="bad_id_number") == 2
    assert metric_value(text, "citywatch_vetting_inputs_rejected_total", source="kafka", reason="bad_id_number") == 1
    assert metric_value(text, "citywatch_alerts_total", kind="driver.flagged", severity="critical") == 1

    # Privacy sweep: nothing the system wrote holds a raw ID number (or the HMAC secret).
    written = [t.requests, t.decisions, t.records, t.rejected, settings.kafka.topics.alerts,
               f"{settings.worker.app_id}-vetting_people-changelog", f"{settings.worker.app_id}-vetting_records-changelog"]
    sweep = Sweep()
    sweep.add_many("HTTP body", Api.bodies)
    sweep.add_many("MQTT alert", [p for _, p in flagged.received()])
    assert sweep.add_topics(bootstrap, written) >= 10
    sweep.add("/metrics", text)
    worker.stop()
    sweep.add("worker log", worker.log_path.read_bytes())
    raw_ids = [v for n in (SEED_ID, CLEAN_ID, KAFKA_ID, BAD_ID) for v in id_variants(n)]
    sweep.assert_clean({"HMAC key": SECRET, **{f"raw ID number #{i}": v for i, v in enumerate(raw_ids)}})


def test_any_worker_answers_for_any_person_and_state_survives_failover(make_settings, spawn):
    """Two workers share the partitions: each answers POSTs and GETs for people the other one owns; when one
    stops, the other restores its people and records from the changelogs and keeps monitoring them."""
    settings = vetting_settings(make_settings)
    second = settings.replace(web={"port": free_port()})
    w1, api1 = start_worker(spawn, settings, "worker-1")
    w2, api2 = start_worker(spawn, second, "worker-2")

    def split() -> bool:
        (s1, p1), (s2, p2) = api1.call("GET", "/vetting/health"), api2.call("GET", "/vetting/health")
        return s1 == s2 == 200 and bool(p1["partitions"]) and bool(p2["partitions"]) \
            and sorted(p1["partitions"] + p2["partitions"]) == list(range(settings.kafka.partitions))

    wait_for(split, 90, "the two workers to split the partitions")
    ids = [idnumber.compose("350211", date(1980 + i, 1 + i, 10 + i), 100 + i) for i in range(8)]
    decided = []
    for i, n in enumerate(ids):
        api = api1 if i % 2 else api2
        status, doc = api.call("POST", "/vetting/applications", application(n, f"Driver {i}"))
        assert status == 201, doc
        assert doc["decision"] == "approved"
        decided.append(doc)
    for doc in decided:
        for api in (api1, api2):
            status, got = api.call("GET", f"/vetting/applications/{doc['id']}")
            assert status == 200 and got["id"] == doc["id"] and got["status"] == "licensed"
    assert w1.proc.poll() is None and w2.proc.poll() is None

    w1.stop()

    def took_over() -> bool:  # ready: its tables restored (records sent during recovery are another story)
        status, health = api2.call("GET", "/vetting/health")
        return status == 200 and health["partitions"] == list(range(settings.kafka.partitions))

    wait_for(took_over, 60, "worker-2 to take over every partition")
    for doc in decided:
        status, got = api2.call("GET", f"/vetting/applications/{doc['id']}")
        assert status == 200 and got["status"] == "licensed", got
    status, _ = api2.call("POST", "/records", [{"id": f"DD-{i}", "id_number": n, "kind": "drink_driving",
                                                "date": str(today())} for i, n in enumerate(ids)])
    assert status == 202

    def suspended() -> int:
        return sum(api2.call("GET", f"/vetting/applications/{d['id']}")[1]["status"] == "suspended" for d in decided)

    wait_for(lambda: suspended() == len(ids), 60, "every driver, on either worker before, to be suspended")
