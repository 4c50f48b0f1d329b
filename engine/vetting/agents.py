"""Vetting's agents, tables and HTTP API on one Faust worker.

* ``vet_application`` (``requests``, keyed by person key): decides with the person's records from the
  co-partitioned ``vetting_records`` table, produces the decision to ``decisions`` and keeps it in
  ``vetting_people``.
* ``intake_applications`` (``applications``): raw applications from Kafka, validated like HTTP ones and
  forwarded to ``requests`` (or to ``rejected``).
* ``intake_records`` (``records_in``): raw record feeds, validated and written pseudonymised to ``records``.
* ``store_records`` (``records``): keeps each record and re-checks a licensed driver; a record that makes
  them ineligible sends ``driver.flagged`` to ``alerts`` and suspends them.
* ``follow_vetting_decisions`` (a task): follows ``decisions`` so an HTTP request waiting on this worker is
  answered whichever worker decided it (engine.kafka.answers).

Every agent body is guarded: a record that cannot be processed is logged with
topic, partition and offset (ID numbers scrubbed) and counted in
``citywatch_processing_errors_total{agent}``, and the agent goes on.

The agents, the task and their helpers are methods of one :class:`VettingWorker`, built from what it
needs; :func:`register` binds them to the app (a test drives them under Faust's ``test_context()``).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any, cast
from zoneinfo import ZoneInfo

import faust
import orjson

from engine.alerts.kafka_sink import KafkaAlertSink
from engine.core.clock import Clock
from engine.core.metrics import WorkerMetrics
from engine.kafka.answers import AnswerWaiter, follow_answers
from engine.kafka.tables import StrKeys
from engine.kafka.topics import Topics
from engine.vetting import api
from engine.vetting.errors import InvalidInput
from engine.vetting.intake import Intake, rejection
from engine.vetting.models import Application, Record
from engine.vetting.privacy import PersonKeyer, get_logger
from engine.vetting.service import Vetting
from engine.vetting.settings import VettingConfig
from engine.vetting.topics import PersonPartitioner, VettingTopics, declare_vetting_topics, record_key

log = get_logger(__name__)


class VettingWorker:
    """What vetting's agents and its decisions follower share; each is a method here.

    Everything it needs is passed in, so a test can build one over a Faust app's ``test_context()`` (or
    without any app) and call its methods; :func:`register` binds them to the app.
    """

    def __init__(self, *, settings: VettingConfig, metrics: WorkerMetrics, svc: Vetting, topics: VettingTopics,
                 intake: Intake, sink: KafkaAlertSink, waiter: AnswerWaiter,
                 partition_of: PersonPartitioner):
        self.settings, self.metrics, self.svc, self.topics = settings, metrics, svc, topics
        self.intake, self.sink, self.waiter, self.partition_of = intake, sink, waiter, partition_of

    def failed(self, agent: str, event: faust.EventT) -> None:
        """Log (with the record's position) and count a record ``agent`` could not process."""
        m = event.message
        log.exception("%s: record at %s[%s]@%s failed", agent, m.topic, m.partition, m.offset)
        self.metrics.processing_errors.labels(agent).inc()

    async def reject(self, kind: str, exc: InvalidInput, event: faust.EventT) -> None:
        """Count an invalid ``kind`` (application / record) from Kafka and put it on ``rejected``."""
        m = event.message
        self.metrics.vetting_inputs_rejected.labels("kafka", exc.code).inc()
        log.info("%s rejected at %s[%s]@%s: %s: %s", kind, m.topic, m.partition, m.offset, exc.field, exc.reason)
        await self.topics.rejected.send(key=None, value=rejection(
            kind, exc, source="kafka", where={"topic": m.topic, "partition": m.partition, "offset": m.offset},
            body=event.value))

    async def vet_application(self, stream: faust.StreamT) -> AsyncIterator[dict[str, Any] | None]:
        """The agent on ``requests``: yields each decision (``None`` for a record that failed)."""
        svc, metrics = self.svc, self.metrics
        async for event in cast(faust.Stream, stream).events():
            doc = None
            try:
                application = Application.from_dict(orjson.loads(event.value))
                doc, new = svc.vet(application)
                if new:
                    sent = await self.topics.decisions.send(key=application.person_key.encode(),
                                                            value=orjson.dumps(doc))
                    svc.commit(doc)
                    metrics.vetting_decisions.labels(doc["decision"]).inc()
                    await sent
                    log.info("vet_application: %s %s %s", doc["id"], doc["decision"],
                             ",".join(r["rule"] for r in doc["reasons"]) or "-")
                self.waiter.resolve(doc)
            except Exception:  # noqa: BLE001 - keep the agent alive
                self.failed("vet_application", event)
            yield doc

    async def intake_applications(self, stream: faust.StreamT) -> AsyncIterator[None]:
        """The agent on ``applications``: validated applications on to ``requests``, keyed by person."""
        async for event in cast(faust.Stream, stream).events():
            m = event.message
            try:
                suffix = hashlib.sha256(f"{m.topic}|{m.partition}|{m.offset}|{m.timestamp}".encode()).hexdigest()[:12]
                try:
                    application = self.intake.application(event.value, suffix=suffix, source="kafka")
                except InvalidInput as exc:
                    await self.reject("application", exc, event)
                else:
                    await self.topics.requests.send(key=application.person_key.encode(),
                                                    value=orjson.dumps(application.to_dict()))
            except Exception:  # noqa: BLE001
                self.failed("intake_applications", event)
            yield None

    async def intake_records(self, stream: faust.StreamT) -> AsyncIterator[None]:
        """The agent on ``records_in``: validated records, pseudonymised, on to ``records``."""
        async for event in cast(faust.Stream, stream).events():
            try:
                try:
                    rec = self.intake.record(event.value)
                except InvalidInput as exc:
                    await self.reject("record", exc, event)
                else:
                    await self.topics.records.send(key=record_key(rec.person_key, rec.id),
                                                   value=orjson.dumps(rec.to_dict()),
                                                   partition=self.partition_of(rec.person_key))
            except Exception:  # noqa: BLE001
                self.failed("intake_records", event)
            yield None

    async def store_records(self, stream: faust.StreamT) -> AsyncIterator[None]:
        """The agent on ``records``: keeps (or removes) each record; flags a driver it makes ineligible."""
        svc, metrics = self.svc, self.metrics
        async for event in cast(faust.Stream, stream).events():
            try:
                if event.value is None:  # a retraction: the compacted topic's tombstone
                    pk, _, rid = (event.key or b"").decode().partition("/")
                    svc.remove_record(pk, rid)
                else:
                    rec = Record.from_dict(orjson.loads(event.value))
                    flag = svc.add_record(rec)
                    metrics.vetting_records.labels(rec.kind).inc()
                    if flag is not None:
                        await self.sink.emit([flag.alert], {})  # on Kafka before the state that says so
                        svc.suspend(flag)
                        metrics.vetting_drivers_flagged.labels(flag.alert["rule"], flag.action).inc()
                        log.warning("store_records: driver %s %s by record %s (%s)", rec.person_key[:16], flag.action,
                                    rec.id, flag.alert["rule"])
            except Exception:  # noqa: BLE001
                self.failed("store_records", event)
            yield None

    async def follow_vetting_decisions(self) -> None:
        """The task: every decision, from any worker, to :attr:`waiter` (engine.kafka.answers)."""
        await follow_answers("follow_decisions", self.settings.kafka.servers, self.settings.vetting.topics.decisions,
                             self.waiter)


def register(app: faust.App, settings: VettingConfig, metrics: WorkerMetrics, clock: Clock, topics: Topics) -> Vetting:
    """Declare vetting's topics, tables, agents and HTTP views on ``app``; returns the :class:`Vetting`."""
    cfg, n = settings.vetting, settings.kafka.partitions
    keyer = PersonKeyer(cfg.hmac_key)
    if keyer.is_dev_key:
        log.warning("vetting: vetting.hmac_key is not set, using the built-in development key; set "
                    "CITYWATCH_VETTING__HMAC_KEY (the same on every worker) before real ID numbers are processed")
    tz = ZoneInfo(settings.city.tz)
    vt = declare_vetting_topics(app, settings)
    # bytes keys: Faust serialises a table's str keys as JSON whatever its Schema says, which would put a
    # person's changelog entry on another partition than their requests and records (see StrKeys).
    people = cast(faust.Table, app.Table("vetting_people", default=None, partitions=n, use_partitioner=True,
                                         key_type=bytes, extra_topic_configs=settings.kafka.table_topic_configs))
    records = app.Table("vetting_records", default=None, partitions=n, use_partitioner=True, key_type=bytes,
        extra_topic_configs=settings.kafka.table_topic_configs)
    svc = Vetting(cfg, tz, clock, StrKeys(people), StrKeys(records))
    intake = Intake(keyer, cfg, tz, clock)
    waiter = AnswerWaiter()
    partition_of = PersonPartitioner(n)
    vw = VettingWorker(settings=settings, metrics=metrics, svc=svc, topics=vt, intake=intake,
                       sink=KafkaAlertSink(app, topics.alerts, metrics, clock), waiter=waiter,
                       partition_of=partition_of)
    # the names as before (Faust's default would be engine.vetting.agents.<name>): they key app.agents
    agent_list = dict(
        vet_application=app.agent(vt.requests, name="vet_application")(vw.vet_application),
        intake_applications=app.agent(vt.applications, name="intake_applications")(vw.intake_applications),
        intake_records=app.agent(vt.records_in, name="intake_records")(vw.intake_records),
        store_records=app.agent(vt.records, name="store_records")(vw.store_records))
    app.task(vw.follow_vetting_decisions)  # a bound method takes no parameter, so Faust passes it no app

    api.register(app, svc=svc, topics=vt, intake=intake, waiter=waiter, people=people, settings=settings,
                 metrics=metrics, clock=clock, partition_of=partition_of)
    app.citywatch_vetting = dict(service=svc, topics=vt, people=people, records=records,  # type: ignore[attr-defined]
                                 waiter=waiter, worker=vw, agents=agent_list)
    return svc
