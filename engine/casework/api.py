"""The departments' and grid offices' HTTP API on the worker's web server.

* ``POST /api/v1/tasks/{id}/events`` with ``{"action", "department", "note", "extension_s", "by"}``
  (engine.casework.states) -> ``200`` with the task as on the ``tasks`` topic; ``409`` with the reason when
  the task cannot take the action now (nothing changes); ``404`` for an unknown task; ``400`` naming the
  field of a malformed event. The event goes to ``tasks.events`` like one from a department's own system,
  and the answer comes from whichever worker owns the task (``tasks.outcomes``); ``202`` if it takes longer
  than ``tasks.answer_timeout_s``.
* ``GET /api/v1/tasks/{id}`` -> the task as on the ``tasks`` topic.
* ``GET /api/v1/tasks/health`` -> ``200 {"ready": true, "partitions": [...]}`` once this worker owns task
  partitions, is not rebalancing and follows the outcomes; else ``503``.
* ``GET /api/v1/tasks?department=&level=&state=&status=`` -> matching tasks, newest first (at most 1000).

Access (engine.web): a ``department:<name>`` key may read that department's tasks and take the department
actions (accept, start, return, request_extension, resolve) for it only; supervisor actions and other
departments' tasks need ``admin``. Wrong or missing keys get 401 / 403 and change nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import faust
import orjson
from faust.web import Request, Response, View

from engine.casework.directory import TaskDirectory
from engine.casework.settings import CaseworkConfig
from engine.casework.states import DEPARTMENT_ACTIONS, InvalidEvent, parse_event
from engine.casework.task_topics import TaskTopics
from engine.kafka.answers import AnswerWaiter
from engine.web.auth import Refused, principal_of
from engine.web.guard import app_guard

log = logging.getLogger(__name__)

PREFIX = "/api/v1/tasks"
JSON = "application/json"
LIST_LIMIT = 1000


def register(app: faust.App, settings: CaseworkConfig, tt: TaskTopics, waiter: AnswerWaiter,
             directory: TaskDirectory) -> None:
    timeout = settings.tasks.answer_timeout_s
    guard = app_guard(app, settings.web)

    def only_theirs(request: Request, department: object) -> None:
        """:class:`Refused` (403, answered and counted by the guard) when a department's key reaches past its own."""
        who = principal_of(request)
        if who.role == "department" and department != who.department:
            raise Refused(403, "forbidden", f"the key of department {who.department!r} acts only for that "
                                            "department's tasks", "forbidden")

    def reply(view: View, body: object, status: int = 200) -> Response:
        return view.bytes(orjson.dumps(body), content_type=JSON, status=status)

    def problem(view: View, status: int, error: str, reason: str, **extra: object) -> Response:
        return reply(view, {"error": error, "reason": reason, **extra}, status)

    @app.page(f"{PREFIX}/{{service_request_id}}/events")
    class Events(View):
        @guard.requires("department", action="act on tasks")
        async def post(self, request: Request, service_request_id: str) -> Response:
            try:
                body = orjson.loads(await guard.body(request) or b"")
            except orjson.JSONDecodeError:
                return problem(self, 400, "invalid_event", "body: is not valid JSON", field="body")
            try:
                event = parse_event(body)
            except InvalidEvent as exc:
                return problem(self, 400, "invalid_event", exc.reason, field=exc.field)
            if principal_of(request).role == "department" and event.action not in DEPARTMENT_ACTIONS:
                raise Refused(403, "forbidden", f"{event.action!r} is a supervisor action (needs admin)", "forbidden")
            only_theirs(request, event.department)
            if not service_request_id or len(service_request_id) > 64:
                return problem(self, 404, "not_found", "no such task")
            try:
                await asyncio.wait_for(waiter.ready.wait(), timeout)
            except TimeoutError:
                return problem(self, 503, "unavailable", "the worker is not ready yet; nothing was stored, try again")
            command_id = uuid.uuid4().hex
            answer = waiter.expect(command_id)
            try:
                sent = await tt.events.send(key=service_request_id.encode(), value=orjson.dumps(
                    {**event.to_dict(), "command_id": command_id, "source": "http"}))
                await sent
            except Exception:  # noqa: BLE001 - nothing was stored
                waiter.forget(command_id)
                log.exception("POST task event: could not produce to %s", tt.events)
                return problem(self, 503, "unavailable", "the event could not be stored; try again")
            try:
                outcome = await asyncio.wait_for(answer, timeout)
            except TimeoutError:
                waiter.forget(command_id)
                return reply(self, {"status": "pending", "command_id": command_id}, 202)
            if outcome.get("ok"):
                return reply(self, outcome["task"], 200)
            return problem(self, int(outcome.get("status") or 409), str(outcome.get("code")),
                           str(outcome.get("reason")), state=(outcome.get("task") or {}).get("state"))

    @app.page(f"{PREFIX}/health")  # before the {id} route, which would match it too
    class Health(View):
        async def get(self, request: Request) -> Response:
            """200 once this worker owns partitions, is not rebalancing, follows outcomes and holds the tasks."""
            mine = sorted(tp.partition for tp in app.assignor.assigned_actives()
                          if tp.topic == settings.tasks.topics.commands)
            ready = bool(mine) and not app.rebalancing and waiter.ready.is_set() and directory.ready.is_set()
            return reply(self, {"ready": ready, "partitions": mine, "tasks": len(directory)}, 200 if ready else 503)

    @app.page(f"{PREFIX}/{{service_request_id}}")
    class TaskById(View):
        @guard.requires("department", action="read tasks")
        async def get(self, request: Request, service_request_id: str) -> Response:
            doc = directory.get(service_request_id)
            if doc:
                only_theirs(request, doc.get("department"))
            return reply(self, doc) if doc else problem(self, 404, "not_found", "no such task")

    @app.page(PREFIX)
    class Tasks(View):
        @guard.requires("department", action="read tasks")
        async def get(self, request: Request) -> Response:
            q = request.query
            wanted = {k: q.get(k) for k in ("department", "level", "state", "status") if q.get(k)}
            who = principal_of(request)
            if who.role == "department":  # a department lists its own tasks only
                wanted["department"] = who.department
            docs = [d for d in directory.all() if all(d.get(k) == v for k, v in wanted.items())]
            docs.sort(key=lambda d: str(d.get("requested_datetime")), reverse=True)
            return reply(self, docs[:LIST_LIMIT])
