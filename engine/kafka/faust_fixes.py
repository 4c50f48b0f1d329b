"""Corrections to faust-streaming 0.15.3 that apply on every broker: a worker must never skip records.

Found by a worker restarted on a backlog (``tests/faults/test_worker_kill.py``):
it processed the first 45-103 records of each partition and silently skipped
the rest, on 4 of 10 runs after a kill -9 and on every run after a SIGTERM
restart. Two faults in Faust, either one enough to lose records, both hit
whenever a worker joins while its partitions hold a backlog (Kafka too):

1. **Faust's end of recovery clears what it has just fetched.**
   ``Recovery.on_recovery_completed`` resumes the stream partitions, then
   seeks them to the committed offsets (one request per assigned partition),
   then calls ``flow_control.resume()``, which empties every stream queue.
   Records fetched during the seek are thrown away while Faust's read offsets
   and the client's position have moved past them. :class:`OrderedRecovery`
   seeks first, with the stream partitions still paused, then resumes them,
   and resumes flow control (clearing the queues) only if it is not already
   active, i.e. never after a stream record could be in a queue.

2. **An empty partition set means "all" to aiokafka.** Faust hands the fetch
   its live set of active partitions; the main thread pauses partitions while
   the fetch waits in the consumer thread (end of changelog reading: the set
   goes empty), and aiokafka's ``fetched_records`` reads an empty set as
   every partition. It returned the paused stream partitions' records, Faust
   dropped them as not active, and the fetch position had already passed
   them. :class:`SafeConsumerThread` fetches for a snapshot of the set and
   nothing when it is empty, and its seek to the committed offsets also
   resets partitions that have none (aiokafka leaves those where they are),
   so the seek after a rebalance is the one place a position comes from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Set
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError, KafkaError, NodeNotReadyError
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)


class SafeConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def getmany(self, active_partitions: Set[TP] | None, timeout: float) -> Any:
        if active_partitions is None:
            return await super().getmany(None, timeout)
        wanted = frozenset(active_partitions)  # the caller's set changes while the fetch waits
        if not wanted:
            return {}  # aiokafka would read an empty set as "every partition"
        return await super().getmany(wanted, timeout)  # type: ignore[arg-type]

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed: Mapping[TP, int] = await self.call_thread(self._seek_to_committed)
        return committed

    async def _seek_to_committed(self) -> Mapping[TP, int]:
        consumer: AIOKafkaConsumer = self._ensure_consumer()
        committed: Mapping[TP, int] = await consumer.seek_to_committed()
        changelogs = self.app.tables.changelog_topics
        fresh = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
        if fresh:  # nothing committed yet: start where the reset policy says, not where a dropped fetch left off
            if self.app.conf.consumer_auto_offset_reset == "latest":
                await consumer.seek_to_end(*fresh)
            else:
                await consumer.seek_to_beginning(*fresh)
        return committed


class SafeConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> SafeConsumerThread:
        return SafeConsumerThread(self, loop=self.loop, beacon=self.beacon)


METADATA_ATTEMPTS = 20


class KnownTopicsProducer(faust_aiokafka.Producer):
    """Knows the partitions of every topic it created before anything is written to it.

    Creating a topic is asked again while the node taken for controller is not reachable (a broker of a
    replicated cluster killed or restarting), up to the same bound.

    A table write (``use_partitioner=True``) asks the producer for the key's
    partition synchronously, from the producer's metadata; on Kafka that holds
    only the topics the producer has sent to or asked about (Tansu answers
    with every topic), so a table's first write right after start raised
    ``TypeError: 'NoneType' object is not iterable`` and the record was lost
    for the table. After creating a topic (Faust creates every changelog at
    start) the producer now waits for its partitions.
    """

    async def create_topic(self, topic: str, *args: Any, **kwargs: Any) -> None:
        for attempt in range(METADATA_ATTEMPTS):
            try:
                await super().create_topic(topic, *args, **kwargs)
                break
            except (NodeNotReadyError, KafkaConnectionError) as exc:
                # The node the metadata names as controller was just killed or restarted: a worker that
                # rebalances then (Faust creates its assignor topic on every assignment) must ask again,
                # not crash.
                if attempt == METADATA_ATTEMPTS - 1:
                    raise
                log.warning("creating topic %s: %s; asking again", topic, exc)
                await asyncio.sleep(0.5)
        for attempt in range(METADATA_ATTEMPTS):  # a cluster just started may not answer every node yet
            try:
                await self._ensure_producer().partitions_for(topic)
                return
            except KafkaError as exc:
                if attempt == METADATA_ATTEMPTS - 1:
                    log.warning("no partitions known for topic %s yet (%s); a table write may fail until they are",
                                topic, exc)
                    return
                await asyncio.sleep(0.5)


class SafeTransport(faust_aiokafka.Transport):
    Consumer = SafeConsumer
    Producer = KnownTopicsProducer


class OrderedRecovery(Recovery):
    async def _start_streams(self) -> None:
        app, consumer = self.app, self.app.consumer
        if not app.flow_control.is_active():
            app.flow_control.resume()  # clears the queues: only while no stream partition is fetching
        assignment = consumer.assignment()
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        self.completed.set()
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        consumer.resume_flow()
        await app._fetcher.maybe_start()  # type: ignore[attr-defined]

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [asyncio.ensure_future(table.on_recovery_completed(self.actives_for_table[table],
                                                                       self.standbys_for_table[table]))
                     for table in self.tables.values()]
        if callbacks:
            await asyncio.wait(callbacks)
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again app id %s param %s", self.app.consumer_generation_id,
                             generation_id)
            return
        await self._start_streams()
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _resume_streams(self, generation_id: int = 0) -> None:  # apps without tables
        await self.app.on_rebalance_complete.send()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        await self._start_streams()
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")


class OrderedTableManager(TableManager):
    """The app's table manager (Faust's ``TableManager`` setting), with :class:`OrderedRecovery`."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = OrderedRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
