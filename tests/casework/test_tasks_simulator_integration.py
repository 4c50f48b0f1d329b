"""The report simulator against a real worker on real brokers: what ``citywatch up`` shows - tasks opened over
HTTP and MQTT, departments answering, some too late so tasks escalate, others closed."""

from __future__ import annotations

import orjson
import pytest

from tests.casework.helpers import citizen_settings, start_worker
from tests.conftest import metric_value, read_topic, scrape, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_simulated_citizens_and_late_departments_make_escalations_and_closed_tasks(make_settings, spawn):
    settings = citizen_settings(make_settings, tasks={"sla_scale": 0.001},
                                reports={"simulator": {"reports_per_min": 120, "late_share": 0.5, "seed": 5}})
    worker, http = start_worker(spawn, settings)
    sim = spawn("reports-sim", ["simulate-reports"], settings)

    def tasks() -> list[dict]:
        assert sim.proc.poll() is None, f"simulator exited:\n{sim.log()}"
        return http.call("GET", "/api/v1/tasks")[1]

    wait_for(lambda: any(t["state"] == "closed" for t in tasks()), 150, "a task the departments closed")
    wait_for(lambda: metric_value(scrape(settings.web.port), "citywatch_tasks_escalated_total") >= 1, 90,
             "an escalation")
    alerts = [orjson.loads(v) for _, v in read_topic(settings.kafka.bootstrap, settings.kafka.topics.alerts,
                                                      min_count=1)]
    assert any(a["kind"] == "task.escalated" for a in alerts)
    records = [orjson.loads(v) for _, v in read_topic(settings.kafka.bootstrap, settings.reports.topics.reports,
                                                       min_count=5)]
    sources = {r["report"]["source"] for r in records if r.get("type") == "report"}
    assert sources == {"http", "mqtt"}
    assert metric_value(scrape(settings.web.port), "citywatch_reports_rejected_total") == 0
