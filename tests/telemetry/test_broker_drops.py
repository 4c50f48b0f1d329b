"""The broker's running drop count becomes a counter that only grows, across broker restarts too."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from engine.core.metrics import BridgeMetrics
from engine.telemetry.broker_drops import dropped_since


def test_a_running_count_becomes_increments_and_a_restart_starts_again():
    registry = CollectorRegistry()
    counter = BridgeMetrics(registry).broker_dropped
    last = None
    for reported in (3, 3, 10, 2, 5):  # the broker restarts after 10 and counts from 0 again
        counter.inc(dropped_since(last, reported))
        last = reported
    assert registry.get_sample_value("citywatch_bridge_broker_dropped_messages_total") == 3 + 7 + 2 + 3


def test_nothing_new_adds_nothing():
    assert dropped_since(None, 0) == 0
    assert dropped_since(4, 4) == 0
