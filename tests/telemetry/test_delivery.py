"""Delivery to Kafka without a broker: retried records keep their lane's order; one log line per outage."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from engine.core.metrics import BridgeMetrics
from engine.telemetry import delivery
from engine.telemetry.delivery import KafkaHealth, OrderedLanes, Record


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(delivery, "RETRY_DELAY_S", 0.001)


def sample(name: str, registry: CollectorRegistry) -> float:
    return registry.get_sample_value(name) or 0.0


class FlakyKafka:
    """Takes records into ``log``; fails each record's first ``failures[value]`` attempts."""

    def __init__(self, failures: dict[bytes, int]):
        self.failures = dict(failures)
        self.log: list[bytes] = []

    async def attempt(self, record: Record) -> None:
        await asyncio.sleep(0)
        if self.failures.get(record.value, 0) > 0:
            self.failures[record.value] -= 1
            raise TimeoutError(f"no answer for {record.value!r}")
        self.log.append(record.value)


def run(kafka: FlakyKafka, records: list[tuple[int, bytes]]) -> tuple[list[bytes], CollectorRegistry]:
    registry = CollectorRegistry()
    delivered: list[bytes] = []

    async def main() -> None:
        lanes = OrderedLanes(kafka.attempt, KafkaHealth(BridgeMetrics(registry), lambda: 0))
        for lane, value in records:
            lanes.put(lane, Record("fixes", value, None, lane, lambda v=value: delivered.append(v)))
        await asyncio.wait_for(asyncio.gather(*lanes.tasks()), 5)
        assert lanes.pending() == 0 and lanes.tasks() == []

    asyncio.run(main())
    return delivered, registry


def test_a_failing_batch_is_retried_and_nothing_of_its_lane_overtakes_it():
    kafka = FlakyKafka({b"a1": 3})
    delivered, registry = run(kafka, [(0, b"a1"), (0, b"a2"), (1, b"b1"), (0, b"a3"), (1, b"b2")])
    lane_a = [v for v in kafka.log if v.startswith(b"a")]
    assert lane_a == [b"a1", b"a2", b"a3"]  # a2 and a3 waited for a1's retries
    assert [v for v in kafka.log if v.startswith(b"b")] == [b"b1", b"b2"]
    assert sorted(delivered) == sorted(kafka.log) and len(delivered) == 5  # each acknowledged once, when taken
    assert sample("citywatch_bridge_kafka_errors_total", registry) == 3
    assert sample("citywatch_bridge_kafka_up", registry) == 1  # up again after the retries


def test_one_warning_per_outage_not_per_record(caplog):
    kafka = FlakyKafka({b"a1": 2, b"b1": 2, b"c1": 2})
    with caplog.at_level(logging.WARNING, logger=delivery.__name__):
        run(kafka, [(0, b"a1"), (1, b"b1"), (2, b"c1")])
    down = [r for r in caplog.records if "does not take records" in r.getMessage()]
    back = [r for r in caplog.records if "takes records again" in r.getMessage()]
    assert len(down) == 1 and len(back) == 1


def test_health_reports_down_until_a_record_is_taken():
    registry = CollectorRegistry()
    health = KafkaHealth(BridgeMetrics(registry), lambda: 7)
    assert sample("citywatch_bridge_kafka_up", registry) == 1
    health.failed(ConnectionError("refused"))
    health.failed(ConnectionError("refused"))
    assert not health.up and sample("citywatch_bridge_kafka_up", registry) == 0
    health.ok()
    assert health.up and sample("citywatch_bridge_kafka_up", registry) == 1
    assert sample("citywatch_bridge_kafka_errors_total", registry) == 2
