"""Scale-out: two workers split the partitions; one is killed -9 mid-stream; the alerts equal a single worker's.

The same workload (fixes produced straight to Kafka, keyed by vehicle) runs
once through one worker and once through two, one of which is SIGKILLed
after it has processed part of its share. The survivor takes over the
partitions, restores their state from the changelog, and the set of alert
ids must be exactly the single-worker run's: duplicates are allowed only as
the same id (at-least-once), and no incident may be lost or invented.
"""

from __future__ import annotations

import asyncio
import signal
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.conftest import metric_value, read_topic, scrape, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

VEHICLES = 24
STEPS = 24  # fixes per vehicle, 20 s apart, driving east along the Haicang Tunnel


def workload(t0: float) -> list[list[tuple[str, bytes]]]:
    """Two halves of (vehicle, fix json): each vehicle enters the tunnel in the first, leaves it in the second."""
    halves: list[list[tuple[str, bytes]]] = [[], []]
    for step in range(STEPS):
        for v in range(VEHICLES):
            vid = f"闽DF{v:03d}"
            lon = 118.030 + step * 0.0030 + v * 0.0001
            fix = {"vehicle_id": vid, "class": "hazmat", "ts": t0 + 20 * step, "lat": 24.4815, "lon": lon,
                   "speed_kmh": 50}
            halves[0 if step < STEPS // 2 else 1].append((vid, orjson.dumps(fix)))
    return halves


def produce(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    async def run() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await p.start()
        try:
            for vid, value in records:
                await p.send(topic, value, key=vid.encode())
            await p.flush()
        finally:
            await p.stop()

    asyncio.run(run())


def checks(port: int, *procs) -> float:
    for p in procs:
        assert p.proc.poll() is None, p.log()
    try:
        return metric_value(scrape(port), "citywatch_fixes_received_total")
    except OSError:
        return -1


def alert_ids(settings, expected: int) -> list[str]:
    recs = read_topic(settings.kafka.bootstrap, settings.kafka.topics.alerts, min_count=expected, timeout=20)
    return [a["alert_id"] for a in (orjson.loads(v) for _, v in recs)
            if a.get("zone_id") == "haicang-tunnel" and a["kind"] in ("zone.enter", "zone.exit")]


def test_failover_keeps_state_and_alerts_equal_a_single_worker(make_settings, spawn):
    t0 = time.time() - 3 * 3600
    first, second = workload(t0)
    total = len(first) + len(second)

    # Reference: one worker sees everything.
    ref = make_settings()
    solo = spawn("solo", ["worker"], ref)
    produce(ref.kafka.bootstrap, ref.kafka.topics.fixes, first + second)
    wait_for(lambda: checks(ref.web.port, solo) >= total, 120, "the single worker to process everything")
    expected = alert_ids(ref, 2 * VEHICLES)
    solo.stop()
    assert len(expected) == 2 * VEHICLES and len(set(expected)) == 2 * VEHICLES  # an enter and an exit each

    # Two workers in one group; kill -9 one of them mid-stream.
    run = make_settings()
    w1 = spawn("w1", ["worker"], run)
    w2 = spawn("w2", ["worker"], run.replace(web={"port": run.web.port + 1 if run.web.port < 65000 else 20000}))
    w2_port = int(w2.env["CITYWATCH_WEB__PORT"])
    wait_for(lambda: checks(run.web.port, w1, w2) >= 0 and checks(w2_port) >= 0, 60, "both workers' web servers")
    time.sleep(4)  # let the group settle with both members
    produce(run.kafka.bootstrap, run.kafka.topics.fixes, first)
    wait_for(lambda: checks(run.web.port, w1, w2) > 0 and checks(w2_port) > 0, 60, "both workers to take a share")
    w1.proc.send_signal(signal.SIGKILL)
    w1.proc.wait(10)
    produce(run.kafka.bootstrap, run.kafka.topics.fixes, second)

    def got_all() -> list[str] | None:
        assert w2.proc.poll() is None, w2.log()
        ids = alert_ids(run, len(expected))
        return ids if set(ids) >= set(expected) else None

    ids = wait_for(got_all, 120, "the survivor to finish the killed worker's partitions")
    assert w2.proc.poll() is None, w2.log()
    assert set(ids) == set(expected)  # nothing lost, nothing invented; repeats only as the same id
