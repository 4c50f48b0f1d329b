"""Open311 GeoReport v2 (JSON) on the worker's web server, under ``/open311/v2/``.

* ``GET services.json`` - the services (hazard categories) of ``tasks.services``.
* ``GET services/{service_code}.json`` - a service definition (no attributes: ``metadata`` is false).
* ``POST requests.json`` - a report, form-encoded as the standard says or JSON. ``201`` with
  ``[{"service_request_id", "service_notice", "account_id"}]``; a duplicate of an open request answers with
  *that* request's id and a notice saying so; ``202`` with ``[{"token", ...}]`` if the task is not known
  within ``reports.answer_timeout_s`` (then ``GET tokens/{token}.json``). ``400`` with
  ``[{"code": 400, "description": "<field>: <reason>"}, ...]`` changes nothing.
* ``GET requests.json`` - filtered list (:mod:`engine.casework.queries`); ``GET requests/{id}.json`` - one
  request as a one-element list (``404`` when unknown).
* ``GET tokens/{token}.json`` - ``[{"service_request_id", "token"}]`` once the report's request is known.

Reads come from the worker's directory of all tasks (engine.casework.directory), so any worker answers any
request. A POST needs an API key (engine.web: any role; ``X-API-Key`` / ``Authorization: Bearer``, or
``api_key`` in the body as the standard has it, taken out before anything is stored): ``401`` without one;
the GETs are public and show only the standard's public fields. A foreign ``jurisdiction_id`` is refused. Datetimes are ISO 8601 with the city's offset.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View

from engine.casework.directory import TaskDirectory
from engine.casework.errors import InvalidReport
from engine.casework.intake import Intake, decode_body, rejection
from engine.casework.queries import as_request, parse_filters, select, services_list
from engine.casework.report_topics import ReportTopics
from engine.casework.settings import CaseworkConfig
from engine.core.metrics import WorkerMetrics
from engine.kafka.answers import AnswerWaiter
from engine.web.auth import Refused
from engine.web.guard import app_guard

log = logging.getLogger(__name__)

PREFIX = "/open311/v2"
JSON = "application/json"


def register(app: faust.App, settings: CaseworkConfig, intake: Intake, topics: ReportTopics, waiter: AnswerWaiter,
             directory: TaskDirectory, metrics: WorkerMetrics) -> None:
    cfg = settings.reports
    guard = app_guard(app, settings.web, lambda reason: metrics.http_refused.labels(reason).inc())

    def open311_refusal(exc: Refused) -> list[dict[str, Any]]:
        return [{"code": exc.status, "description": exc.reason}]

    def reply(view: View, body: Any, status: int = 200) -> Response:
        return view.bytes(orjson.dumps(body), content_type=JSON, status=status)

    def errors(view: View, status: int, description: str) -> Response:
        return reply(view, [{"code": status, "description": description}], status)

    def foreign(request: Request) -> str | None:
        j = request.query.get("jurisdiction_id")
        return None if not j or j == cfg.jurisdiction_id else j

    async def directory_ready(view: View) -> Response | None:
        try:
            await asyncio.wait_for(directory.ready.wait(), cfg.answer_timeout_s)
        except TimeoutError:
            return errors(view, 503, "this worker is still reading the task list; try again")
        return None

    @app.page(f"{PREFIX}/services.json")
    class Services(View):
        async def get(self, request: Request) -> Response:
            if (j := foreign(request)) is not None:
                return errors(self, 400, f"jurisdiction_id: {j[:64]!r} is not served here ({cfg.jurisdiction_id})")
            return reply(self, services_list(settings.tasks.services))

    @app.page(f"{PREFIX}/services/{{service_code}}.json")
    class ServiceDefinition(View):
        async def get(self, request: Request, service_code: str) -> Response:
            if service_code not in settings.tasks.services:
                return errors(self, 404, f"service_code: {service_code[:64]!r} is not a service here")
            return reply(self, {"service_code": service_code, "attributes": []})

    @app.page(f"{PREFIX}/requests.json")
    class Requests(View):
        async def get(self, request: Request) -> Response:
            if (j := foreign(request)) is not None:
                return errors(self, 400, f"jurisdiction_id: {j[:64]!r} is not served here ({cfg.jurisdiction_id})")
            try:
                filters = parse_filters(request.query, cfg=cfg, now=intake.clock.now())
            except InvalidReport as exc:
                return reply(self, exc.open311(), 400)
            if (busy := await directory_ready(self)) is not None:
                return busy
            return reply(self, [as_request(d) for d in select(directory.all(), filters)])

        @guard.requires("public", "clerk", "records", "department", action="submit a service request",
                        key_in_body=True, body=open311_refusal)
        async def post(self, request: Request) -> Response:
            body = await guard.body(request)
            report_id = uuid.uuid4().hex
            args: Any = None
            try:
                args = decode_body(body, request.headers.get("Content-Type", ""))
                report = intake.report(args, report_id=report_id, source="http")
            except InvalidReport as exc:
                metrics.reports_rejected.labels(exc.code).inc()
                try:
                    fut = await topics.rejected.send(key=None, value=rejection(
                        exc, source="http", received_at=intake.clock.now(), args=args, raw_len=len(body)))
                    await fut
                except Exception:  # noqa: BLE001 - the client still learns what was wrong
                    log.exception("POST requests: could not record a rejection on %s", topics.rejected)
                return reply(self, exc.open311(), 400)
            try:
                await asyncio.wait_for(waiter.ready.wait(), cfg.answer_timeout_s)
            except TimeoutError:
                return errors(self, 503, "the worker is not ready yet; nothing was stored, try again")
            answer = waiter.expect(report_id)
            try:
                sent = await topics.reports.send(key=report.place_key.encode(), value=report.to_record())
                await sent
            except Exception:  # noqa: BLE001 - nothing was stored
                waiter.forget(report_id)
                log.exception("POST requests: could not produce report %s", report_id)
                return errors(self, 503, "the report could not be stored; try again")
            account = report.contact.get("account_id")
            try:
                outcome = await asyncio.wait_for(answer, cfg.answer_timeout_s)
            except TimeoutError:
                waiter.forget(report_id)
                return reply(self, [{"token": report_id, "service_notice": "Received; the request id is not known "
                                     f"yet: GET {PREFIX}/tokens/{report_id}.json", "account_id": account}], 202)
            return reply(self, [{"service_request_id": outcome["service_request_id"],
                                 "service_notice": outcome.get("service_notice"), "account_id": account}], 201)

    @app.page(f"{PREFIX}/requests/{{service_request_id}}.json")
    class RequestById(View):
        async def get(self, request: Request, service_request_id: str) -> Response:
            if (busy := await directory_ready(self)) is not None:
                return busy
            doc = directory.get(service_request_id)
            if doc is None:
                return errors(self, 404, f"service_request_id: no request {service_request_id[:64]!r}")
            return reply(self, [as_request(doc)])

    @app.page(f"{PREFIX}/tokens/{{token}}.json")
    class Token(View):
        async def get(self, request: Request, token: str) -> Response:
            sid = directory.tokens.get(token)
            if sid is None:
                return errors(self, 404, f"token: {token[:64]!r} is not known to this worker (yet)")
            return reply(self, [{"service_request_id": sid, "token": token}])
