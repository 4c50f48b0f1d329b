"""Answering an HTTP application with the decision made by whichever worker owns the person.

The view registers the application id with :class:`DecisionWaiter`, produces
the request, and waits. The decision reaches the waiter either directly (the
``vet_application`` agent ran in this worker) or through
:func:`follow_decisions`, a group-less consumer every worker runs on the
``decisions`` topic from its end, so any worker can answer for any other.
(Faust's ``agent.ask()`` would need a reply topic per worker, which Faust
adds to the group subscription on first use and then sleeps 3 s: a rebalance
and a slow first answer on every worker start.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from engine.kafka.metadata import wait_partitions
from engine.settings import Settings
from engine.vetting.privacy import get_logger

log = get_logger(__name__)


class DecisionWaiter:
    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.ready = asyncio.Event()

    def expect(self, app_id: str) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[app_id] = fut
        return fut

    def resolve(self, doc: dict[str, Any]) -> None:
        fut = self._waiting.pop(str(doc.get("id")), None)
        if fut is not None and not fut.done():
            fut.set_result(doc)

    def forget(self, app_id: str) -> None:
        self._waiting.pop(app_id, None)

    def __len__(self) -> int:
        return len(self._waiting)


RETRY_S = 2.0


async def follow_decisions(settings: Settings, waiter: DecisionWaiter) -> None:
    """Resolve waiting requests from the decisions topic, for the worker's life (reconnecting on errors).

    While it reconnects, answers from other workers wait; a POST that times out answers 202 and the
    decision can still be read with the GET.
    """
    await follow_forever("follow_decisions", lambda: _follow(settings, waiter), waiter)


async def follow_forever(name: str, follow: Callable[[], Awaitable[None]], waiter: DecisionWaiter) -> None:
    """Run a topic follower for good: when its consumer fails (Kafka away), not ready until it runs again."""
    while True:
        try:
            await follow()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - Kafka away: try again
            waiter.ready.clear()
            log.exception("%s: consumer failed; retrying in %.0f s", name, RETRY_S)
            await asyncio.sleep(RETRY_S)


async def _follow(settings: Settings, waiter: DecisionWaiter) -> None:
    topic = settings.vetting.topics.decisions
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.servers, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=20)
    await consumer.start()
    try:
        tps = await wait_partitions(consumer, topic, 0.5)
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolve the end now: decisions after this point are seen
        waiter.ready.set()
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for r in records:
                    if not len(waiter):
                        continue
                    try:
                        waiter.resolve(orjson.loads(r.value))
                    except (orjson.JSONDecodeError, TypeError, AttributeError):
                        log.error("follow_decisions: undecodable record at %s[%s]@%s", r.topic, r.partition,
                                  r.offset)
    finally:
        await consumer.stop()
