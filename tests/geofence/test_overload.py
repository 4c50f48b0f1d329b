"""The overload episode and the lag it is fed (engine.geofence.overload), on a fake clock."""

from __future__ import annotations

import doctest
from zoneinfo import ZoneInfo

from engine.alerts.models import mqtt_topic
from engine.core.clock import FakeClock
from engine.geofence import overload
from engine.geofence.overload import Overload, PartitionLag
from engine.onemap.models import alert_summary

TZ = ZoneInfo("Asia/Shanghai")
LIMIT = 30.0


def episode(**kw) -> Overload:
    return Overload(kw.pop("max_lag_s", LIMIT), worker_id=kw.pop("worker_id", "w1:6066"), host="w1", tz=TZ, **kw)


def feed(o: Overload, clock: FakeClock, lags: list[float], step: float = 1.0) -> list[dict]:
    """Feed one lag per ``step`` seconds; every alert sent (each confirmed at once, as the worker does)."""
    out = []
    for lag in lags:
        alerts = o.update(clock.now(), lag)
        o.sent(alerts)
        out += alerts
        clock.advance(step)
    return out


def test_docstring_examples():
    result = doctest.testmod(overload, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_raises_once_while_over_the_limit_and_clears_once_after_staying_below_half():
    clock, o = FakeClock(), episode()
    alerts = feed(o, clock, [5.0, 31.0, 80.0, 120.0, 40.0])  # over from the 2nd update
    assert [a["kind"] for a in alerts] == ["system.overloaded"]
    raised = alerts[0]
    assert raised["severity"] == "warning" and raised["lag_s"] == 31.0 and raised["max_lag_s"] == LIMIT
    assert raised["subject"] == raised["worker_id"] == "w1:6066" and raised["host"] == "w1"
    assert raised["incident_id"] == raised["alert_id"] and "vehicle_id" not in raised
    assert raised["ts"] == raised["detected_at"] == "2026-09-08T10:00:01.000+08:00" and o.overloaded

    alerts = feed(o, clock, [10.0] * 29)   # below half for 28 s: not yet
    assert alerts == [] and o.overloaded
    alerts = feed(o, clock, [10.0, 0.0, 0.0])
    assert [a["kind"] for a in alerts] == ["system.overload_cleared"]
    cleared = alerts[0]
    assert cleared["severity"] == "info" and cleared["incident_id"] == raised["alert_id"]
    assert cleared["alert_id"] != raised["alert_id"] and cleared["peak_lag_s"] == 120.0
    assert cleared["since_at"] == raised["ts"]
    assert cleared["duration_s"] == 34.0  # raised at +1 s, cleared at +35 s (30 s after the lag fell to 10 s)
    assert not o.overloaded
    assert feed(o, clock, [0.0] * 100) == []  # cleared once


def test_lag_hovering_around_the_limit_neither_repeats_nor_clears():
    clock, o = FakeClock(), episode()
    wave = [35.0, 25.0, 31.0, 29.0, 16.0, 40.0]  # never at or below half (15 s)
    alerts = feed(o, clock, wave * 50)
    assert [a["kind"] for a in alerts] == ["system.overloaded"]
    # below half, but never for the whole 30 s: still one episode
    alerts = feed(o, clock, ([5.0] * 20 + [31.0]) * 10)
    assert alerts == [] and o.overloaded


def test_the_clear_needs_an_unbroken_stretch_below_half():
    clock, o = FakeClock(), episode(clear_after_s=10.0)
    feed(o, clock, [50.0])
    assert feed(o, clock, [1.0] * 9 + [16.0] + [1.0] * 9) == []   # broken at 9 s, then 9 s again
    assert [a["kind"] for a in feed(o, clock, [1.0, 1.0])] == ["system.overload_cleared"]


def test_ids_are_stable_for_the_same_worker_and_start_and_differ_between_episodes():
    lags = [40.0] + [0.0] * 40 + [45.0] + [0.0] * 40
    first = feed(episode(), FakeClock(), lags)
    again = feed(episode(), FakeClock(), lags)
    other = feed(episode(worker_id="w2:6066"), FakeClock(), lags)
    assert [a["kind"] for a in first] == ["system.overloaded", "system.overload_cleared"] * 2
    assert [a["alert_id"] for a in first] == [a["alert_id"] for a in again]
    assert len({a["alert_id"] for a in first}) == 4
    assert not {a["alert_id"] for a in first} & {a["alert_id"] for a in other}
    assert first[2]["incident_id"] == first[2]["alert_id"] != first[0]["alert_id"]


def test_an_alert_not_yet_sent_is_returned_again_with_the_same_id():
    clock, o = FakeClock(), episode()
    pending = o.update(clock.now(), 50.0)
    clock.advance(1)
    assert [a["alert_id"] for a in o.update(clock.now(), 60.0)] == [pending[0]["alert_id"]]  # produce failed
    o.sent(pending)
    clock.advance(1)
    assert o.update(clock.now(), 60.0) == []


def test_off_when_the_limit_is_zero():
    clock, o = FakeClock(), episode(max_lag_s=0.0)
    assert feed(o, clock, [1e6] * 10) == [] and not o.overloaded


def test_the_alert_without_a_vehicle_goes_to_the_workers_own_topic_and_onto_the_map():
    clock, o = FakeClock(), episode(worker_id="cw-node-3:6066")
    raised = o.update(clock.now(), 99.0)[0]
    assert mqtt_topic("citywatch/alerts", raised) == "citywatch/alerts/system.overloaded/cw-node-3:6066"
    assert alert_summary(raised)["kind"] == "system.overloaded"


def test_lag_is_the_oldest_record_of_the_last_batch_worst_of_the_owned_partitions():
    lag = PartitionLag(stale_s=2.0)
    lag.read(100.0, [(0, 10, 70.0), (0, 11, 90.0), (1, 4, 95.0), (2, 1, 99.0)])
    none = lambda p: None  # noqa: E731 - high watermark not known
    assert lag.value(100.0, {0, 1, 2}, none) == 30.0   # partition 0's oldest record waited 30 s
    assert lag.value(100.0, {1, 2}, none) == 5.0       # 0 moved to another worker: forgotten
    assert lag.value(100.0, {0, 1, 2}, none) == 5.0
    lag.read(101.0, [(1, 5, 100.5)])                    # a newer batch replaces partition 1's measure
    assert lag.value(101.0, {1, 2}, none) == 1.0        # partition 2's measure, taken 1 s ago, still counts
    assert lag.value(101.0, {1}, none) == 0.5


def test_an_idle_worker_reports_zero_but_not_while_records_wait():
    clock, lag = FakeClock(), PartitionLag(stale_s=2.0)
    lag.read(clock.now(), [(3, 41, clock.now() - 50.0)])
    clock.advance(5.0)                                   # no batch since
    assert lag.value(clock.now(), {3}, lambda p: 42) == 0.0     # read up to the high watermark: idle
    assert lag.value(clock.now(), {3}, lambda p: 43) == 50.0    # one record waits: still behind
    assert lag.value(clock.now(), {3}, lambda p: None) == 0.0   # unknown, and nothing read for 5 s


def test_records_without_a_timestamp_count_as_no_lag():
    lag = PartitionLag()
    lag.read(10.0, [(0, 1, None), (0, 2, -1.0)])
    assert lag.value(10.0, {0}, lambda p: 99) == 0.0
