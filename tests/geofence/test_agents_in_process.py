"""The geofence agent and timers in-process, under Faust's ``test_context()`` with the memory store: no broker.

What the worker writes to Kafka is captured where it leaves the app (the producer's ``send``, the
rejected topic's ``send`` and the table's changelog sends), as Faust's testing guide suggests; the
checker, the fleets and the table are the real ones.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from types import SimpleNamespace
from unittest import mock
from zoneinfo import ZoneInfo

import faust
import pytest
from prometheus_client import CollectorRegistry

from engine.core.clock import FakeClock
from engine.core.metrics import WorkerMetrics
from engine.geofence import agents
from engine.geofence.checker import ZoneChecker
from engine.geofence.index import ZoneIndex
from engine.geofence.zone_models import parse_feature_collection
from engine.kafka.topics import Topics
from engine.settings import Settings
from engine.telemetry.columns import from_fixes
from engine.telemetry.models import Fix
from engine.telemetry.wire import encode
from tests.in_process import Captured

TZ = "Asia/Shanghai"
T0 = datetime(2026, 9, 8, 10, 0, tzinfo=ZoneInfo(TZ)).timestamp()
TUNNEL = [[118.0400, 24.4800], [118.0800, 24.4815], [118.0800, 24.4830], [118.0400, 24.4815], [118.0400, 24.4800]]
WAIT_S = 10.0   # a bound on waiting for the agent's batch, not a measurement


async def until(condition) -> None:
    """Wait for the agent's batch (it runs on the same loop) until ``condition()`` holds."""
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), WAIT_S)


@pytest.fixture
def worker():
    settings = Settings().replace(worker={"batch_size": 2, "batch_window_s": 0.01})
    app = faust.App("geofence-unit", store="memory://", autodiscover=False, web_enabled=False)
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    topics = Topics(app.topic("fixes", **raw), app.topic("fixes.rejected", **raw), app.topic("alerts", **raw))
    zones = parse_feature_collection({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"id": "tunnel", "name": "Tunnel", "rule": "forbid", "classes": ["hazmat"]},
         "geometry": {"type": "Polygon", "coordinates": [TUNNEL]}}]}, source="test", tz=TZ)
    clock = FakeClock(T0 + 100)
    checker = ZoneChecker(ZoneIndex(zones, crs=settings.city.crs), tz=TZ, clock=clock)
    metrics = WorkerMetrics(CollectorRegistry())
    zw = agents.register(app, topics, settings, metrics, clock, checker, wait_for_zones=_ready)
    out = Captured()

    async def produce(topic, key, value, partition, timestamp, headers, **_):
        return out.record(topic, key, value)

    async def rejected(*, key=None, value=None, **_):
        return out.record("fixes.rejected", key, value)

    changelog = SimpleNamespace(message=SimpleNamespace(partition=0))
    patches = [mock.patch.object(app.producer, "send", produce), mock.patch.object(topics.fixes_rejected, "send", rejected),
               mock.patch.object(zw.tracks, "send_changelog", return_value=changelog)]
    for p in patches:
        p.start()
    yield SimpleNamespace(app=app, zw=zw, out=out, metrics=metrics, clock=clock)
    for p in reversed(patches):
        p.stop()


async def _ready() -> None:
    return None


def record(*fixes: Fix) -> bytes:
    return encode(from_fixes(list(fixes)))


def fx(vid: str, minute: int, lon: float, vclass: str = "hazmat") -> Fix:
    return Fix(vehicle_id=vid, ts=T0 + 60 * minute, lat=24.4815, lon=lon, vclass=vclass)


def test_fixes_into_the_tunnel_alert_once_and_the_state_stays(worker):
    async def body():
        async with worker.app.agents["check_zones"].test_context() as agent:
            await agent.put(key=b"h1", value=record(fx("h1", 0, 118.03), fx("h1", 1, 118.05)), partition=0)
            await agent.put(key=b"t1", value=record(fx("t1", 0, 118.05, "taxi")), partition=0)
            await until(lambda: len(worker.out.on("alerts")) >= 1 and len(worker.zw.states) == 2)
            # the same record again (a replay after a rebalance): no second alert, the fixes are duplicates
            await agent.put(key=b"h1", value=record(fx("h1", 0, 118.03), fx("h1", 1, 118.05)), partition=0)
            await agent.put(key=b"h1", value=record(fx("h1", 2, 118.09)), partition=0)
            await until(lambda: len(worker.out.on("alerts")) >= 2)
        alerts = worker.out.on("alerts")
        assert [(a["vehicle_id"], a["kind"], a["zone_id"]) for a in alerts] == [
            ("h1", "zone.enter", "tunnel"), ("h1", "zone.exit", "tunnel")]
        assert alerts[1]["incident_id"] == alerts[0]["alert_id"]
        assert {r["reason"] for r in worker.out.on("fixes.rejected")} == {"duplicate"}
        assert worker.zw.states.fleet(0).state("h1")["ts"] == T0 + 120
        assert worker.zw.states.fleet(0).state("t1") is not None        # a taxi passes, tracked, no alert
        assert worker.metrics.alerts.labels("zone.enter", alerts[0]["severity"])._value.get() == 1

    asyncio.run(body())


def test_an_undecodable_record_is_rejected_and_the_agent_carries_on(worker):
    async def body():
        async with worker.app.agents["check_zones"].test_context() as agent:
            await agent.put(key=b"x", value=b"not columns", partition=0)
            await agent.put(key=b"h2", value=record(fx("h2", 0, 118.03), fx("h2", 1, 118.05)), partition=0)
            await until(lambda: worker.out.on("alerts"))
        alerts = worker.out.on("alerts")
        rejected = worker.out.on("fixes.rejected")
        assert [r["reason"] for r in rejected] == ["bad_record"] and "undecodable record at" in rejected[0]["detail"]
        assert [a["vehicle_id"] for a in alerts] == ["h2"]

    asyncio.run(body())


def test_the_timers_count_vehicles_and_checkpoint_what_is_only_in_memory(worker):
    async def body():
        async with worker.app.agents["check_zones"].test_context() as agent:
            await agent.put(key=b"h3", value=record(fx("h3", 0, 118.03), fx("h3", 1, 118.035)), partition=0)
            await agent.put(key=b"t3", value=record(fx("t3", 1, 118.2, "taxi")), partition=0)
            await until(lambda: len(worker.zw.states) == 2)
        await worker.zw.update_active_vehicles()
        assert worker.metrics.vehicles_in_memory._value.get() == 2
        assert worker.metrics.vehicles_active.labels("hazmat")._value.get() == 1
        before = worker.metrics.checkpointed._value.get()
        await worker.zw.checkpoint_positions()
        assert worker.metrics.checkpointed._value.get() >= before

    asyncio.run(body())
