"""The one-map's data behind API keys, on a real worker: the page is public, the data needs an operator.

The stream, the snapshot and the tracks answer 401 without a key or with an unknown one, 403 to every
role but ``operator`` and ``admin``, in a header or in the page's ``citywatch_key`` cookie (headers win);
a key in the URL is never taken. The cookie counts on these read-only routes only: a state-changing
route ignores it (a page of another site or port could otherwise make the browser use it). Every
refusal is counted; no key appears in any answer, in /metrics or in the worker's log.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from tests.access.http_calls import call
from tests.conftest import metric_value, scrape, wait_for
from tests.onemap.sse_client import MapClient
from tests.sweep import Sweep

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

KEYS = {role: f"{role}-key-{uuid.uuid4().hex}" for role in ("operator", "admin", "clerk", "records", "public",
                                                            "roads")}
API_KEYS = {"dispatch_1": {"api_key": KEYS["operator"], "role": "operator"},
            "ops_admin": {"api_key": KEYS["admin"], "role": "admin"},
            "clerk_1": {"api_key": KEYS["clerk"], "role": "clerk"},
            "psb_feed": {"api_key": KEYS["records"], "role": "records"},
            "citizen_app": {"api_key": KEYS["public"], "role": "public"},
            "roads": {"api_key": KEYS["roads"], "role": "department:roads"}}
UNKNOWN = f"unknown-key-{uuid.uuid4().hex}"
DATA = ["/api/v1/onemap/stream", "/api/v1/onemap/snapshot",
        "/api/v1/onemap/vehicles/" + urllib.parse.quote("闽DT0001") + "/track"]


def cookie(key: str) -> dict[str, str]:
    return {"Cookie": f"theme=dark; citywatch_key={urllib.parse.quote(key)}"}


def test_only_an_operator_or_admin_key_reads_the_map_and_every_refusal_is_counted(make_settings, spawn):
    settings = make_settings(web={"api_keys": API_KEYS})
    worker = spawn("worker", ["worker"], settings)
    port, bodies = settings.web.port, []

    def ready() -> bool:
        assert worker.proc.poll() is None, worker.log()
        try:
            return call(port, "GET", "/api/v1/onemap/snapshot", headers={"X-API-Key": KEYS["operator"]})[0] == 200
        except OSError:
            return False

    wait_for(ready, 90, "the worker's one-map")

    def status(method: str, path: str, headers: dict[str, str], body: object = None) -> int:
        if path.endswith("/stream"):  # urllib would wait for the end of a stream that was let through
            try:
                client = MapClient(f"http://127.0.0.1:{port}", headers)
            except urllib.error.HTTPError as e:
                bodies.append(e.read().decode())
                return e.code
            try:
                wait_for(lambda: client.events, 30, "the snapshot event")
                assert client.events[0][0] == "snapshot"
            finally:
                client.close()
            return 200
        got, _, text = call(port, method, path, body, headers)
        bodies.append(text)
        return got

    # The page and its assets: public (no data in them).
    for path in ("/", "/onemap", "/onemap/static/onemap.js", "/onemap/static/vendor/leaflet/leaflet.js"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            assert r.status == 200, path
            if path in ("/", "/onemap"):
                assert b"Citywatch one-map" in r.read() and r.headers.get_content_type() == "text/html"

    through = {"/api/v1/onemap/stream": 200, "/api/v1/onemap/snapshot": 200, DATA[2]: 404}  # nobody is on the map
    refused = {"missing_credentials": 0, "unknown_credentials": 0, "forbidden": 0}
    cases = [({}, 401, "missing_credentials"),
             ({"X-API-Key": UNKNOWN}, 401, "unknown_credentials"),
             (cookie(UNKNOWN), 401, "unknown_credentials"),
             ({"X-API-Key": KEYS["operator"][:-1]}, 401, "unknown_credentials"),
             *[(h(KEYS[role]), 403, "forbidden") for role in ("clerk", "records", "public", "roads")
               for h in (lambda k: {"Authorization": f"Bearer {k}"}, cookie)],
             ({"Authorization": f"Bearer {KEYS['operator']}"}, None, None),
             ({"X-API-Key": KEYS["operator"]}, None, None),
             (cookie(KEYS["operator"]), None, None),
             ({"X-API-Key": KEYS["admin"]}, None, None),
             (cookie(KEYS["admin"]), None, None),
             ({**cookie(KEYS["operator"]), "X-API-Key": KEYS["clerk"]}, 403, "forbidden"),  # the header wins
             ({**cookie(UNKNOWN), "X-API-Key": KEYS["operator"]}, None, None)]
    for path in DATA:
        for headers, expected, label in cases:
            assert status("GET", path, headers) == (expected or through[path]), (path, sorted(headers))
            if label:
                refused[label] += 1
        for query in ("api_key", "key", "citywatch_key", "token"):  # never from the URL (logs, history)
            assert status("GET", f"{path}?{query}={urllib.parse.quote(KEYS['operator'])}", {}) == 401, query
            refused["missing_credentials"] += 1

    # The cookie is for the map only: routes that change something (or read other data) ignore it ...
    record = {"id": "XMPSB-2006-0113", "id_number": "35020319900101123X", "kind": "drug_use", "date": "2006-03-02"}
    assert status("POST", "/api/v1/records", cookie(KEYS["admin"]), [record]) == 401
    assert status("GET", "/api/v1/tasks", cookie(KEYS["admin"])) == 401
    refused["missing_credentials"] += 2
    # ... and the operator's key is read-only: the map and nothing else.
    assert status("POST", "/api/v1/records", {"X-API-Key": KEYS["operator"]}, [record]) == 403
    assert status("GET", "/api/v1/tasks", {"X-API-Key": KEYS["operator"]}) == 403
    refused["forbidden"] += 2

    text = scrape(port)
    for label, n in refused.items():
        assert metric_value(text, "citywatch_http_refused_total", reason=label) == n, label
    assert worker.stop() == 0, worker.log()
    sweep = Sweep()
    sweep.add_many("HTTP body", bodies)
    sweep.add("/metrics", text)
    sweep.add("worker log", worker.log_path.read_bytes())
    sweep.assert_clean({f"{role} key": key for role, key in KEYS.items()} | {"unknown key": UNKNOWN})
