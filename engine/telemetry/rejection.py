"""What the bridge writes to ``fixes.rejected`` for an input it refuses, and the result of parsing one payload."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.telemetry.columns import FixColumns

RAW_KEEP_BYTES = 65536  # raw payload kept in a rejection record; larger ones keep size + head

#: Every reason the bridge gives (``fixes.rejected`` / ``citywatch_fixes_rejected_total{reason}``).
REASONS = frozenset({
    "bad_json", "bad_shape", "bad_topic", "missing_field", "bad_type", "bad_vehicle_id", "vehicle_mismatch",
    "foreign_vehicle", "bad_timestamp", "future_timestamp", "bad_coordinates", "null_island", "out_of_area",
    "bad_speed", "bad_heading", "bad_accuracy", "bad_class", "field_too_long", "payload_too_large",
    "too_many_fixes", "too_deep", "internal_error"})




@dataclass(slots=True)
class Rejection:
    """A rejected input, as written to ``fixes.rejected``."""

    reason: str
    detail: str
    raw: bytes
    topic: str = ""
    vehicle_id: str | None = None
    index: int | None = None
    received_at: float | None = None
    source: str = "mqtt"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        try:
            raw_text, encoding = self.raw[:RAW_KEEP_BYTES].decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            raw_text, encoding = base64.b64encode(self.raw[:RAW_KEEP_BYTES]).decode("ascii"), "base64"
        doc = {
            "reason": self.reason, "detail": self.detail, "source": self.source, "topic": self.topic,
            "vehicle_id": self.vehicle_id, "index": self.index, "received_at": self.received_at,
            "raw": raw_text, "raw_encoding": encoding, "raw_size": len(self.raw),
            "raw_truncated": len(self.raw) > RAW_KEEP_BYTES, **self.extra,
        }
        try:
            return orjson.dumps(doc)
        except TypeError:  # a string that is not valid UTF-8 (a lone surrogate): write it escaped
            return orjson.dumps({k: v.encode("utf-8", "backslashreplace").decode() if isinstance(v, str) else v
                                 for k, v in doc.items()})


@dataclass(slots=True)
class Parsed:
    fixes: FixColumns             # the accepted fixes, in payload order
    rejections: list[Rejection]
