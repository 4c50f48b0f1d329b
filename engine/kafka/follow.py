"""Follow Kafka topics without a consumer group: every worker reads every partition.

A plain aiokafka consumer, partitions assigned by hand, no commits. Each
worker sees every record, which is what the read models (zones, tasks, the
one-map) and the answer followers (:mod:`engine.kafka.answers`) need: a
consumer group would split the partitions between workers.

Where each topic starts (:class:`Source`): ``"beginning"`` (compacted topics:
zones, tasks), ``"end"`` (answers: only what comes after), an offset
(:class:`At`), or a number of seconds of history (``fixes``, ``alerts``): the
broker is asked for the offsets of that time, and records older than it are
skipped all the same, because the embedded Tansu broker answers that
question loosely (measured: offset 0). Where no record is that recent,
reading starts at the end offset taken just before the question (Apache
Kafka answers "none" for an empty partition, and a record written meanwhile
must not be skipped). A topic that does not exist yet (``tasks`` before the
tasks service first writes it) is waited for; its partitions come from a
full metadata request (:mod:`engine.kafka.metadata`).

Caught up means read to the end offsets reported once reading started.
Tansu can report an end offset short of the true end (:mod:`engine.kafka.tansu`):
close enough for a follower to start answering, the rest arrives within the
next fetches. :func:`read_to_end`, which stops there, reads on until two
fetches past the reported end bring nothing, so it does not stop short.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from engine.core.clock import Clock, SystemClock
from engine.kafka.admin import start_client
from engine.kafka.metadata import wait_partitions

log = logging.getLogger(__name__)

Handler = Callable[[list[Any]], Any]  # the records of one partition from one fetch; may return an awaitable
Hook = Callable[[], Any]  # may return an awaitable

BEGINNING = "beginning"
END = "end"
FETCH_WAIT_MS = 200  # how long the broker may hold a fetch; the answer followers take 20 (engine.kafka.answers)
CONNECT_TIMEOUT_S = 10.0  # read_to_end: a Kafka that does not answer this long at start is BrokerUnreachable
RETRY_S = 2.0


@dataclass(frozen=True)
class At:
    """Start at this offset (of every partition read)."""

    offset: int


Start = str | float | At  # BEGINNING, END, At(offset), or seconds of history


@dataclass(frozen=True)
class Source:
    """One topic to read: where to start, who takes its records, which partitions.

    ``partitions`` None reads every partition, waiting for the topic to exist; given, those are assigned at
    once (the zones topic: one partition, created before anyone reads it).
    """

    topic: str
    start: Start
    handle: Handler
    partitions: tuple[int, ...] | None = None


@dataclass
class _Plan:
    handlers: dict[TopicPartition, Handler] = field(default_factory=dict)
    cutoffs: dict[TopicPartition, int] = field(default_factory=dict)  # ms: older records are not handed over
    ends: Mapping[TopicPartition, int] = field(default_factory=dict)  # reported ends of partitions not from END

    async def reached_ends(self, consumer: AIOKafkaConsumer) -> bool:
        for tp, end in self.ends.items():
            if await consumer.position(tp) < end:
                return False
        return True


async def follow(servers: Sequence[str], sources: Sequence[Source], *, name: str, clock: Clock | None = None,
                 fetch_max_wait_ms: int = FETCH_WAIT_MS, poll_ms: int = 300, max_records: int | None = None,
                 topic_wait_s: float = 0.5, retry_fetch_errors: bool = False, on_ready: Hook | None = None,
                 on_idle: Hook | None = None, on_caught_up: Hook | None = None) -> None:
    """Hand the records of ``sources`` to their handlers until cancelled; ``name`` prefixes the log lines.

    ``on_ready`` runs once every source is positioned (records after that point are seen), ``on_idle`` after
    each fetch that handed nothing over, ``on_caught_up`` once the sources not read from their end reach the
    end offsets reported at the start. A handler that raises is logged and reading goes on; a failed fetch
    raises (for :func:`follow_forever` to reconnect) unless ``retry_fetch_errors``, then it is fetched again.
    """
    consumer = _consumer(servers, fetch_max_wait_ms)
    await consumer.start()
    try:
        plan = await _assign(consumer, sources, clock, topic_wait_s, name, with_ends=on_caught_up is not None)
        await _call(on_ready)
        caught_up = on_caught_up is None
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=poll_ms, max_records=max_records)
            except KafkaError as exc:
                if not retry_fetch_errors:
                    raise
                log.warning("%s: reading %s failed (%s); retrying", name, ", ".join(s.topic for s in sources), exc)
                await asyncio.sleep(1.0)
                continue
            if not await _hand_over(batches, plan, name):
                await _call(on_idle)
            if not caught_up and await plan.reached_ends(consumer):
                caught_up = True
                await _call(on_caught_up)
    finally:
        await consumer.stop()


async def read_to_end(servers: Sequence[str], sources: Sequence[Source], *, name: str, clock: Clock | None = None,
                      fetch_max_wait_ms: int = FETCH_WAIT_MS, poll_ms: int = 300, idle_fetches: int = 2,
                      connect_timeout_s: float = CONNECT_TIMEOUT_S) -> dict[TopicPartition, int]:
    """Read ``sources`` to their end, then stop; returns each partition's position, to follow on from.

    The end is ``idle_fetches`` fetches in a row that bring nothing once past the end offsets reported at the
    start. A Kafka that does not answer within ``connect_timeout_s`` is :class:`BrokerUnreachable`.
    """
    consumer = _consumer(servers, fetch_max_wait_ms)
    await start_client(consumer, ",".join(servers), connect_timeout_s)
    try:
        plan = await _assign(consumer, sources, clock, 0.5, name, with_ends=True)
        idle = 0
        while idle < idle_fetches:
            got = await _hand_over(await consumer.getmany(timeout_ms=poll_ms), plan, name)
            idle = idle + 1 if not got and await plan.reached_ends(consumer) else 0
        return {tp: await consumer.position(tp) for tp in plan.handlers}
    finally:
        await consumer.stop()


async def follow_forever(name: str, run: Callable[[], Awaitable[None]], *, ready: asyncio.Event | None = None) -> None:
    """Run a follower for good: when its consumer fails (Kafka away), ``ready`` is cleared until it runs again."""
    while True:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - Kafka away: try again
            if ready is not None:
                ready.clear()
            log.exception("%s: consumer failed; retrying in %.0f s", name, RETRY_S)
            await asyncio.sleep(RETRY_S)


def _consumer(servers: Sequence[str], fetch_max_wait_ms: int) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=list(servers), group_id=None, enable_auto_commit=False,
                            fetch_max_wait_ms=fetch_max_wait_ms, auto_offset_reset="earliest")


async def _call(hook: Hook | None) -> None:
    if hook is not None:
        done = hook()
        if inspect.isawaitable(done):
            await done


async def _assign(consumer: AIOKafkaConsumer, sources: Sequence[Source], clock: Clock | None, topic_wait_s: float,
                  name: str, *, with_ends: bool) -> _Plan:
    chosen: list[tuple[Source, list[TopicPartition]]] = []
    for src in sources:
        if src.partitions is None:
            tps = await wait_partitions(consumer, src.topic, topic_wait_s, functools.partial(
                log.info, "%s: topic %s does not exist yet; waiting for it", name, src.topic))
        else:
            tps = [TopicPartition(src.topic, p) for p in src.partitions]
        chosen.append((src, tps))
    consumer.assign([tp for _, tps in chosen for tp in tps])
    plan = _Plan()
    for src, tps in chosen:
        cutoff_ms = await _seek(consumer, tps, src.start, clock or SystemClock(), name)
        for tp in tps:
            plan.handlers[tp] = src.handle
            if cutoff_ms is not None:
                plan.cutoffs[tp] = cutoff_ms
        log.info("%s: following %s (%d partitions) from %s", name, src.topic, len(tps), src.start)
    if with_ends:
        plan.ends = await consumer.end_offsets([tp for src, tps in chosen if src.start != END for tp in tps])
    return plan


async def _seek(consumer: AIOKafkaConsumer, tps: list[TopicPartition], start: Start, clock: Clock,
                name: str) -> int | None:
    """Position ``tps`` at ``start``; returns the history cutoff (ms) if there is one."""
    if isinstance(start, At):
        for tp in tps:
            consumer.seek(tp, start.offset)
        return None
    if start == BEGINNING:
        await consumer.seek_to_beginning(*tps)
        return None
    if start == END:
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolve the end now: records after this point are seen
        return None
    if isinstance(start, str):
        raise ValueError(f"start {start!r}: expected {BEGINNING!r}, {END!r}, At(offset) or seconds of history")
    cutoff_ms = int((clock.now() - float(start)) * 1000)
    ends = await consumer.end_offsets(tps)  # before the time lookup: what lands in between is still read
    try:
        found = await consumer.offsets_for_times({tp: cutoff_ms for tp in tps})
    except KafkaError as exc:
        log.warning("%s: %s: offsets for a time not available (%s); reading from the start", name, tps[0].topic, exc)
        found = {}
    for tp in tps:
        hit = found.get(tp)
        if tp not in found:
            await consumer.seek_to_beginning(tp)
        elif hit is None:  # nothing that recent: from the end as it was (seek_to_end would resolve it later)
            consumer.seek(tp, ends[tp])
        else:
            consumer.seek(tp, hit.offset)
    return cutoff_ms


async def _hand_over(batches: Mapping[TopicPartition, list[Any]], plan: _Plan, name: str) -> int:
    """Give each partition's records to its handler; returns how many records were handed over."""
    handed = 0
    for tp, records in batches.items():
        cutoff_ms = plan.cutoffs.get(tp)
        if cutoff_ms is not None:
            records = [r for r in records if r.timestamp >= cutoff_ms]
        if not records:
            continue
        handed += len(records)
        try:
            done = plan.handlers[tp](records)
            if inspect.isawaitable(done):
                await done
        except Exception:  # noqa: BLE001 - one bad batch must not stop the follower; record content is not logged
            log.exception("%s: handling %d records of %s partition %d from offset %d failed",
                          name, len(records), tp.topic, tp.partition, records[0].offset)
    return handed
