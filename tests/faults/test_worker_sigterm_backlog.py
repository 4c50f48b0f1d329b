"""SIGTERM in the middle of a backlog: the next worker continues it without losing or doubling an incident.

A worker works through a backlog in which most batches raise alerts and is
stopped (SIGTERM) a few batches in. Whatever it committed must match the
states and alerts it wrote: a batch committed unchecked would leave its
vehicles in their old state, and the restarted worker would raise their enter
or exit a second time under another ``alert_id`` (or lose it); a batch
checked but not committed is replayed with the same ids. Every incident must
have exactly one ``alert_id``.

Faust's take_events acknowledges a yielded batch in its ``finally`` even when
the agent is cancelled inside it; Faust stops agents only after it stopped
fetching and flushed the producer, so the batch in hand finishes first. This
test is what would show it if that changed.
"""

from __future__ import annotations

import time

import orjson
import pytest

from tests.conftest import metric_value, scrape, wait_for
from tests.faults.helpers import report, tunnel_incidents
from tests.integration.test_failover import produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

VEHICLES = 300
STEPS = 24


def workload(t0: float) -> list[tuple[str, bytes]]:
    """(vehicle, fix json), step by step: each vehicle drives east through the Haicang Tunnel, the fleet
    staggered so that vehicles enter and leave it in most batches."""
    out = []
    for step in range(STEPS):
        for v in range(VEHICLES):
            vid = f"闽DM{v:03d}"
            lon = 118.030 + step * 0.0030 + (v % 100) * 0.0003
            out.append((vid, orjson.dumps({"vehicle_id": vid, "class": "hazmat", "ts": t0 + 20 * step,
                                           "lat": 24.4815, "lon": lon, "speed_kmh": 50})))
    return out


def test_sigterm_in_the_middle_of_a_backlog_loses_or_doubles_no_incident(make_settings, spawn):
    settings = make_settings(worker={"batch_size": 20})
    worker = spawn("worker-1", ["worker"], settings)

    def metric(name: str) -> float:
        assert worker.proc.poll() is None, worker.log()
        try:
            return metric_value(scrape(settings.web.port), name)
        except OSError:
            return -1

    wait_for(lambda: metric("citywatch_alerts_total") >= 0, 60, "the worker's web server")
    time.sleep(1.5)  # let it join its group before the stream starts
    fixes = workload(time.time() - 3 * 3600)
    produce(settings.kafka.bootstrap, settings.kafka.topics.fixes, fixes)
    emitted = wait_for(lambda: (n := metric("citywatch_alerts_total")) > 20 and n, 60, "alerts", interval=0.02)
    checked = metric("citywatch_fixes_received_total")
    assert worker.stop(30) == 0, worker.log()

    worker = spawn("worker-2", ["worker"], settings)
    incidents, records = tunnel_incidents(settings, worker, VEHICLES)
    twice = {k: ids for k, ids in incidents.items() if len(ids) > 1}
    assert not twice, f"incidents raised again under another id (their batch was committed unchecked): {twice}"
    distinct = {i for ids in incidents.values() for i in ids}
    report("worker-sigterm-backlog", expected=2 * VEHICLES, delivered_to_kafka=len(distinct),
           repeats_same_id=len(records) - len(distinct), alerts_before_sigterm=int(emitted),
           fixes_checked_before_sigterm=int(checked), fixes=len(fixes))
