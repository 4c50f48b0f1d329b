"""Typed vetting records: an application, a record from a police or transport feed, a finding.

None of them holds an ID number: a person is known by ``person_key`` (HMAC
of the normalised number) and shown by ``id_masked``. They travel as JSON
dicts (Kafka values, table values) through ``to_dict``/``from_dict``.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass, field
from datetime import date
from typing import Any

# Record kinds. Article 14(2)-(3) kinds have no time limit.
DRUG_USE = "drug_use"
DRINK_DRIVING = "drink_driving"
DANGEROUS_DRIVING = "dangerous_driving"
TRAFFIC_ACCIDENT_CRIME = "traffic_accident_crime"
VIOLENT_CRIME = "violent_crime"
CRIME = "crime"  # any other criminal record; counts as violent when its offence is on the list
POINTS = "points"
TAXI_CERTIFICATE_REVOKED = "taxi_certificate_revoked"
VIOLATION = "violation"
KINDS = (DRUG_USE, DRINK_DRIVING, DANGEROUS_DRIVING, TRAFFIC_ACCIDENT_CRIME, VIOLENT_CRIME, CRIME, POINTS,
         TAXI_CERTIFICATE_REVOKED, VIOLATION)
NEEDS_OFFENCE = (VIOLENT_CRIME, CRIME)

APPROVED, REJECTED, REVIEW = "approved", "rejected", "review"
FAIL = "fail"  # a finding that rejects; REVIEW: a finding that needs a clerk
LICENSED, SUSPENDED = "licensed", "suspended"  # driver status after an approval

_DATES = ("licence_first_issued", "residence_permit_since", "residence_permit_until", "vehicle_registered",
          "vehicle_first_application", "birth_date", "date", "cycle_start")


def _encode(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in d.items()}


def _decode(cls: type, d: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    kw = {k: (date.fromisoformat(v) if k in _DATES and isinstance(v, str) else v) for k, v in d.items() if k in names}
    return cls(**kw)


@dataclass(frozen=True)
class Application:
    """A validated application for a ride-hailing driver's licence."""

    id: str
    person_key: str
    id_masked: str
    name: str
    licence_class: str
    licence_first_issued: date
    received_at: float
    source: str = "http"
    hukou_city: str | None = None
    residence_permit_city: str | None = None
    residence_permit_kind: str = "residence"  # or "temporary"
    residence_permit_since: date | None = None
    residence_permit_until: date | None = None
    plate: str | None = None
    vehicle_registered: date | None = None
    vehicle_first_application: date | None = None
    reference: str | None = None
    # Only carried when the retirement-age rule is on (data minimisation): with the masked number,
    # a birth date would give away 16 of the 18 characters.
    birth_date: date | None = None
    sex: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _encode(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Application:
        return _decode(cls, d)

    def facts(self) -> dict[str, Any]:
        """What the decision keeps and shows of the application (no birth date, no sex)."""
        d = self.to_dict()
        for k in ("id", "person_key", "id_masked", "name", "received_at", "source", "reference", "birth_date", "sex"):
            d.pop(k, None)
        if self.residence_permit_city is None:
            d.pop("residence_permit_kind")
        return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class Record:
    """One entry of a police or transport record feed, about one person."""

    id: str
    person_key: str
    id_masked: str
    kind: str
    date: date
    offence: str | None = None
    points: int | None = None
    cycle_start: datetime.date | None = None  # ``date`` alone here would name the field above
    source: str | None = None
    recorded_at: float | None = None  # event time (epoch); default: the start of ``date`` in the city

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in _encode(dataclasses.asdict(self)).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        return _decode(cls, d)


@dataclass(frozen=True)
class Finding:
    """A rule that fired: ``outcome`` is :data:`FAIL` or :data:`REVIEW`, ``records`` the record ids it used."""

    rule: str
    outcome: str
    reason: str
    records: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "outcome": self.outcome, "reason": self.reason, "records": list(self.records)}


def decide(findings: list[Finding]) -> str:
    """Rejected if any rule fails; else review if any needs a clerk; else approved."""
    if any(f.outcome == FAIL for f in findings):
        return REJECTED
    if findings:
        return REVIEW
    return APPROVED
