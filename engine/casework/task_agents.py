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
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
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


def register(app: faust.App, settings: CaseworkConfig, metrics: WorkerMetrics, clock: Clock, topics: Topics,
             tt: TaskTopics, rt: ReportTopics, waiter: AnswerWaiter, directory: TaskDirectory) -> TaskBook:
    cfg, n = settings.tasks, settings.kafka.partitions
    tz = ZoneInfo(settings.city.tz)
    table = app.Table("tasks", default=None, partitions=n, use_partitioner=True, key_type=bytes,
        extra_topic_configs=settings.kafka.table_topic_configs)
    book = TaskBook(StrKeys(table), cfg, tz)
    sink = KafkaAlertSink(app, topics.alerts, metrics, clock)
    lock = asyncio.Lock()
    partitioner, all_partitions = DefaultPartitioner(), list(range(n))
    commands_topic = cfg.topics.commands

    async def emit(fx: Effects) -> None:
        """Outputs, then state, then the outcome; under ``lock``."""
        if fx.alerts:
            await sink.emit(fx.alerts, {})
        futures = []
        if fx.task is not None and fx.publish:
            futures.append(await tt.tasks.send(key=fx.task.id.encode(), value=orjson.dumps(book.doc(fx.task))))
        for d in fx.dispatch:
            futures.append(await tt.dispatch.send(key=d["service_request_id"].encode(), value=orjson.dumps(d)))
        for key in fx.unregister:
            futures.append(await rt.reports.send(key=key.encode(), value=orjson.dumps(
                {"type": "unregister", "place_key": key, "id": fx.task.id if fx.task else ""})))
        for fut in futures:
            await fut
        if fx.task is not None:
            book.put(fx.task)
            if fx.publish:
                directory.upsert(book.doc(fx.task))
        if fx.escalated_to:
            metrics.tasks_escalated.labels(fx.escalated_to).inc()
        if fx.closed_after_s is not None:
            metrics.task_close_seconds.observe(fx.closed_after_s)
        if fx.outcome is not None:
            outcome = fx.outcome.to_dict()
            await (await tt.outcomes.send(key=fx.outcome.id.encode(), value=orjson.dumps(outcome)))
            waiter.resolve(outcome)  # an HTTP request waiting on this worker needs no round trip

    async def reject(event: faust.EventT, code: str, reason: str, body: Any, command_id: str) -> None:
        m = event.message
        source = body.get("source") if isinstance(body, dict) and body.get("source") in ("http", "kafka") else "kafka"
        rec = {"code": code, "reason": reason, "service_request_id": (event.key or b"").decode(errors="replace"),
               "command_id": command_id, "source": source, "topic": m.topic, "partition": m.partition,
               "offset": m.offset,
               "event": body if isinstance(body, dict) else None}
        await (await tt.rejected.send(key=event.key, value=orjson.dumps(rec)))

    @app.agent(tt.inputs, name="track_task")
    async def track_task(stream):
        async for event in stream.events():
            m = event.message
            try:
                task_id = (event.key or b"").decode()
                body = orjson.loads(event.value)
                now = clock.now()
                if m.topic == commands_topic:
                    report = Report.from_dict(body["report"])
                    async with lock:
                        fx = book.create(report, task_id, now) if body["type"] == "create" else \
                            book.merge(report, task_id, now)
                        await emit(fx)
                else:
                    command_id = str(body.get("command_id") or f"{m.topic}:{m.partition}:{m.offset}") \
                        if isinstance(body, dict) else f"{m.topic}:{m.partition}:{m.offset}"
                    try:
                        ev = parse_event(body)
                    except InvalidEvent as exc:
                        metrics.task_events.labels("-", "invalid").inc()
                        await reject(event, exc.code, f"{exc.field}: {exc.reason}", body, command_id)
                        continue
                    async with lock:
                        fx = book.event(task_id, ev, command_id, now)
                        await emit(fx)
                    assert fx.outcome is not None
                    ok = fx.outcome.ok
                    metrics.task_events.labels(ev.action, "applied" if ok else fx.outcome.code).inc()
                    if not ok:
                        await reject(event, fx.outcome.code, fx.outcome.reason, body, command_id)
            except Exception:  # noqa: BLE001 - keep the agent alive
                log.exception("track_task: record at %s[%s]@%s failed", m.topic, m.partition, m.offset)
                metrics.processing_errors.labels("track_task").inc()
            yield None

    def owned() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == commands_topic}

    @app.timer(interval=cfg.scan_s)
    async def escalate_overdue() -> None:
        if app.should_stop or app.rebalancing:  # stopping or partitions moving: the next scan (or owner) does it
            return
        try:
            now = clock.now()
            mine = owned()
            counts: Counter[tuple[str, str]] = Counter()
            async with lock:
                for key, value in list(table.items()):
                    if not value or value.get("state") in FINAL_STATES:
                        continue
                    if partitioner(key, all_partitions, all_partitions) not in mine:
                        continue
                    fx = book.tick(key.decode(), now)
                    if fx is not None:
                        await emit(fx)
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

    @app.task
    async def follow_task_outcomes() -> None:
        await follow_tasks(settings, directory, waiter)

    api.register(app, settings, tt, waiter, directory)
    app.citywatch_tasks = dict(book=book, table=table, topics=tt, directory=directory,  # type: ignore[attr-defined]
                               waiter=waiter, lock=lock, agents=dict(track_task=track_task),
                               timers=dict(escalate_overdue=escalate_overdue))
    return book
