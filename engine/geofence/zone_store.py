"""Zones on the compacted Kafka ``zones`` topic: one record per zone, keyed by zone id.

The record value is ``{"feature": <GeoJSON feature as written in the file>,
"source": <file>, "loaded_at": <ISO time>}``; a tombstone (value null)
removes the zone. This module knows the record format and how to turn
records back into a :class:`ZoneIndex`; it does not talk to Kafka.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from engine.core.errors import ZoneFileError
from engine.geofence.index import ZoneIndex
from engine.geofence.zones import Zone, feature_id, load_zone_dir, parse_feature_collection
from engine.settings import ZonesSettings

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


def zone_from_record(zone_id: str, value: Mapping[str, Any] | bytes, *, tz: str) -> Zone:
    """One stored record -> :class:`Zone` (raises :class:`ZoneFileError` if it is not valid)."""
    rec = orjson.loads(value) if isinstance(value, (bytes, str)) else value
    if not isinstance(rec, Mapping) or not isinstance(rec.get("feature"), Mapping):
        raise ZoneFileError(f"zones topic key {zone_id}", "record has no 'feature' object")
    source = str(rec.get("source") or f"zones topic key {zone_id}")
    [zone] = parse_feature_collection({"type": "FeatureCollection", "features": [rec["feature"]]},
                                      source=source, tz=tz)
    if zone.id != zone_id:
        raise ZoneFileError(source, f"record key {zone_id!r} differs from the feature's id {zone.id!r}",
                            feature=zone.id, field="properties.id")
    return zone


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
