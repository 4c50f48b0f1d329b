"""Zones on the compacted Kafka ``zones`` topic: one record per zone, keyed by zone id.

The record value is ``{"feature": <GeoJSON feature as written in the file>,
"source": <file>, "loaded_at": <ISO time>}``; a tombstone (value null)
removes the zone. This module writes the records and turns them back into a
:class:`ZoneIndex`; it does not talk to Kafka. Reading one record is
:func:`~engine.geofence.zone_models.zone_from_record`, published with the zone
model for the domains that draw zones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from engine.core.errors import ZoneFileError
from engine.geo.geojson import feature_id
from engine.geofence.index import ZoneIndex
from engine.geofence.settings import ZonesSettings
from engine.geofence.zone_models import load_zone_dir, zone_from_record

log = logging.getLogger(__name__)


def zone_files(path: str | Path) -> list[Path]:
    p = Path(path)
    return sorted(p.glob("*.geojson")) if p.is_dir() else [p]


def records_from_path(path: str | Path, *, tz: str, loaded_at: str,
                      limits: ZonesSettings | None = None) -> dict[str, bytes]:
    """Validate every zone file under ``path`` (all-or-nothing) and return ``zone_id -> record``.

    Raises :class:`ZoneFileError` naming the file, feature and field of the first problem
    (or the size limit, ``zones.max_*``, it breaks).
    """
    zones = load_zone_dir(path, tz=tz, limits=limits)  # validates everything first: a bad file yields nothing
    wanted = {z.id for z in zones}
    records: dict[str, bytes] = {}
    for f in zone_files(path):
        for feature in json.loads(f.read_text(encoding="utf-8"))["features"]:
            zid = feature_id(feature)
            if zid in wanted:
                records[zid] = orjson.dumps({"feature": feature, "source": str(f), "loaded_at": loaded_at})
    return records


def apply_records(records: dict[str, bytes], batch: Iterable[Any]) -> int:
    """Fold Kafka records of the zones topic into ``records`` (a tombstone removes the key); returns how many."""
    n = 0
    for r in batch:
        key = r.key.decode() if r.key else ""
        if r.value is None:
            records.pop(key, None)
        else:
            records[key] = r.value
        n += 1
    return n


def build_index(records: Iterable[tuple[str, Any]], *, tz: str, crs: str) -> tuple[ZoneIndex, list[str]]:
    """A new index from stored records; invalid records are skipped and their errors returned."""
    zones, errors = [], []
    for zone_id, value in records:
        try:
            zones.append(zone_from_record(zone_id, value, tz=tz))
        except (ZoneFileError, ValueError, TypeError, orjson.JSONDecodeError) as exc:
            errors.append(f"{zone_id}: {exc}")
    zones.sort(key=lambda z: z.id)
    return ZoneIndex(zones, crs=crs), errors
