"""Shared by the reports/tasks integration tests: per-test topic names, an HTTP client, a worker that is ready."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from tests.conftest import wait_for

REPORT_TOPICS = ("reports", "rejected")
TASK_TOPICS = ("tasks", "commands", "events", "dispatch", "outcomes", "rejected")


def citizen_settings(make_settings, **sections: dict):
    """Settings with this test's own report and task topics and MQTT report topic."""
    tag = uuid.uuid4().hex[:8]
    reports = {"topics": {n: f"reports-{tag}.{n}" for n in REPORT_TOPICS}, "mqtt_topic": f"t{tag}/reports",
               **sections.pop("reports", {})}
    tasks = {"topics": {n: f"tasks-{tag}.{n}" for n in TASK_TOPICS}, **sections.pop("tasks", {})}
    return make_settings(reports=reports, tasks=tasks, **sections)


class Http:
    """A tiny client for one worker's web server; sends ``api_key`` (engine.web) unless a call names its own."""

    def __init__(self, port: int, api_key: str | None = None):
        self.base, self.api_key = f"http://127.0.0.1:{port}", api_key

    def call(self, method: str, path: str, body: Any = None, *, form: dict | None = None,
             headers: dict | None = None) -> tuple[int, Any]:
        data, hdrs = None, dict(headers or {})
        if self.api_key and not {"X-API-Key", "Authorization"} & set(hdrs):
            hdrs["X-API-Key"] = self.api_key
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        return status, json.loads(text) if text else None

    def ready(self) -> bool:
        try:
            return self.call("GET", "/api/v1/tasks/health")[0] == 200  # partitions, outcomes and tasks in hand
        except OSError:
            return False


def start_worker(spawn, settings, name: str = "worker"):
    worker = spawn(name, ["worker"], settings)
    http = Http(settings.web.port, next(k.api_key for k in settings.web.api_keys.values() if k.role == "admin"))

    def ready() -> bool:
        assert worker.proc.poll() is None, f"{name} exited:\n{worker.log()}"
        return http.ready()

    wait_for(ready, 120, f"{name} to be ready")
    return worker, http
