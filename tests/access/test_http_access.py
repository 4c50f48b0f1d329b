"""HTTP API keys with roles on a real worker: 401 / 403 / 413 change nothing; the right role gets through."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import orjson
import pytest

from tests.access.http_calls import call
from tests.conftest import metric_value, scrape, wait_for
from tests.sweep import Sweep, read_to_end

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ID = "35020319900101123X"
KEYS = {"admin": "admin-key-" + uuid.uuid4().hex, "clerk": "clerk-key-" + uuid.uuid4().hex,
        "records": "records-key-" + uuid.uuid4().hex, "public": "public-key-" + uuid.uuid4().hex,
        "roads": "roads-key-" + uuid.uuid4().hex}
API_KEYS = {"ops_admin": {"api_key": KEYS["admin"], "role": "admin"},
            "clerk_1": {"api_key": KEYS["clerk"], "role": "clerk"},
            "psb_feed": {"api_key": KEYS["records"], "role": "records"},
            "citizen_app": {"api_key": KEYS["public"], "role": "public"},
            "roads": {"api_key": KEYS["roads"], "role": "department:roads"}}
APPLICATION = {"name": "Chen Jianguo", "id_number": ID, "licence_class": "C1", "licence_first_issued": "2012-05-01",
               "hukou_city": "厦门"}
RECORD = {"id": "XMPSB-2006-0113", "id_number": ID, "kind": "drug_use", "date": "2006-03-02"}


@pytest.fixture
def worker(make_settings, spawn):
    tag = uuid.uuid4().hex[:8]
    names = ("applications", "requests", "decisions", "records_in", "records", "rejected")
    settings = make_settings(web={"api_keys": API_KEYS, "max_body_bytes": 4096},
                             vetting={"hmac_key": "hmac-" + uuid.uuid4().hex,
                                      "topics": {n: f"vetting-{tag}.{n}" for n in names}})
    proc = spawn("worker", ["worker"], settings)

    def ready() -> bool:
        assert proc.proc.poll() is None, proc.log()
        try:
            return call(settings.web.port, "GET", "/api/v1/vetting/health")[0] == 200
        except OSError:
            return False

    wait_for(ready, 90, "the worker to be ready")
    return settings, proc


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_and_roles_decide_and_a_refusal_changes_nothing(worker):
    settings, proc = worker
    port, t = settings.web.port, settings.vetting.topics
    bodies: list[str] = []

    def req(method: str, path: str, body: object = None, headers: dict | None = None) -> tuple[int, dict]:
        status, doc, text = call(port, method, path, body, headers)
        bodies.append(text)
        return status, doc

    # Public: the rules and health need no key.
    assert req("GET", "/api/v1/vetting/rules")[0] == 200

    # Missing, unknown and wrong-role keys on every protected endpoint: 401 / 401 / 403, nothing run.
    protected = [("POST", "/api/v1/vetting/applications", APPLICATION, ("clerk",)),
                 ("POST", "/api/v1/records", RECORD, ("records",)),
                 ("GET", "/api/v1/vetting/drivers/" + "a" * 64, None, ("clerk",)),
                 ("GET", "/api/v1/vetting/applications/" + "a" * 64 + "-" + "0" * 12, None, ("clerk",))]
    for method, path, body, roles in protected:
        status, doc = req(method, path, body)
        assert (status, doc["error"]) == (401, "unauthorized"), (path, doc)
        assert req(method, path, body, bearer("not-a-key-" + uuid.uuid4().hex))[0] == 401
        assert req(method, path, body, {"X-API-Key": KEYS["clerk"][:-1]})[0] == 401
        for role in ("public", "roads", "clerk", "records"):
            if role not in roles:
                status, doc = req(method, path, body, bearer(KEYS[role]))
                assert (status, doc["error"]) == (403, "forbidden"), (path, role, doc)
                assert roles[0] in doc["reason"]

    # Too large a body: 413 naming the limit, even with the right key.
    status, doc = req("POST", "/api/v1/records", [RECORD] * 60, bearer(KEYS["records"]))
    assert status == 413 and "web.max_body_bytes (4096)" in doc["reason"]

    # Nothing reached Kafka.
    assert read_to_end(settings.kafka.bootstrap, [t.requests, t.records], timeout=30) == []

    # The right roles (Bearer or X-API-Key; admin may do both) get through.
    status, doc = req("POST", "/api/v1/records", RECORD, {"X-API-Key": KEYS["records"]})
    assert status == 202, doc
    # 202: the record is on Kafka; the application below must be decided once it is applied (another topic).
    driver = "/api/v1/vetting/drivers/" + doc["records"][0]["driver_key"]
    wait_for(lambda: (req("GET", driver, None, bearer(KEYS["clerk"]))[1] or {}).get("records") == 1, 30,
             "the record to be applied")
    status, decided = req("POST", "/api/v1/vetting/applications", APPLICATION, bearer(KEYS["clerk"]))
    assert status == 201 and decided["decision"] == "rejected", decided
    assert req("GET", f"/api/v1/vetting/applications/{decided['id']}", None, bearer(KEYS["admin"]))[0] == 200
    stored = read_to_end(settings.kafka.bootstrap, [t.requests, t.records], timeout=30)
    assert sorted(topic for topic, *_ in stored) == sorted([t.requests, t.records])

    text = scrape(port)
    assert metric_value(text, "citywatch_http_refused_total", reason="missing_credentials") == 4
    assert metric_value(text, "citywatch_http_refused_total", reason="unknown_credentials") == 8
    assert metric_value(text, "citywatch_http_refused_total", reason="forbidden") == 12
    assert metric_value(text, "citywatch_http_refused_total", reason="body_too_large") == 1

    proc.stop()
    sweep = Sweep()
    sweep.add_many("HTTP body", bodies)
    sweep.add("/metrics", text)
    sweep.add("worker log", proc.log_path.read_bytes())
    sweep.assert_clean({f"{role} key": key for role, key in KEYS.items()} | {"raw ID number": ID})


def test_a_chunked_body_over_the_limit_is_refused_too(worker):
    settings, _ = worker

    def chunks():
        for _ in range(10):
            yield b" " * 1000
        yield json.dumps(RECORD).encode()

    req = urllib.request.Request(f"http://127.0.0.1:{settings.web.port}/api/v1/records", data=chunks(), method="POST",
                                 headers={"Content-Type": "application/json", **bearer(KEYS["records"]),
                                          "Transfer-Encoding": "chunked"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, doc = r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        status, doc = e.code, orjson.loads(e.read())
    assert status == 413 and "web.max_body_bytes" in doc["reason"]


def test_open311_needs_a_key_to_report_and_a_department_moves_only_its_own_tasks(make_settings, spawn):
    from tests.casework.helpers import citizen_settings

    keys = {"public": "citizen-app-" + uuid.uuid4().hex, "siming": "siming-tp-" + uuid.uuid4().hex,
            "huli": "huli-tp-" + uuid.uuid4().hex, "admin": "grid-office-" + uuid.uuid4().hex}
    settings = citizen_settings(make_settings, tasks={"sla_scale": 0.02}, web={"api_keys": {
        "citizen_app": {"api_key": keys["public"], "role": "public"},
        "siming_tp": {"api_key": keys["siming"], "role": "department:siming_traffic_police"},
        "huli_tp": {"api_key": keys["huli"], "role": "department:huli_traffic_police"},
        "grid_office": {"api_key": keys["admin"], "role": "admin"}}})
    proc = spawn("worker", ["worker"], settings)
    port, bodies = settings.web.port, []

    def req(method: str, path: str, body: object = None, key: str | None = None) -> tuple[int, object]:
        status, doc, text = call(port, method, path, body, {"X-API-Key": key} if key else {})
        bodies.append(text)
        return status, doc

    def ready() -> bool:
        assert proc.proc.poll() is None, proc.log()
        try:
            return call(port, "GET", "/open311/v2/requests.json")[0] == 200  # public: no key
        except OSError:
            return False

    wait_for(ready, 120, "the worker")
    report = {"service_code": "obstruction", "lat": 24.4705, "long": 118.1113, "description": "A container on the road"}
    status, err = req("POST", "/open311/v2/requests.json", report)
    assert status == 401 and err[0]["code"] == 401 and "API key" in err[0]["description"]  # Open311's error shape
    assert req("POST", "/open311/v2/requests.json", {**report, "api_key": "made-up-" + uuid.uuid4().hex})[0] == 401
    assert read_to_end(settings.kafka.bootstrap, [settings.reports.topics.reports], timeout=30) == []
    status, created = req("POST", "/open311/v2/requests.json", {**report, "api_key": keys["public"]})  # the standard's way
    assert status in (201, 202), created
    sid = created[0].get("service_request_id")
    assert sid, created

    # Tasks: a department reads and moves only its own; supervisor actions need admin; the public none of it.
    assert req("GET", "/api/v1/tasks")[0] == 401 and req("GET", "/api/v1/tasks", key=keys["public"])[0] == 403
    wait_for(lambda: req("GET", f"/api/v1/tasks/{sid}", key=keys["siming"])[0] == 200, 30, "the task in the directory")
    assert req("GET", f"/api/v1/tasks/{sid}", key=keys["huli"])[0] == 403
    assert [t["service_request_id"] for t in req("GET", "/api/v1/tasks", key=keys["siming"])[1]] == [sid]
    assert req("GET", "/api/v1/tasks", key=keys["huli"])[1] == []
    accept = {"action": "accept", "department": "siming_traffic_police"}
    assert req("POST", f"/api/v1/tasks/{sid}/events", accept, keys["huli"])[0] == 403          # not its department
    assert req("POST", f"/api/v1/tasks/{sid}/events", accept, keys["public"])[0] == 403
    assert req("POST", f"/api/v1/tasks/{sid}/events", {"action": "close", "by": "x"}, keys["siming"])[0] == 403
    assert req("GET", f"/api/v1/tasks/{sid}", key=keys["admin"])[1]["state"] == "dispatched"  # nothing moved
    status, task = req("POST", f"/api/v1/tasks/{sid}/events", accept, keys["siming"])
    assert status == 200 and task["state"] == "accepted", task

    text = scrape(port)
    assert metric_value(text, "citywatch_http_refused_total", reason="missing_credentials") == 2
    assert metric_value(text, "citywatch_http_refused_total", reason="unknown_credentials") == 1
    assert metric_value(text, "citywatch_http_refused_total", reason="forbidden") == 5
    proc.stop()
    sweep = Sweep()
    sweep.add_many("HTTP body", bodies)
    sweep.add("worker log", proc.log_path.read_bytes())
    sweep.add_topics(settings.kafka.bootstrap, [settings.reports.topics.reports, settings.reports.topics.rejected,
                                                settings.tasks.topics.tasks])
    sweep.assert_clean({f"{name} key": k for name, k in keys.items()})
