"""Vetting's agents, tables and HTTP API on one Faust worker.

* ``vet_application`` (``requests``, keyed by person key): decides with the person's records from the
  co-partitioned ``vetting_records`` table, produces the decision to ``decisions`` and keeps it in
  ``vetting_people``.
* ``intake_applications`` (``applications``): raw applications from Kafka, validated like HTTP ones and
  forwarded to ``requests`` (or to ``rejected``).
* ``intake_records`` (``records_in``): raw record feeds, validated and written pseudonymised to ``records``.
* ``store_records`` (``records``): keeps each record and re-checks a licensed driver; a record that makes
  them ineligible sends ``driver.flagged`` to ``alerts`` and suspends them.

Every agent body is guarded: a record that cannot be processed is logged with
topic, partition and offset (ID numbers scrubbed) and counted in
``citywatch_processing_errors_total{agent}``, and the agent goes on.
"""

from __future__ import annotations

import hashlib
from typing import cast
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
from engine.vetting.topics import PersonPartitioner, declare_vetting_topics, record_key

log = get_logger(__name__)


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
    sink = KafkaAlertSink(app, topics.alerts, metrics, clock)
    waiter = AnswerWaiter()
    partition_of = PersonPartitioner(n)

    def failed(agent: str, event: faust.EventT) -> None:
        m = event.message
        log.exception("%s: record at %s[%s]@%s failed", agent, m.topic, m.partition, m.offset)
        metrics.processing_errors.labels(agent).inc()

    async def reject(kind: str, exc: InvalidInput, event: faust.EventT) -> None:
        m = event.message
        metrics.vetting_inputs_rejected.labels("kafka", exc.code).inc()
        log.info("%s rejected at %s[%s]@%s: %s: %s", kind, m.topic, m.partition, m.offset, exc.field, exc.reason)
        await vt.rejected.send(key=None, value=rejection(
            kind, exc, source="kafka", where={"topic": m.topic, "partition": m.partition, "offset": m.offset},
            body=event.value))

    @app.agent(vt.requests, name="vet_application")
    async def vet_application(stream):
        async for event in stream.events():
            doc = None
            try:
                application = Application.from_dict(orjson.loads(event.value))
                doc, new = svc.vet(application)
                if new:
                    sent = await vt.decisions.send(key=application.person_key.encode(), value=orjson.dumps(doc))
                    svc.commit(doc)
                    metrics.vetting_decisions.labels(doc["decision"]).inc()
                    await sent
                    log.info("vet_application: %s %s %s", doc["id"], doc["decision"],
                             ",".join(r["rule"] for r in doc["reasons"]) or "-")
                waiter.resolve(doc)
            except Exception:  # noqa: BLE001 - keep the agent alive
                failed("vet_application", event)
            yield doc

    @app.agent(vt.applications, name="intake_applications")
    async def intake_applications(stream):
        async for event in stream.events():
            m = event.message
            try:
                suffix = hashlib.sha256(f"{m.topic}|{m.partition}|{m.offset}|{m.timestamp}".encode()).hexdigest()[:12]
                try:
                    application = intake.application(event.value, suffix=suffix, source="kafka")
                except InvalidInput as exc:
                    await reject("application", exc, event)
                else:
                    await vt.requests.send(key=application.person_key.encode(),
                                           value=orjson.dumps(application.to_dict()))
            except Exception:  # noqa: BLE001
                failed("intake_applications", event)
            yield None

    @app.agent(vt.records_in, name="intake_records")
    async def intake_records(stream):
        async for event in stream.events():
            try:
                try:
                    rec = intake.record(event.value)
                except InvalidInput as exc:
                    await reject("record", exc, event)
                else:
                    await vt.records.send(key=record_key(rec.person_key, rec.id), value=orjson.dumps(rec.to_dict()),
                                          partition=partition_of(rec.person_key))
            except Exception:  # noqa: BLE001
                failed("intake_records", event)
            yield None

    @app.agent(vt.records, name="store_records")
    async def store_records(stream):
        async for event in stream.events():
            try:
                if event.value is None:  # a retraction: the compacted topic's tombstone
                    pk, _, rid = (event.key or b"").decode().partition("/")
                    svc.remove_record(pk, rid)
                else:
                    rec = Record.from_dict(orjson.loads(event.value))
                    flag = svc.add_record(rec)
                    metrics.vetting_records.labels(rec.kind).inc()
                    if flag is not None:
                        await sink.emit([flag.alert], {})  # on Kafka before the state that says so
                        svc.suspend(flag)
                        metrics.vetting_drivers_flagged.labels(flag.alert["rule"], flag.action).inc()
                        log.warning("store_records: driver %s %s by record %s (%s)", rec.person_key[:16], flag.action,
                                    rec.id, flag.alert["rule"])
            except Exception:  # noqa: BLE001
                failed("store_records", event)
            yield None

    @app.task
    async def follow_vetting_decisions() -> None:
        await follow_answers("follow_decisions", settings.kafka.servers, settings.vetting.topics.decisions, waiter)

    api.register(app, svc=svc, topics=vt, intake=intake, waiter=waiter, people=people, settings=settings,
                 metrics=metrics, clock=clock, partition_of=partition_of)
    app.citywatch_vetting = dict(service=svc, topics=vt, people=people, records=records,  # type: ignore[attr-defined]
                                 waiter=waiter, agents=dict(vet_application=vet_application,
                                                            intake_applications=intake_applications,
                                                            intake_records=intake_records,
                                                            store_records=store_records))
    return svc
