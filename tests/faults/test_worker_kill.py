"""A worker killed -9 while it is producing alerts, then started again: no alert lost, repeats keep their id.

tests/integration/test_failover.py kills one of two workers and checks the
survivor; this is the single-worker case, with the kill aimed at the middle
of alert production: small batches (``worker.batch_size`` 20) and the kill
as soon as the first alerts are out. The restarted worker replays from the
last committed offset with the table restored from its changelog; each
incident must appear with exactly one ``alert_id`` (repeats allowed).
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict

import orjson
import pytest

from tests.conftest import metric_value, read_topic, scrape, wait_for
from tests.faults.helpers import report
from tests.integration.test_failover import VEHICLES, produce, workload

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


# Known defect, issue 7 open: in about 4 of 10 runs of this file alone, the restarted worker takes part of the
# backlog (e.g. 280 of its fixes) and then receives nothing more, so the exits never come. It happens with the
# tracks table written every batch as well, and without the rebalance hook; the two-worker failover test
# (tests/integration/test_failover.py) has not shown it. Not strict: a pass is reported as XPASS.
@pytest.mark.xfail(strict=False, reason="issue 7: a worker restarted after kill -9 sometimes stops consuming part of "
                                        "its backlog (under investigation)")
def test_worker_killed_while_alerting_loses_no_alert(make_settings, spawn):
    settings = make_settings(worker={"batch_size": 20})
    worker = spawn("worker-1", ["worker"], settings)

    def alerts_emitted() -> float:
        assert worker.proc.poll() is None, worker.log()
        try:
            return metric_value(scrape(settings.web.port), "citywatch_alerts_total")
        except OSError:
            return -1

    wait_for(lambda: alerts_emitted() >= 0, 60, "the worker's web server")
    time.sleep(1.5)  # let it join its group before the stream starts
    first, second = workload(time.time() - 3 * 3600)
    produce(settings.kafka.bootstrap, settings.kafka.topics.fixes, first + second)
    emitted_at_kill = wait_for(lambda: (n := alerts_emitted()) > 0 and n, 60, "the first alerts", interval=0.02)
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait(10)

    worker = spawn("worker-2", ["worker"], settings)
    incidents: dict[tuple[str, str], set[str]] = defaultdict(set)
    records: list[dict] = []

    def complete() -> bool:
        assert worker.proc.poll() is None, worker.log()
        records[:] = [a for a in (orjson.loads(v) for _, v in read_topic(
            settings.kafka.bootstrap, settings.kafka.topics.alerts, min_count=2 * VEHICLES, timeout=5))
            if a.get("zone_id") == "haicang-tunnel" and a["kind"] in ("zone.enter", "zone.exit")]
        incidents.clear()
        for a in records:
            incidents[(a["vehicle_id"], a["kind"])].add(a["alert_id"])
        return len(incidents) == 2 * VEHICLES

    wait_for(complete, 120, f"an enter and an exit alert for each of {VEHICLES} vehicles", interval=1)
    assert all(len(ids) == 1 for ids in incidents.values()), incidents  # a repeat carries the same id
    distinct = {i for ids in incidents.values() for i in ids}
    report("worker-kill-9", expected=2 * VEHICLES, delivered_to_kafka=len(distinct),
           lost=2 * VEHICLES - len(distinct), repeats_same_id=len(records) - len(distinct),
           alerts_before_kill=int(emitted_at_kill))
