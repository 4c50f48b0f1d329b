"""When a spawned Kafka-API broker (Tansu or Apache Kafka) is ready: it answers a metadata request.

Listening is not enough: both accept connections a while before they
answer. Shared by both launchers, below :mod:`engine.brokers.kafka` (which
picks one of them), so neither launcher imports the other.
"""

from __future__ import annotations

import time

from engine.brokers.ports import SpawnedBroker, log_tail
from engine.core.errors import BrokerStartError
from engine.kafka.admin import list_topics, run_sync


def wait_kafka_ready(broker: SpawnedBroker, deadline: float) -> None:
    """Retry a metadata request until the spawned broker answers, it exits, or time runs out."""
    last: BaseException | None = None
    while True:
        if broker.proc is not None and broker.proc.poll() is not None:
            raise BrokerStartError(f"{broker.name} exited with code {broker.proc.returncode} before answering "
                                  f"metadata; log {broker.log_path}:\n{log_tail(broker.log_path)}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerStartError(f"{broker.name} on {broker.address} never answered a metadata request: {last!r}; "
                                  f"log {broker.log_path}:\n{log_tail(broker.log_path)}")
        try:
            wait_s = min(5.0, max(0.5, remaining))
            run_sync(lambda: list_topics(broker.address, wait_s))  # noqa: B023 - called at once
            return
        except Exception as exc:  # connection refused/reset, timeouts while it boots
            last = exc
            time.sleep(0.1)
