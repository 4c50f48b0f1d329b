"""Answering an HTTP request with the answer made by whichever worker owns its key.

The view registers the request id with :class:`AnswerWaiter`, produces the
request, and waits. The answer (a JSON object whose ``id`` is the request
id) reaches the waiter either directly (the agent ran in this worker) or
through :func:`follow_answers`, a group-less follower every worker runs on
the answers topic from its end, so any worker can answer for any other.
(Faust's ``agent.ask()`` would need a reply topic per worker, which Faust
adds to the group subscription on first use and then sleeps 3 s: a rebalance
and a slow first answer on every worker start.)

While the follower reconnects, answers from other workers wait; a view that
times out answers that the result can be read later. The follower fetches
with ``fetch_max_wait_ms`` 20, not 200: Tansu holds every fetch that long even
when data arrives (engine.kafka.tansu), and a request waits for each fetch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import orjson

from engine.kafka.follow import END, Handler, Source, follow, follow_forever

log = logging.getLogger(__name__)

ANSWER_FETCH_WAIT_MS = 20
ANSWER_POLL_MS = 1000


class AnswerWaiter:
    """Requests waiting for their answer, by id; ``ready`` is set while the answers follower is positioned."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.ready = asyncio.Event()

    def expect(self, request_id: str) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = fut
        return fut

    def resolve(self, doc: dict[str, Any]) -> None:
        fut = self._waiting.pop(str(doc.get("id")), None)
        if fut is not None and not fut.done():
            fut.set_result(doc)

    def forget(self, request_id: str) -> None:
        self._waiting.pop(request_id, None)

    def __len__(self) -> int:
        return len(self._waiting)


def resolver(name: str, waiter: AnswerWaiter) -> Handler:
    """A follower's handler that resolves ``waiter`` from answer records (read only while someone waits)."""

    def handle(records: list[Any]) -> None:
        for r in records:
            if not len(waiter):
                return
            try:
                waiter.resolve(orjson.loads(r.value))
            except (orjson.JSONDecodeError, TypeError, AttributeError):
                log.error("%s: undecodable record at %s[%s]@%s", name, r.topic, r.partition, r.offset)

    return handle


async def follow_answers(name: str, servers: Sequence[str], topic: str, waiter: AnswerWaiter) -> None:
    """Resolve waiting requests from ``topic``, read from its end, for the worker's life (reconnecting on errors)."""
    await follow_forever(name, lambda: follow(servers, [Source(topic, END, resolver(name, waiter))], name=name,
                                              fetch_max_wait_ms=ANSWER_FETCH_WAIT_MS, poll_ms=ANSWER_POLL_MS,
                                              on_ready=waiter.ready.set), ready=waiter.ready)
