"""How Citywatch's Kafka producers write, by kind of broker.

Every producer waits for all in-sync replicas (``acks=all``). On a real Kafka
cluster (``kafka.broker: kafka``) it is idempotent as well: the broker drops a
batch the producer sends again after a lost answer (a leader change, a
timeout), so a retry cannot write a fix or an alert twice. Tansu does not
implement the producer-id requests idempotence needs, so there a retry after
a lost answer may duplicate a record; the consumers tolerate that (a fix not
newer than the stored state is skipped, an alert keeps its id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.kafka.faust_fixes import KnownTopicsProducer, SafeTransport
from engine.kafka.settings import KafkaSettings


def producer_options(kafka: KafkaSettings) -> dict[str, Any]:
    """``AIOKafkaProducer`` keyword arguments for durable writes on the configured kind of broker."""
    return {"acks": "all", "enable_idempotence": kafka.broker == "kafka"}


class IdempotentProducer(KnownTopicsProducer):
    """Faust's producer with ``acks=all`` and idempotence (Faust sets them only inside transactions)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class KafkaTransport(SafeTransport):
    """The worker's transport on a real Kafka cluster: the record-skipping fixes and an idempotent producer."""

    Producer = IdempotentProducer
