"""Tasks on one Faust worker: the ``track_task`` agent, the ``escalate_overdue`` timer, the follower, the API.

* ``track_task`` reads ``tasks.commands`` (create / merge, from the reports side) and ``tasks.events``
  (department and supervisor actions, from Kafka and HTTP), all keyed by task id, with the ``tasks``
  table on the same partitions: one writer per task. Malformed events from Kafka and refused ones go to
  ``tasks.rejected`` with the reason.
* ``escalate_overdue`` runs every ``tasks.scan_s`` over the tasks of the partitions this worker owns
  (standby copies of other partitions are skipped), warns before deadlines, escalates missed ones, and
  sets ``citywatch_tasks_open{level,state}`` for its partitions (workers' values add up).
* Both change a task under one lock and write outputs before state: alerts, the task on ``tasks``,
  notifications on ``tasks.dispatch``, then the table, then the outcome. A worker killed in between
  repeats the outputs (same alert ids, same versions) instead of losing them.

The agent, the timer and the follower are methods of one :class:`TaskWorker`, built from what it needs;
:func:`register` binds them to the app (a test drives them under Faust's ``test_context()``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any
from zoneinfo import ZoneInfo

import faust
import orjson
from aiokafka.partitioner import DefaultPartitioner
from faust.exceptions import NotReady

from engine.alerts.kafka_sink import KafkaAlertSink
from engine.casework import api
from engine.casework.book import Effects, TaskBook
from engine.casework.directory import TaskDirectory
from engine.casework.follow import follow_tasks
from engine.casework.report_models import Report
from engine.casework.report_topics import ReportTopics
from engine.casework.settings import CaseworkConfig
from engine.casework.states import InvalidEvent, parse_event
from engine.casework.task_models import FINAL_STATES, LEVELS, STATES
from engine.casework.task_topics import TaskTopics
from engine.core.clock import Clock
from engine.core.metrics import WorkerMetrics
from engine.kafka.answers import AnswerWaiter
from engine.kafka.tables import StrKeys
from engine.kafka.topics import Topics

log = logging.getLogger(__name__)

OPEN_STATES = [s for s in STATES if s not in FINAL_STATES]


class TaskWorker:
    """What the agent, the timer and the follower of one worker share; each is a method here.

    Everything it needs is passed in, so a test can build one over a Faust app's ``test_context()`` and call
    its methods; :func:`register` binds them to the app. ``owned`` gives the partitions whose tasks the timer
    scans (by default the assignor's active ones); a test without a broker says which.
    """

    def __init__(self, *, app: faust.App, settings: CaseworkConfig, metrics: WorkerMetrics, clock: Clock,
                 tt: TaskTopics, rt: ReportTopics, table: MutableMapping[bytes, Any], book: TaskBook,
                 sink: KafkaAlertSink, waiter: AnswerWaiter, directory: TaskDirectory, lock: asyncio.Lock,
                 owned: Callable[[], set[int]] | None = None):
        self.app, self.settings, self.metrics, self.clock = app, settings, metrics, clock
        self.tt, self.rt, self.table, self.book, self.sink = tt, rt, table, book, sink
        self.waiter, self.directory, self.lock = waiter, directory, lock
        self.commands_topic = settings.tasks.topics.commands
        self.owned = owned if owned is not None else self.assigned_partitions
        self.partitioner, self.all_partitions = DefaultPartitioner(), list(range(settings.kafka.partitions))

    def assigned_partitions(self) -> set[int]:
        """The task partitions this worker owns (not its standbys)."""
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == self.commands_topic}

    async def emit(self, fx: Effects) -> None:
        """Outputs, then state, then the outcome; under ``lock``."""
        tt, book = self.tt, self.book
        if fx.alerts:
            await self.sink.emit(fx.alerts, {})
        futures = []
        if fx.task is not None and fx.publish:
            futures.append(await tt.tasks.send(key=fx.task.id.encode(), value=orjson.dumps(book.doc(fx.task))))
        for d in fx.dispatch:
            futures.append(await tt.dispatch.send(key=d["service_request_id"].encode(), value=orjson.dumps(d)))
        for key in fx.unregister:
            futures.append(await self.rt.reports.send(key=key.encode(), value=orjson.dumps(
                {"type": "unregister", "place_key": key, "id": fx.task.id if fx.task else ""})))
        for fut in futures:
            await fut
        if fx.task is not None:
            book.put(fx.task)
            if fx.publish:
                self.directory.upsert(book.doc(fx.task))
        if fx.escalated_to:
            self.metrics.tasks_escalated.labels(fx.escalated_to).inc()
        if fx.closed_after_s is not None:
            self.metrics.task_close_seconds.observe(fx.closed_after_s)
        if fx.outcome is not None:
            outcome = fx.outcome.to_dict()
            await (await tt.outcomes.send(key=fx.outcome.id.encode(), value=orjson.dumps(outcome)))
            self.waiter.resolve(outcome)  # an HTTP request waiting on this worker needs no round trip

    async def reject(self, event: faust.EventT, code: str, reason: str, body: Any, command_id: str) -> None:
        m = event.message
        source = body.get("source") if isinstance(body, dict) and body.get("source") in ("http", "kafka") else "kafka"
        rec = {"code": code, "reason": reason, "service_request_id": (event.key or b"").decode(errors="replace"),
               "command_id": command_id, "source": source, "topic": m.topic, "partition": m.partition,
               "offset": m.offset,
               "event": body if isinstance(body, dict) else None}
        await (await self.tt.rejected.send(key=event.key, value=orjson.dumps(rec)))

    async def track_task(self, stream: faust.StreamT) -> AsyncIterator[None]:
        """The agent: create / merge commands and department events, one task at a time under ``lock``."""
        book, metrics = self.book, self.metrics
        async for event in stream.events():
            m = event.message
            try:
                task_id = (event.key or b"").decode()
                body = orjson.loads(event.value)
                now = self.clock.now()
                if m.topic == self.commands_topic:
                    report = Report.from_dict(body["report"])
                    async with self.lock:
                        fx = book.create(report, task_id, now) if body["type"] == "create" else \
                            book.merge(report, task_id, now)
                        await self.emit(fx)
                else:
                    command_id = str(body.get("command_id") or f"{m.topic}:{m.partition}:{m.offset}") \
                        if isinstance(body, dict) else f"{m.topic}:{m.partition}:{m.offset}"
                    try:
                        ev = parse_event(body)
                    except InvalidEvent as exc:
                        metrics.task_events.labels("-", "invalid").inc()
                        await self.reject(event, exc.code, f"{exc.field}: {exc.reason}", body, command_id)
                        continue
                    async with self.lock:
                        fx = book.event(task_id, ev, command_id, now)
                        await self.emit(fx)
                    assert fx.outcome is not None
                    ok = fx.outcome.ok
                    metrics.task_events.labels(ev.action, "applied" if ok else fx.outcome.code).inc()
                    if not ok:
                        await self.reject(event, fx.outcome.code, fx.outcome.reason, body, command_id)
            except Exception:  # noqa: BLE001 - keep the agent alive
                log.exception("track_task: record at %s[%s]@%s failed", m.topic, m.partition, m.offset)
                metrics.processing_errors.labels("track_task").inc()
            yield None

    async def escalate_overdue(self) -> None:
        """The timer: warn, escalate or flag the open tasks of the owned partitions; set the open-tasks gauge."""
        # stopping or partitions moving: the next scan (or the new owner) does it
        if self.app.should_stop or self.app.rebalancing:
            return
        metrics = self.metrics
        try:
            now = self.clock.now()
            mine = self.owned()
            counts: Counter[tuple[str, str]] = Counter()
            async with self.lock:
                for key, value in list(self.table.items()):
                    if not value or value.get("state") in FINAL_STATES:
                        continue
                    if self.partitioner(key, self.all_partitions, self.all_partitions) not in mine:
                        continue
                    fx = self.book.tick(key.decode(), now)
                    if fx is not None:
                        await self.emit(fx)
                        value = fx.task.to_dict() if fx.task else value
                    counts[(value["level"], value["state"])] += 1
            for level in LEVELS:
                for state in OPEN_STATES:
                    metrics.tasks_open.labels(level, state).set(counts.get((level, state), 0))
        except NotReady:  # the producer went away under the scan (shutdown): nothing was written after it
            log.info("escalate_overdue: producer not ready; the next scan tries again")
        except Exception:  # noqa: BLE001 - the next scan tries again
            log.exception("escalate_overdue: scan failed")
            metrics.processing_errors.labels("escalate_overdue").inc()

    async def follow_task_outcomes(self) -> None:
        """The task: ``tasks`` into the directory, ``tasks.outcomes`` into the waiter (engine.casework.follow)."""
        await follow_tasks(self.settings, self.directory, self.waiter)


def register(app: faust.App, settings: CaseworkConfig, metrics: WorkerMetrics, clock: Clock, topics: Topics,
             tt: TaskTopics, rt: ReportTopics, waiter: AnswerWaiter, directory: TaskDirectory, *,
             owned: Callable[[], set[int]] | None = None) -> TaskBook:
    """Build the worker's :class:`TaskWorker`, bind its methods to ``app`` and register the API.

    ``owned`` is passed to the worker (None: the assignor's active partitions; a test without a broker names them).
    """
    cfg, n = settings.tasks, settings.kafka.partitions
    table = app.Table("tasks", default=None, partitions=n, use_partitioner=True, key_type=bytes,
        extra_topic_configs=settings.kafka.table_topic_configs)
    book = TaskBook(StrKeys(table), cfg, ZoneInfo(settings.city.tz))
    tw = TaskWorker(app=app, settings=settings, metrics=metrics, clock=clock, tt=tt, rt=rt, table=table, book=book,
                    sink=KafkaAlertSink(app, topics.alerts, metrics, clock), waiter=waiter, directory=directory,
                    lock=asyncio.Lock(), owned=owned)
    track_task = app.agent(tt.inputs, name="track_task")(tw.track_task)
    escalate_overdue = app.timer(interval=cfg.scan_s, name="escalate_overdue")(tw.escalate_overdue)
    app.task(tw.follow_task_outcomes)  # a bound method takes no parameter: Faust passes it no app
    api.register(app, settings, tt, waiter, directory)
    app.citywatch_tasks = dict(book=book, table=table, topics=tt, directory=directory,  # type: ignore[attr-defined]
                               waiter=waiter, lock=tw.lock, agents=dict(track_task=track_task),
                               timers=dict(escalate_overdue=escalate_overdue), worker=tw)
    return book
