"""Every route of a worker's web server, walked without a key: only the documented public ones answer.

The route list comes from the worker's own aiohttp router (``create_app`` in-process, see
``tests/access/routes.py``) and is checked against README "Access control > HTTP" both ways; a running
worker then answers each route as that table says, and Faust's own pages are gone.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from engine.app import create_app
from engine.onemap.api import STATIC
from tests.access.http_calls import call_raw
from tests.access.routes import DocumentedRoute, documented_routes, served_routes
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROLES = ("admin", "clerk", "records", "public", "operator", "department:roads")
KEYS = {role: f"{role.replace(':', '-')}-key-{uuid.uuid4().hex}" for role in ROLES}
API_KEYS = {f"k_{i}": {"api_key": KEYS[role], "role": role} for i, role in enumerate(ROLES)}
PLATE = "闽DH0001"
FAUST_PAGES = ["/table/", "/router/", "/router/topics", "/graph", "/graph/", "/stats/", "/assignment/",
               "/performance/", "/performance/app/"]


def in_process_app(settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The worker's app built as ``citywatch worker`` builds it, not started (its own data folder)."""
    return create_app(settings.replace(worker={"data_dir": str(tmp_path / "in-process")}))


def sample_path(template: str, settings) -> str:  # type: ignore[no-untyped-def]
    """``template`` with plausible values for its parameters (a new parameter needs a value here)."""
    values = {"application_id": "a" * 64 + "-" + "0" * 12, "driver_key": "a" * 64,
              "service_request_id": "20260908-3f9a1c2b7e", "token": uuid.uuid4().hex,
              "service_code": next(iter(settings.tasks.services)), "vehicle_id": PLATE, "filename": "onemap.js"}
    out = template
    for name in [p.strip("{}") for p in re.findall(r"\{[^}]+\}", template)]:
        assert name in values, f"no sample value for path parameter {{{name}}} of {template}; add one"
        out = out.replace(f"{{{name}}}", quote(values[name], safe=""))
    return out


@pytest.fixture
def worker(make_settings, spawn):
    settings = make_settings(web={"api_keys": API_KEYS, "require_api_keys": True})
    proc = spawn("worker", ["worker"], settings)

    def ready() -> bool:
        assert proc.proc.poll() is None, proc.log()
        try:
            return all(call_raw(settings.web.port, "GET", p)[0] == 200
                       for p in ("/health", "/api/v1/vetting/health", "/api/v1/tasks/health"))
        except OSError:
            return False

    wait_for(ready, 120, "the worker to be ready")
    return settings, proc


def test_readme_lists_exactly_the_routes_the_server_has(make_settings, tmp_path):
    served = served_routes(in_process_app(make_settings(), tmp_path))
    documented = documented_routes()
    rows = [(r.method, r.path) for r in documented]
    assert len(rows) == len(set(rows)), "README lists a route twice"
    assert {(m, p) for m, p in served if m != "HEAD"} == set(rows)
    assert {p for m, p in served if m == "HEAD"} == {p for _, p in served}  # HEAD everywhere, answered as GET
    assert ("GET", "/health") in served and not any(p.startswith(("/table", "/router", "/graph")) for _, p in served)


def test_every_route_refuses_a_caller_without_a_key_unless_documented_public(worker, tmp_path):
    settings, proc = worker
    port = settings.web.port
    app = in_process_app(settings, tmp_path)
    served = served_routes(app)
    documented = {(r.method, r.path): r for r in documented_routes()}
    assert {(m, p) for m, p in served if m != "HEAD"} == set(documented)  # what is walked is what is documented
    refused = public = 0

    def expect_public(method: str, path: str, route: DocumentedRoute) -> None:
        status, text, _ = call_raw(port, method, path)
        if "{" in route.path and status == 404:  # an unknown id, answered by the handler, not the router
            assert method == "HEAD" or json.loads(text), (method, path, text)
        else:
            assert status == 200, (method, path, status, text[:200])

    def expect_refused(method: str, path: str, route: DocumentedRoute) -> None:
        body = {} if method == "POST" else None
        status, text, headers = call_raw(port, method, path, body)
        assert status == 401, (method, path, status, text[:200])
        assert headers.get("WWW-Authenticate") == 'Bearer realm="citywatch"', (method, path)  # the guard said no
        assert call_raw(port, method, path, body, {"X-API-Key": "not-a-key-" + uuid.uuid4().hex})[0] == 401, path
        for role in ROLES:
            if role != "admin" and role.split(":")[0] not in route.roles:
                status, text, _ = call_raw(port, method, path, body, {"Authorization": f"Bearer {KEYS[role]}"})
                assert status == 403, (method, path, role, status, text[:200])

    for (method, template), route in sorted(documented.items()):
        path = sample_path(template, settings)
        methods = [method, "HEAD"] if method == "GET" else [method]
        for m in methods:
            if route.public:
                expect_public(m, path, route)
                public += 1
            else:
                expect_refused(m, path, route)
                refused += 1
    for template in sorted({p for _, p in served}):  # HEAD of a POST-only route, and any other method: 405
        path = sample_path(template, settings)
        if ("GET", template) not in documented:
            assert call_raw(port, "HEAD", path)[0] == 405, template
        assert call_raw(port, "DELETE", path)[0] == 405, template
    assert refused >= 10 and public >= 10, (refused, public)

    # Faust's own pages answer nothing: not the table list, not a vehicle's live position, not the hosts.
    tables = list(app.tables.keys())
    assert "tracks" in tables
    faust_paths = FAUST_PAGES + [f"/table/{quote(t)}/" for t in tables] + [
        f"/table/{quote(t)}/{quote(PLATE)}/" for t in tables] + [f"/router/{quote(t)}/{quote(PLATE)}/" for t in tables]
    admin = {"Authorization": f"Bearer {KEYS['admin']}"}
    for path in faust_paths:
        for headers in (None, admin):
            status, text, _ = call_raw(port, "GET", path, headers=headers)
            assert status == 404, (path, status, text[:200])
            assert not any(t in text for t in tables) and settings.worker.app_id not in text, (path, text[:200])
    for path, file in (("/", "index.html"), ("/onemap/static/onemap.js", "onemap.js")):  # the one-map, not Faust's
        assert call_raw(port, "GET", path)[:2] == (200, (STATIC / file).read_text(encoding="utf-8")), path
    assert proc.proc.poll() is None, proc.log()
