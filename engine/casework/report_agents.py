"""Reports on one Faust worker: the ``merge_duplicates`` agent, MQTT intake and the Open311 API.

``merge_duplicates`` reads ``reports`` (keyed by place key, see
:mod:`engine.casework.dedup`) with the ``report_cells`` table on the same
partitions. A report near a live task of its kind becomes a ``merge`` command
for that task; any other opens a task: a ``create`` command, an entry in its
cell and ``register`` records for the neighbouring cells its radius reaches.
Commands go to ``tasks.commands`` keyed by task id (engine.casework.task_agents takes
it from there). Decisions use the report's own receipt time, so a replayed
report is decided the same way; a replayed first report finds its own task's
entry and repeats the ``create``, which the task side answers idempotently.

The agent and its helpers are methods of one :class:`ReportWorker`, built
from what it needs; :func:`register` binds the agent to the app.

Every agent body is guarded: a record that cannot be processed is logged with
topic, partition and offset and counted in
``citywatch_processing_errors_total{agent}``; the agent goes on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, MutableMapping
from typing import Any
from zoneinfo import ZoneInfo

import faust
import orjson

from engine.casework import dedup, mqtt_intake, open311
from engine.casework.directory import TaskDirectory
from engine.casework.grid import Grid
from engine.casework.intake import Intake
from engine.casework.report_models import Report, task_id_for
from engine.casework.report_topics import ReportTopics, declare_report_topics
from engine.casework.settings import CaseworkConfig
from engine.casework.task_topics import TaskTopics
from engine.core.clock import Clock
from engine.core.metrics import WorkerMetrics
from engine.kafka.answers import AnswerWaiter
from engine.kafka.tables import StrKeys

log = logging.getLogger(__name__)


class ReportWorker:
    """What the ``merge_duplicates`` agent needs, passed in; the agent and its helpers are methods here.

    A test can build one over a Faust app's ``test_context()`` and drive the agent; :func:`register` binds it.
    """

    def __init__(self, *, settings: CaseworkConfig, metrics: WorkerMetrics, cells: MutableMapping[str, Any],
                 rt: ReportTopics, task_topics: TaskTopics):
        self.cfg, self.metrics, self.cells = settings.reports, metrics, cells
        self.rt, self.task_topics = rt, task_topics
        self.tz = ZoneInfo(settings.city.tz)

    async def command(self, kind: str, task_id: str, report: Report) -> Any:
        body = report.to_dict()
        body["contact"] = {}  # contact details stay on the reports topic
        return await self.task_topics.commands.send(key=task_id.encode(), value=orjson.dumps({"type": kind,
                                                                                             "report": body}))

    async def register_in(self, keys: list[str] | tuple[str, ...], entry: dict[str, Any]) -> list[Any]:
        return [await self.rt.reports.send(key=k.encode(), value=orjson.dumps({"type": "register", "place_key": k,
                                                                               "entry": entry})) for k in keys]

    async def on_report(self, r: Report) -> None:
        cfg, cells = self.cfg, self.cells
        d = dedup.decide(cells.get(r.place_key) or [], own=r.place_key, cells=r.cells,
                         first_id=task_id_for(r, self.tz), x=r.x, y=r.y, t=r.received_at,
                         radius_m=cfg.dedup_radius_m, window_s=cfg.dedup_window_s)
        cells[r.place_key] = d.entries
        sent = await self.register_in(d.register, d.entry)
        sent.append(await self.command(d.kind, d.task_id, r))
        if d.kind == "merge":
            self.metrics.reports.labels("duplicate").inc()
        elif d.new:
            self.metrics.reports.labels("new").inc()
        for fut in sent:
            await fut

    async def merge_duplicates(self, stream: faust.StreamT) -> AsyncIterator[None]:
        """The agent: reports, and the register / unregister records of the duplicate index."""
        cfg, cells = self.cfg, self.cells
        async for event in stream.events():
            m = event.message
            try:
                rec = orjson.loads(event.value)
                kind = rec.get("type")
                if kind == "report":
                    await self.on_report(Report.from_dict(rec["report"]))
                elif kind == "register":
                    key, entry = str(rec["place_key"]), rec["entry"]
                    cells[key] = dedup.upsert(cells.get(key) or [], entry, float(entry["t"]), cfg.dedup_window_s)
                elif kind == "unregister":
                    key = str(rec["place_key"])
                    left = dedup.remove(cells.get(key) or [], str(rec["id"]))
                    if left:
                        cells[key] = left
                    elif key in cells:
                        del cells[key]
                else:
                    log.error("merge_duplicates: unknown record type %r at %s[%s]@%s", kind, m.topic, m.partition,
                              m.offset)
            except Exception:  # noqa: BLE001 - keep the agent alive
                log.exception("merge_duplicates: record at %s[%s]@%s failed", m.topic, m.partition, m.offset)
                self.metrics.processing_errors.labels("merge_duplicates").inc()
            yield None


def register(app: faust.App, settings: CaseworkConfig, metrics: WorkerMetrics, clock: Clock, grid: Grid,
             task_topics: TaskTopics, waiter: AnswerWaiter, directory: TaskDirectory) -> ReportTopics:
    """Build the worker's :class:`ReportWorker`, bind its agent to ``app``, register MQTT intake and Open311."""
    rt = declare_report_topics(app, settings)
    # bytes keys: a str-keyed Faust table would write JSON-quoted keys to its changelog, on other partitions
    # than the reports of the cell (see engine.kafka.tables).
    cells_table = app.Table("report_cells", default=None, partitions=settings.kafka.partitions,
        use_partitioner=True, key_type=bytes, extra_topic_configs=settings.kafka.table_topic_configs)
    intake = Intake(settings, grid, clock)
    rw = ReportWorker(settings=settings, metrics=metrics, cells=StrKeys(cells_table), rt=rt, task_topics=task_topics)
    merge_duplicates = app.agent(rt.reports, name="merge_duplicates")(rw.merge_duplicates)
    mqtt_intake.register(app, settings, intake, rt, waiter, metrics)
    open311.register(app, settings, intake, rt, waiter, directory, metrics)
    app.citywatch_reports = dict(topics=rt, cells=cells_table, intake=intake, grid=grid,  # type: ignore[attr-defined]
                                 agents=dict(merge_duplicates=merge_duplicates), worker=rw)
    return rt
