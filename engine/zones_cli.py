"""``citywatch zones load|remove|list``: manage the zones every worker holds.

Zones travel on the compacted Kafka ``zones`` topic (records:
:mod:`engine.geofence.zone_store`, the topic: :mod:`engine.geofence.zone_topic`);
workers pick changes up live. ``load``
validates everything before writing anything, so a bad file changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson

from engine.core.clock import Clock, SystemClock, to_iso
from engine.core.errors import ZoneFileError
from engine.geofence.zone_store import records_from_path, zone_from_record
from engine.geofence.zone_topic import read_zone_records, write_zone_records, zone_topic_has_records
from engine.settings import Settings
from engine.topology import ensure_all_topics

log = logging.getLogger(__name__)


def load_zones(settings: Settings, path: str, *, replace: bool = False, clock: Clock | None = None) -> tuple[int, int]:
    """Validate ``path`` and publish its zones; with ``replace``, remove zones not in it. Returns (loaded, removed)."""
    clock = clock or SystemClock()
    records: dict[str, bytes | None] = dict(records_from_path(path, tz=settings.city.tz, limits=settings.zones,
                                                               loaded_at=to_iso(clock.now(), ZoneInfo(settings.city.tz))))
    ensure_all_topics(settings)
    removed = 0
    if replace:
        current = asyncio.run(read_zone_records(settings.kafka))
        for zid in current.keys() - records.keys():
            records[zid] = None
            removed += 1
    asyncio.run(write_zone_records(settings.kafka, records))
    return len(records) - removed, removed


def seed_zones_if_empty(settings: Settings) -> int:
    """Load ``zones.dir`` when the zones topic has never been written (a new deployment)."""
    ensure_all_topics(settings)
    if asyncio.run(zone_topic_has_records(settings.kafka)):
        return 0
    loaded, _ = load_zones(settings, settings.zones.dir)
    log.info("zones: seeded %d zones from %s into an empty %s topic", loaded, settings.zones.dir,
             settings.kafka.topics.zones)
    return loaded


def remove_zones(settings: Settings, ids: list[str]) -> list[str]:
    """Tombstone ``ids``; returns the ids that were not there."""
    current = asyncio.run(read_zone_records(settings.kafka))
    missing = [z for z in ids if z not in current]
    present = {z: None for z in ids if z in current}
    if present:
        asyncio.run(write_zone_records(settings.kafka, present))  # type: ignore[arg-type]
    return missing


def list_zones(settings: Settings, *, as_json: bool, clock: Clock | None = None, out=sys.stdout) -> int:
    clock = clock or SystemClock()
    tz = ZoneInfo(settings.city.tz)
    now = datetime.fromtimestamp(clock.now(), tz)
    rows = []
    for zid, value in sorted(asyncio.run(read_zone_records(settings.kafka)).items()):
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
