"""``citywatch zones load|remove|list``: manage the zones every worker holds.

Zones travel on the compacted Kafka ``zones`` topic (see
:mod:`engine.geofence.zone_store`); workers pick changes up live. ``load``
validates everything before writing anything, so a bad file changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from engine.brokers import kafka
from engine.core.clock import Clock, SystemClock, to_iso
from engine.core.errors import ZoneFileError
from engine.geofence.zone_store import apply_records, records_from_path, zone_from_record
from engine.kafka.producers import producer_options
from engine.kafka.topics import ensure_topics
from engine.settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # a Kafka that does not answer this long at start is BrokerUnreachable


async def start_client(client: AIOKafkaConsumer | AIOKafkaProducer, settings: Settings) -> None:
    """Start ``client``; a Kafka that refuses or does not answer is :class:`BrokerUnreachable` (client closed)."""
    await kafka.start_client(client, settings.kafka.bootstrap, CONNECT_TIMEOUT_S)


async def read_zone_records(settings: Settings) -> dict[str, bytes]:
    """The current zone set: the topic folded by key, tombstones applied."""
    return (await read_zone_records_at(settings))[0]


async def read_zone_records_at(settings: Settings) -> tuple[dict[str, bytes], int]:
    """The current zone set and the offset to follow the topic from."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.servers, group_id=None, enable_auto_commit=False)
    await start_client(consumer, settings)
    try:
        tp = TopicPartition(settings.kafka.topics.zones, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        out: dict[str, bytes] = {}
        idle = 0
        while idle < 2:  # stop after two empty fetches once past the reported end
            batch = await consumer.getmany(tp, timeout_ms=300)
            got = apply_records(out, batch.get(tp, []))
            idle = idle + 1 if not got and await consumer.position(tp) >= end else 0
        return out, await consumer.position(tp)
    finally:
        await consumer.stop()


ZONE_WRITE_TIMEOUT_S = 60.0  # for Kafka to take the zone records


async def write_zone_records(settings: Settings, records: dict[str, bytes | None]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.servers, **producer_options(settings.kafka))
    await start_client(producer, settings)
    try:
        futures = [await producer.send(settings.kafka.topics.zones, value, key=zid.encode())
                   for zid, value in sorted(records.items())]
        try:  # an idempotent producer retries for good: give up here instead
            await asyncio.wait_for(asyncio.gather(*futures), ZONE_WRITE_TIMEOUT_S)
        except TimeoutError as exc:
            raise kafka.kafka_unreachable(exc, settings.kafka.bootstrap, ZONE_WRITE_TIMEOUT_S) from exc
    finally:
        await producer.stop()


def load_zones(settings: Settings, path: str, *, replace: bool = False, clock: Clock | None = None) -> tuple[int, int]:
    """Validate ``path`` and publish its zones; with ``replace``, remove zones not in it. Returns (loaded, removed)."""
    clock = clock or SystemClock()
    records: dict[str, bytes | None] = dict(records_from_path(path, tz=settings.city.tz, limits=settings.zones,
                                                               loaded_at=to_iso(clock.now(), ZoneInfo(settings.city.tz))))
    ensure_topics(settings)
    removed = 0
    if replace:
        current = asyncio.run(read_zone_records(settings))
        for zid in current.keys() - records.keys():
            records[zid] = None
            removed += 1
    asyncio.run(write_zone_records(settings, records))
    return len(records) - removed, removed


def seed_zones_if_empty(settings: Settings) -> int:
    """Load ``zones.dir`` when the zones topic has never been written (a new deployment)."""
    ensure_topics(settings)
    if asyncio.run(_topic_has_records(settings)):
        return 0
    loaded, _ = load_zones(settings, settings.zones.dir)
    log.info("zones: seeded %d zones from %s into an empty %s topic", loaded, settings.zones.dir,
             settings.kafka.topics.zones)
    return loaded


async def _topic_has_records(settings: Settings) -> bool:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.servers, group_id=None)
    await start_client(consumer, settings)
    try:
        tp = TopicPartition(settings.kafka.topics.zones, 0)
        return (await consumer.end_offsets([tp]))[tp] > 0
    finally:
        await consumer.stop()


def remove_zones(settings: Settings, ids: list[str]) -> list[str]:
    """Tombstone ``ids``; returns the ids that were not there."""
    current = asyncio.run(read_zone_records(settings))
    missing = [z for z in ids if z not in current]
    present = {z: None for z in ids if z in current}
    if present:
        asyncio.run(write_zone_records(settings, present))  # type: ignore[arg-type]
    return missing


def list_zones(settings: Settings, *, as_json: bool, clock: Clock | None = None, out=sys.stdout) -> int:
    clock = clock or SystemClock()
    tz = ZoneInfo(settings.city.tz)
    now = datetime.fromtimestamp(clock.now(), tz)
    rows = []
    for zid, value in sorted(asyncio.run(read_zone_records(settings)).items()):
        rec = orjson.loads(value)
        try:
            z = zone_from_record(zid, rec, tz=settings.city.tz)
            rows.append({"id": z.id, "name": z.name, "rule": z.rule, "severity": z.severity,
                         "classes": sorted(z.classes) if z.classes else "all", "exempt": sorted(z.exempt),
                         "active_now": z.schedule.active(now), "source": rec.get("source"),
                         "loaded_at": rec.get("loaded_at")})
        except (ZoneFileError, ValueError) as exc:
            rows.append({"id": zid, "invalid": str(exc)})
    if as_json:
        out.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return len(rows)
    out.write(f"{len(rows)} zones on topic {settings.kafka.topics.zones} ({settings.kafka.bootstrap}), "
              f"active = schedule open at {now.isoformat(timespec='seconds')}\n")
    for r in rows:
        if "invalid" in r:
            out.write(f"  {r['id']:32} INVALID: {r['invalid']}\n")
            continue
        classes = ",".join(r["classes"]) if isinstance(r["classes"], list) else r["classes"]
        exempt = f" exempt {','.join(r['exempt'])}" if r["exempt"] else ""
        out.write(f"  {r['id']:32} {r['rule']:8} {'active' if r['active_now'] else 'inactive':8} "
                  f"{r['severity']:8} {classes}{exempt}  {r['name']}\n")
    return len(rows)
