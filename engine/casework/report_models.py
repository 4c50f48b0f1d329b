"""A citizen's report, as validated at intake and carried on the Kafka ``reports`` topic.

The record on ``reports`` is keyed by the report's *place key*
(``{service_code}/{cell x}/{cell y}``, see :mod:`engine.casework.dedup`) so
that reports of one kind of hazard in one area meet on one partition, where
duplicates are merged. Contact fields (name, e-mail, phone, device and
account ids) are personal information: they stay on ``reports`` (raw
retention ``reports.raw_retention_days``) and are never copied to tasks,
alerts, outcomes or logs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

CONTACT_FIELDS = ("email", "phone", "first_name", "last_name", "device_id", "account_id")


@dataclass(frozen=True)
class Report:
    report_id: str
    service_code: str
    lat: float
    lon: float
    received_at: float  # epoch seconds: the Open311 requested_datetime of a task it opens
    source: str  # "http" | "mqtt"
    description: str = ""
    address: str = ""
    address_id: str = ""
    media_url: str = ""
    contact: dict[str, str] = field(default_factory=dict)
    token: str = ""  # MQTT: the answer goes to <reports.mqtt_topic>/answers/<token>
    # Placement, filled in by the intake (engine.casework.intake):
    grid: dict[str, str] = field(default_factory=dict)  # level -> code, lowest level first
    grid_names: dict[str, str] = field(default_factory=dict)
    x: float = 0.0  # projected metres (city.crs)
    y: float = 0.0
    place_key: str = ""
    cells: tuple[str, ...] = ()  # place keys a task opened by this report registers in (own first)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["cells"] = list(self.cells)
        return d

    def to_record(self) -> bytes:
        return orjson.dumps({"type": "report", "report": self.to_dict()})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs["cells"] = tuple(kwargs.get("cells") or ())
        return cls(**kwargs)


def task_id_for(report: Report, tz: ZoneInfo) -> str:
    """The ``service_request_id`` of the task this report opens: the city-local date and a hash of the report id.

    Derived, not drawn, so a report processed twice (a rebalance replay) names the same task.

    >>> r = Report("r-1", "obstruction", 24.47, 118.11, 1788832800.0, "http")
    >>> task_id_for(r, ZoneInfo("Asia/Shanghai"))
    '20260908-a5fa777a3d'
    """
    day = datetime.fromtimestamp(report.received_at, tz).strftime("%Y%m%d")
    return f"{day}-{hashlib.sha256(report.report_id.encode()).hexdigest()[:10]}"


def mask_contact(value: str) -> str:
    """A contact value for a rejection record: first and last character only.

    >>> mask_contact("13812345678"), mask_contact("ab")
    ('1*********8', '**')
    """
    s = str(value)
    return "*" * len(s) if len(s) <= 2 else s[0] + "*" * (len(s) - 2) + s[-1]
