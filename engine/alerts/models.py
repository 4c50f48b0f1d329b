"""The alert record (README "Contracts", "Alerts out") and its stable ids.

An ``alert_id`` is derived from what identifies the incident (vehicle, zone,
the event time that opened it), never from wall-clock time or a counter, so
the same incident processed twice - after a rebalance replay or a restart -
gives the same id and consumers can de-duplicate.
"""

from __future__ import annotations

import uuid
from typing import Any
from zoneinfo import ZoneInfo

from engine.core.clock import to_iso

_NAMESPACE = uuid.UUID("0b6f4a52-1c55-4f0e-9d0c-6c1f2a0e7c11")


def stable_id(*parts: object) -> str:
    """A UUID5 of the parts: equal parts give equal ids in every process."""
    return str(uuid.uuid5(_NAMESPACE, "|".join(repr(p) for p in parts)))


def make_alert(kind: str, severity: str, *, alert_id: str, subject: str, ts: float, detected_at: float,
               tz: ZoneInfo, **fields: Any) -> dict[str, Any]:
    """An alert payload; ``ts`` and ``detected_at`` are epoch seconds, written ISO 8601 in ``tz``."""
    return {
        "alert_id": alert_id, "kind": kind, "severity": severity, "subject": subject,
        "ts": to_iso(ts, tz), "detected_at": to_iso(detected_at, tz), **fields,
    }


def mqtt_topic(prefix: str, alert: dict[str, Any]) -> str:
    """``{prefix}/{kind}/{subject}``; the subject is made safe as one topic level."""
    subject = str(alert.get("subject") or "-")
    for ch in "/+#":
        subject = subject.replace(ch, "_")
    return f"{prefix}/{alert['kind']}/{subject}"
