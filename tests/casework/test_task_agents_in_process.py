"""The task agent and timer in-process, under Faust's ``test_context()`` with the memory store: no broker.

What the worker writes to Kafka is captured where it leaves the app (the producer's ``send`` for alerts,
each task topic's ``send`` and the table's changelog sends), as in tests/geofence/test_agents_in_process.py;
the book, the table and the state machine are the real ones.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from unittest import mock

import faust
import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from engine.casework import task_agents
from engine.casework.directory import TaskDirectory
from engine.casework.intake import Intake
from engine.casework.report_models import task_id_for
from engine.casework.report_topics import declare_report_topics
from engine.casework.task_topics import declare_task_topics
from engine.core.clock import FakeClock
from engine.core.metrics import WorkerMetrics
from engine.kafka.answers import AnswerWaiter
from engine.kafka.topics import Topics, raw_topic
from tests.casework.factories import STATION, TZ, grid, report, settings
from tests.in_process import Captured

ACCEPT_S = 1800.0  # obstruction's accept deadline at the community level (config.yaml, sla_scale 1)


@pytest.fixture
def worker():
    s = settings()
    n = s.kafka.partitions
    app = faust.App("casework-unit", store="memory://", autodiscover=False, web_enabled=False)
    topics = Topics(*(raw_topic(app, name, partitions=n) for name in ("fixes", "fixes.rejected", "alerts")))
    clock, metrics, waiter = FakeClock(), WorkerMetrics(CollectorRegistry()), AnswerWaiter()
    tt, rt = declare_task_topics(app, s), declare_report_topics(app, s)
    mine = set(range(n))  # the partitions the timer takes for this worker's; a test changes it
    book = task_agents.register(app, s, metrics, clock, topics, tt, rt, waiter, TaskDirectory(),
                                owned=lambda: mine)
    parts = app.citywatch_tasks
    out = Captured()

    async def produce(topic, key, value, partition, timestamp, headers, **_):
        return out.record(topic, key, value)

    def sender(topic):
        async def send(*, key=None, value=None, **_):
            return out.record(topic.get_topic_name(), key, value)
        return mock.patch.object(topic, "send", send)

    changelog = SimpleNamespace(message=SimpleNamespace(partition=0))
    patches = [mock.patch.object(app.producer, "send", produce),
               mock.patch.object(parts["table"], "send_changelog", return_value=changelog),
               *(sender(t) for t in (tt.tasks, tt.dispatch, tt.outcomes, tt.rejected, rt.reports))]
    for p in patches:
        p.start()
    yield SimpleNamespace(app=app, tw=parts["worker"], book=book, out=out, metrics=metrics, clock=clock,
                          waiter=waiter, tt=tt, mine=mine, settings=s, intake=Intake(s, grid(), clock))
    for p in reversed(patches):
        p.stop()


async def put(agent, topic, key: bytes, body: object, *, wait: bool = True) -> None:
    """One record on ``topic``; with ``wait``, processed before this returns.

    The test wrapper names a record's topic after the agent's channel, and ``track_task`` reads two topics
    (it tells commands from events by the topic), so the wrapper is pointed at the one this record is on.
    """
    agent.original_channel = topic
    await agent.put(key=key, value=orjson.dumps(body), partition=0, wait=wait)


def create_command(w):
    r = report(w.intake, STATION)
    body = r.to_dict()
    body["contact"] = {}
    return r, task_id_for(r, TZ), {"type": "create", "report": body}


def test_a_create_command_opens_a_task_publishes_it_and_dispatches_it(worker):
    t = worker.settings.tasks.topics

    async def body():
        r, task_id, command = create_command(worker)
        answer = worker.waiter.expect(r.report_id)
        async with worker.app.agents["track_task"].test_context() as agent:
            await put(agent, worker.tt.commands, task_id.encode(), command)
            await put(agent, worker.tt.commands, task_id.encode(), command)  # a replay: answered, nothing new
        [task] = worker.out.on(t.tasks)
        assert (task["service_request_id"], task["state"], task["level"], task["department"]) == \
            (task_id, "dispatched", "community", "siming_traffic_police")
        [dispatch] = worker.out.on(t.dispatch)
        assert (dispatch["kind"], dispatch["service_request_id"], dispatch["department"]) == \
            ("dispatched", task_id, "siming_traffic_police")
        outcomes = worker.out.on(t.outcomes)
        assert [(o["id"], o["ok"], o["service_request_id"]) for o in outcomes] == [(r.report_id, True, task_id)] * 2
        assert worker.book.get(task_id).state == "dispatched"
        assert answer.done() and answer.result()["service_request_id"] == task_id  # resolved here, no round trip
        assert worker.out.on(t.rejected) == []

    asyncio.run(body())


def test_invalid_and_refused_events_go_to_rejected_with_their_code(worker):
    t = worker.settings.tasks.topics

    async def body():
        _, task_id, command = create_command(worker)
        async with worker.app.agents["track_task"].test_context() as agent:
            await put(agent, worker.tt.commands, task_id.encode(), command)
            # The agent yields nothing for an invalid event (it goes on to the next), so the wrapper hears of it
            # only with the next record's: wait for that one.
            await put(agent, worker.tt.events, task_id.encode(), {"action": "fly"}, wait=False)
            await put(agent, worker.tt.events, task_id.encode(),
                      {"action": "accept", "department": "huli_traffic_police", "command_id": "c-2"})
        invalid, refused = worker.out.on(t.rejected)
        assert (invalid["code"], invalid["service_request_id"], invalid["topic"], invalid["source"]) == \
            ("invalid_event", task_id, t.events, "kafka")
        assert invalid["reason"].startswith("action: ") and invalid["command_id"] == f"{t.events}:0:1"
        assert invalid["event"] == {"action": "fly"}
        assert (refused["code"], refused["command_id"]) == ("wrong_department", "c-2")
        assert worker.metrics.task_events.labels("-", "invalid")._value.get() == 1
        assert worker.metrics.task_events.labels("accept", "wrong_department")._value.get() == 1
        assert worker.book.get(task_id).state == "dispatched"  # neither changed the task
        assert len(worker.out.on(t.tasks)) == 1

    asyncio.run(body())


def test_the_timer_escalates_an_overdue_task_of_an_owned_partition_one_level(worker):
    t = worker.settings.tasks.topics

    async def body():
        _, task_id, command = create_command(worker)
        async with worker.app.agents["track_task"].test_context() as agent:
            await put(agent, worker.tt.commands, task_id.encode(), command)
        everything = list(range(worker.settings.kafka.partitions))
        own = DefaultPartitioner()(task_id.encode(), everything, everything)
        worker.clock.advance(ACCEPT_S + 5)

        worker.mine.discard(own)  # the task's partition is a standby copy here: its owner escalates it
        await worker.tw.escalate_overdue()
        assert worker.book.get(task_id).level == "community" and worker.out.on("alerts") == []

        worker.mine.add(own)
        await worker.tw.escalate_overdue()
        task = worker.book.get(task_id)
        assert (task.level, task.state, task.overdue) == ("street", "dispatched", True)
        assert task.due_at == worker.clock.now() + ACCEPT_S  # the clock restarts at the new level
        [alert] = worker.out.on("alerts")
        assert (alert["kind"], alert["level"], alert["from_level"], alert["subject"]) == \
            ("task.escalated", "street", "community", task_id)
        assert [(d["kind"], d["level"]) for d in worker.out.on(t.dispatch)] == [("dispatched", "community"),
                                                                               ("escalated", "street")]
        assert worker.out.on(t.tasks)[-1]["level"] == "street"
        m = worker.metrics
        assert m.tasks_escalated.labels("street")._value.get() == 1
        assert m.tasks_open.labels("street", "dispatched")._value.get() == 1
        assert m.tasks_open.labels("community", "dispatched")._value.get() == 0

        await worker.tw.escalate_overdue()  # the next scan: the new deadline is far off, nothing more
        assert worker.book.get(task_id).level == "street" and m.tasks_escalated.labels("street")._value.get() == 1

    asyncio.run(body())
