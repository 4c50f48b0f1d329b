"""Talking to any Kafka as a client: starting clients, metadata, and creating topics.

Works against whatever answers at ``bootstrap``: the user's cluster, the
embedded Tansu or an Apache Kafka started by :mod:`engine.brokers`. A Kafka
that refuses or does not answer becomes :class:`BrokerUnreachable`, the one
clear error the command line prints.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from engine.core.errors import BrokerStartError, BrokerUnreachable, ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``name -> (partitions, configs)`` of the topics to create.
TopicSpecs = dict[str, tuple[int, dict[str, str]]]

#: Kafka error code for "topic already exists"; Tansu answers it too.
TOPIC_ALREADY_EXISTS = 36


class TopicCreateError(BrokerStartError):
    """The broker refused to create a topic (other than "already exists")."""


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
    return cast(T, box["result"])  # set by target() whenever no error was


async def list_topics(bootstrap: str, timeout: float) -> list[str]:
    """One metadata round trip; returns the topic names."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout * 1000)))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        return await asyncio.wait_for(admin.list_topics(), timeout)
    finally:
        await admin.close()


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


async def _create_topics(bootstrap: str, topics: TopicSpecs, timeout: float, replication: int,
                         min_insync: int) -> None:
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


def create_topics(bootstrap: str, topics: TopicSpecs, *, replication: int = 1, min_insync: int = 1,
                  timeout: float = 30.0) -> None:
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
