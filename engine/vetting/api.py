"""HTTP API on the worker's web server (``web.port``).

* ``POST /api/v1/vetting/applications`` -> 201 with the decision (202 ``pending`` if it takes longer
  than ``vetting.decision_timeout_s``; poll the GET), 400 naming the field.
* ``GET /api/v1/vetting/applications/{id}`` -> the decision with the driver's current status.
* ``GET /api/v1/vetting/drivers/{driver_key}`` -> the driver's status, applications and record count.
* ``POST /api/v1/records`` -> 202 once the records are on Kafka (one object or an array).
* ``GET /api/v1/vetting/rules`` -> the rules in force, with ids and wording.
* ``GET /api/v1/vetting/health`` -> 200 when this worker is ready (partitions assigned), else 503.

A GET is answered by the worker that owns the person's partition: another
worker forwards it there (Faust's router, as ``@app.table_route`` does).
Responses and errors never contain an ID number.

Access (:mod:`engine.web`): applications and decisions need a ``clerk`` key,
records a ``records`` key (``admin`` may do both); rules and health are
public. Bodies are limited to ``web.max_body_bytes``.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import faust
import orjson
from faust.exceptions import SameNode
from faust.web import Request, Response, View

from engine.core.clock import Clock
from engine.core.metrics import WorkerMetrics
from engine.kafka.answers import AnswerWaiter
from engine.vetting.errors import InvalidInput
from engine.vetting.intake import Intake
from engine.vetting.privacy import get_logger
from engine.vetting.service import Vetting
from engine.vetting.settings import VettingConfig
from engine.vetting.topics import VettingTopics, record_key
from engine.vetting.validation import errors_of
from engine.web.guard import app_guard

log = get_logger(__name__)

PREFIX = "/api/v1"
APPLICATION_ID = re.compile(r"([0-9a-f]{64})-[0-9a-f]{12}")
DRIVER_KEY = re.compile(r"[0-9a-f]{64}")


def register(app: faust.App, *, svc: Vetting, topics: VettingTopics, intake: Intake, waiter: AnswerWaiter,
             people: faust.Table, settings: VettingConfig, metrics: WorkerMetrics, clock: Clock,
             partition_of: Callable[[str], int]) -> None:
    timeout = settings.vetting.decision_timeout_s
    guard = app_guard(app, settings.web, lambda reason: metrics.http_refused.labels(reason).inc())

    def invalid(view: View, exc: InvalidInput) -> Response:
        metrics.vetting_inputs_rejected.labels("http", exc.code).inc()
        return view.json({"error": "invalid_input", "field": exc.field, "reason": exc.reason,
                          "errors": errors_of(exc)}, status=400)

    def problem(view: View, status: int, error: str, reason: str) -> Response:
        return view.json({"error": error, "reason": reason}, status=status)

    async def routed(view: View, request: Request, pk: str) -> Response | None:
        """The owner's answer when another worker owns ``pk``; ``None`` when this one does."""
        try:
            return await app.router.route_req(people.name, pk.encode(), view.web, request)  # the table's raw key
        except SameNode:
            return None

    @app.page(f"{PREFIX}/vetting/applications")
    class Applications(View):
        @guard.requires("clerk", action="submit vetting applications")
        async def post(self, request: Request) -> Response:
            started = time.monotonic()
            body = await guard.body(request)
            try:
                application = intake.application(body, suffix=uuid.uuid4().hex[:12], source="http")
            except InvalidInput as exc:
                return invalid(self, exc)
            try:
                await asyncio.wait_for(waiter.ready.wait(), timeout)
            except TimeoutError:
                return problem(self, 503, "unavailable", "the worker is not ready yet; nothing was stored, try again")
            try:
                answer = waiter.expect(application.id)
                sent = await topics.requests.send(key=application.person_key.encode(),
                                                  value=orjson.dumps(application.to_dict()))
                await sent
            except Exception:  # noqa: BLE001 - nothing was stored
                waiter.forget(application.id)
                log.exception("POST applications: could not produce application %s", application.id)
                return problem(self, 503, "unavailable", "Kafka did not confirm the application; try again "
                                                         "(at worst it is decided twice, under two ids)")
            location = f"{PREFIX}/vetting/applications/{application.id}"
            try:
                doc = await asyncio.wait_for(answer, timeout)
            except TimeoutError:
                waiter.forget(application.id)
                return self.json({"id": application.id, "status": "pending", "id_number": application.id_masked,
                                  "driver_key": application.person_key, "location": location},
                                 status=202, headers={"Location": location})
            metrics.vetting_decision_seconds.observe(time.monotonic() - started)
            return self.json(doc, status=201, headers={"Location": location})

    @app.page(f"{PREFIX}/vetting/applications/{{application_id}}")
    class ApplicationById(View):
        @guard.requires("clerk", action="read vetting decisions")
        async def get(self, request: Request, application_id: str) -> Response:
            m = APPLICATION_ID.fullmatch(application_id)
            if not m:
                return problem(self, 404, "not_found", "no such application")
            return await _owner_answer(self, request, m.group(1),
                                       lambda pk: svc.application_view(pk, application_id), "no such application")

    @app.page(f"{PREFIX}/vetting/drivers/{{driver_key}}")
    class DriverByKey(View):
        @guard.requires("clerk", action="read vetting decisions")
        async def get(self, request: Request, driver_key: str) -> Response:
            if not DRIVER_KEY.fullmatch(driver_key):
                return problem(self, 404, "not_found", "no such driver")
            return await _owner_answer(self, request, driver_key, svc.driver_view, "no such driver")

    async def _owner_answer(view: View, request: Request, pk: str, read: Callable[[str], dict[str, Any] | None],
                            missing: str) -> Response:
        try:
            forwarded = await routed(view, request, pk)
        except Exception:  # noqa: BLE001 - owner unknown (rebalancing) or unreachable
            log.warning("GET %s: the owner of the partition could not be reached", request.rel_url.path[:40])
            return problem(view, 503, "unavailable", "the worker holding this record is not reachable; try again")
        if forwarded is not None:
            return forwarded
        doc = read(pk)
        return view.json(doc) if doc else problem(view, 404, "not_found", missing)

    @app.page(f"{PREFIX}/vetting/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            """Ready (200) once this worker has its partitions and follows decisions; else 503."""
            topic = topics.requests.get_topic_name()
            mine = sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)
            try:
                ready = waiter.ready.is_set() and not app.rebalancing and bool(app.consumer.assignment())
            except Exception:  # noqa: BLE001 - consumer not started yet
                ready = False
            return self.json({"ready": ready, "partitions": mine}, status=200 if ready else 503)

    @app.page(f"{PREFIX}/vetting/rules")
    class Rules(View):
        async def get(self, request: Request) -> Response:
            cfg = settings.vetting
            return self.json({"rules": [{"id": r.id, "text": r.describe(cfg), "uses_records": r.uses_records}
                                        for r in svc.rules]})

    @app.page(f"{PREFIX}/records")
    class Records(View):
        @guard.requires("records", action="submit records")
        async def post(self, request: Request) -> Response:
            body = await guard.body(request)
            try:
                recs = intake.records(body)
            except InvalidInput as exc:
                return invalid(self, exc)
            try:
                sent = [await topics.records.send(key=record_key(r.person_key, r.id), value=orjson.dumps(r.to_dict()),
                                                  partition=partition_of(r.person_key)) for r in recs]
                await asyncio.gather(*sent)
            except Exception:  # noqa: BLE001
                log.exception("POST records: could not produce %d records", len(recs))
                return problem(self, 503, "unavailable", "the records could not be written to Kafka; try again")
            return self.json({"accepted": len(recs), "records": [
                {"id": r.id, "kind": r.kind, "id_number": r.id_masked, "driver_key": r.person_key} for r in recs]},
                status=202)
