"""The agents under Faust's ``test_context()`` with the memory store: no broker.

Outputs are captured by patching the topics' ``send`` (and the tables'
changelog sends), as Faust's testing guide suggests; what each agent writes
to Kafka is then checked, including that no ID number is in it.
"""

from __future__ import annotations

import asyncio
from datetime import date
from types import SimpleNamespace
from unittest import mock

import faust
import orjson
import pytest
from prometheus_client import CollectorRegistry

from engine.core.clock import FakeClock
from engine.core.metrics import WorkerMetrics
from engine.kafka.topics import Topics
from engine.settings import Settings
from engine.vetting import agents
from engine.vetting.errors import InvalidInput
from engine.vetting.models import DRUG_USE
from engine.vetting.privacy import PersonKeyer
from engine.vetting.topics import PersonPartitioner
from tests.vetting.factories import CLEAN_ID, SEED_ID, application, application_json, record

RAW_IDS = (SEED_ID, SEED_ID.lower(), CLEAN_ID)


class Sent:
    """Captures ``topic.send`` calls as ``(topic name, key, value, partition)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes | None, bytes | None, int | None]] = []

    def patch(self, topic: faust.TopicT) -> mock._patch:
        async def send(*, key=None, value=None, partition=None, **_):
            self.calls.append((topic.get_topic_name(), key, value, partition))
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return mock.patch.object(topic, "send", send)

    def patch_producer(self, app: faust.App) -> mock._patch:
        """The alert sink produces through the app's producer, not ``topic.send``."""
        async def send(topic, key, value, partition, timestamp, headers, **_):
            self.calls.append((topic, key, value, partition))
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return mock.patch.object(app.producer, "send", send)

    def on(self, name: str) -> list[dict]:
        return [orjson.loads(v) for t, _, v, _ in self.calls if t == name]

    def assert_no_raw_id(self) -> None:
        text = repr(self.calls)
        for n in RAW_IDS:
            assert n not in text


@pytest.fixture
def worker():
    settings = Settings().replace(vetting={"hmac_key": "unit-test-key"})
    app = faust.App("vetting-unit", store="memory://", autodiscover=False, web_enabled=False)
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    topics = Topics(app.topic("fixes", **raw), app.topic("fixes.rejected", **raw), app.topic("alerts", **raw))
    metrics = WorkerMetrics(CollectorRegistry())
    agents.register(app, settings, metrics, FakeClock(), topics)
    parts = app.citywatch_vetting
    sent = Sent()
    vt = parts["topics"]
    changelog = SimpleNamespace(message=SimpleNamespace(partition=0))
    patches = [sent.patch(t) for t in (vt.requests, vt.decisions, vt.records, vt.rejected)]
    patches.append(sent.patch_producer(app))
    patches += [mock.patch.object(parts[t], "send_changelog", return_value=changelog) for t in ("people", "records")]
    for p in patches:
        p.start()
    yield SimpleNamespace(app=app, settings=settings, metrics=metrics, sent=sent, svc=parts["service"],
                          agents=parts["agents"], topics=vt, alerts=topics.alerts, waiter=parts["waiter"],
                          vw=parts["worker"])
    for p in reversed(patches):
        p.stop()


KEYER = PersonKeyer("unit-test-key")


def keyed(id_number: str) -> str:
    return KEYER.key(id_number)


def run(coro) -> None:
    asyncio.run(coro)


def test_vet_application_decides_produces_the_decision_and_keeps_it(worker):
    async def body():
        pk = keyed(SEED_ID)
        app = application(SEED_ID, suffix="00000000000a", keyer=KEYER)
        worker.svc.records[pk] = {"PSB-1": record(DRUG_USE, date(2006, 3, 2), rid="PSB-1", keyer=KEYER).to_dict()}
        waiting = worker.waiter.expect(app.id)
        async with worker.agents["vet_application"].test_context() as agent:
            await agent.put(key=pk.encode(), value=orjson.dumps(app.to_dict()))
            doc = agent.results[0]
            await agent.put(key=pk.encode(), value=orjson.dumps(app.to_dict()))  # a replay
        assert doc["decision"] == "rejected" and doc["reasons"][0]["records"] == ["PSB-1"]
        assert waiting.done() and waiting.result()["id"] == app.id                   # the HTTP waiter is answered
        decisions = worker.sent.on(worker.settings.vetting.topics.decisions)
        assert [d["id"] for d in decisions] == [app.id]                              # decided and produced once
        assert worker.sent.calls[0][1] == pk.encode()                               # keyed by person
        assert worker.svc.application_view(pk, app.id)["decision"] == "rejected"
        assert worker.metrics.vetting_decisions.labels("rejected")._value.get() == 1
        worker.sent.assert_no_raw_id()

    run(body())


def test_intake_applications_validates_and_forwards_by_person_key(worker):
    async def body():
        async with worker.agents["intake_applications"].test_context() as agent:
            await agent.put(key=b"platform-1", value=orjson.dumps(application_json(CLEAN_ID.lower())))
            await agent.put(key=b"platform-2", value=orjson.dumps(application_json("340524198001010013")))
            await agent.put(key=b"platform-3", value=b"{not json " + SEED_ID.encode())
        t = worker.settings.vetting.topics
        requests = worker.sent.on(t.requests)
        assert len(requests) == 1 and requests[0]["id_masked"] == "1101**********002X" and requests[0]["source"] == "kafka"
        assert requests[0]["id"].startswith(keyed(CLEAN_ID) + "-")
        rejected = worker.sent.on(t.rejected)
        assert [(r["code"], r["field"]) for r in rejected] == [("bad_id_number", "id_number"), ("bad_json", "body")]
        assert rejected[0]["payload"]["id_number"] == "3405**********0013"
        worker.sent.assert_no_raw_id()
        assert "340524198001010013" not in repr(worker.sent.calls)

    run(body())


def test_intake_records_writes_pseudonymised_records_on_the_persons_partition(worker):
    async def body():
        body = {"id": "DD-1", "id_number": CLEAN_ID, "kind": "drink_driving", "date": "2026-09-01"}
        async with worker.agents["intake_records"].test_context() as agent:
            await agent.put(key=b"feed", value=orjson.dumps(body))
            await agent.put(key=b"feed", value=orjson.dumps({**body, "kind": "jaywalking"}))
        (topic, key, value, partition), (rtopic, *_rest) = worker.sent.calls
        pk = keyed(CLEAN_ID)
        assert topic == worker.settings.vetting.topics.records and key == f"{pk}/DD-1".encode()
        assert partition == PersonPartitioner(worker.settings.kafka.partitions)(pk)
        assert orjson.loads(value)["id_masked"] == "1101**********002X"
        assert rtopic == worker.settings.vetting.topics.rejected
        worker.sent.assert_no_raw_id()

    run(body())


def test_store_records_flags_and_suspends_a_licensed_driver(worker):
    async def body():
        pk = keyed(CLEAN_ID)
        doc, _ = worker.svc.vet(application(CLEAN_ID, suffix="00000000000b", keyer=KEYER))
        worker.svc.commit(doc)
        rec = record(DRUG_USE, date(2026, 9, 7), id_number=CLEAN_ID, rid="PSB-9", keyer=KEYER)
        async with worker.agents["store_records"].test_context() as agent:
            await agent.put(key=f"{pk}/PSB-9".encode(), value=orjson.dumps(rec.to_dict()))
            await agent.put(key=f"{pk}/PSB-9".encode(), value=None)  # retracted later: kept suspended
        (alert,) = worker.sent.on("alerts")
        assert alert["kind"] == "driver.flagged" and alert["subject"] == pk and alert["rule"] == "art14.drug_use"
        assert alert["id_number"] == "1101**********002X" and alert["records"] == ["PSB-9"]
        assert worker.svc.driver_view(pk)["status"] == "suspended" and worker.svc.driver_view(pk)["records"] == 0
        assert worker.metrics.vetting_drivers_flagged.labels("art14.drug_use", "suspended")._value.get() == 1
        assert worker.metrics.alerts.labels("driver.flagged", "critical")._value.get() == 1
        worker.sent.assert_no_raw_id()

    run(body())


def test_a_broken_record_is_logged_counted_and_skipped(worker, caplog):
    async def body():
        async with worker.agents["store_records"].test_context() as agent:
            await agent.put(key=b"x/y", value=b'{"kind": "drug_use", "note": "' + SEED_ID.encode() + b'"}')
        assert worker.metrics.processing_errors.labels("store_records")._value.get() == 1
        assert "store_records: record at" in caplog.text and SEED_ID not in caplog.text

    run(body())


def test_reject_puts_an_invalid_input_on_rejected_with_its_kafka_position(worker):
    async def body():
        raw = orjson.dumps({"id": "DD-2", "id_number": CLEAN_ID, "kind": "drink_driving", "date": "not a date"})
        with pytest.raises(InvalidInput) as caught:
            worker.vw.intake.record(raw)
        event = SimpleNamespace(value=raw, message=SimpleNamespace(topic="records_in", partition=3, offset=41))
        await worker.vw.reject("record", caught.value, event)          # the helper, called without an agent
        ((topic, key, _, _),) = worker.sent.calls
        assert topic == worker.settings.vetting.topics.rejected and key is None
        (doc,) = worker.sent.on(topic)
        assert (doc["kind"], doc["source"], doc["field"]) == ("record", "kafka", "date")
        assert (doc["topic"], doc["partition"], doc["offset"]) == ("records_in", 3, 41)   # where it was read
        assert doc["payload"]["id_number"] == "1101**********002X"
        assert worker.metrics.vetting_inputs_rejected.labels("kafka", caught.value.code)._value.get() == 1
        worker.sent.assert_no_raw_id()

    run(body())
