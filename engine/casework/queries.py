"""Open311 GeoReport v2 reads as pure functions: the service list, a request's fields, ``GET requests`` filters.

``GET requests.json`` arguments: ``service_request_id`` (comma-separated;
when given, the other filters are ignored, as the standard says),
``service_code`` (comma-separated), ``start_date`` / ``end_date`` (ISO 8601
with an offset or ``Z``, on ``requested_datetime``; by default the last
``reports.list_days`` days up to now), ``status`` (``open``, ``closed`` or
both, comma-separated). Newest first, at most ``reports.list_limit``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.casework.errors import InvalidReport, Problem
from engine.casework.settings import ReportsSettings, ServiceSettings

REQUEST_FIELDS = ("service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url")


def services_list(services: Mapping[str, ServiceSettings]) -> list[dict[str, Any]]:
    """``GET services.json``: every service, in the standard's fields (no extra attributes: ``metadata`` false)."""
    return [{"service_code": code, "service_name": s.name or code, "description": s.description,
             "metadata": False, "type": "realtime", "keywords": s.keywords, "group": s.group}
            for code, s in services.items()]


def as_request(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A task from the ``tasks`` topic as an Open311 service request (only the standard's fields)."""
    return {"service_request_id": doc["service_request_id"], "status": doc["status"],
            "status_notes": doc.get("status_notes") or None, "service_name": doc.get("service_name"),
            "service_code": doc.get("service_code"), "description": doc.get("description") or None,
            "agency_responsible": doc.get("agency_responsible"), "service_notice": None,
            "requested_datetime": doc.get("requested_datetime"), "updated_datetime": doc.get("updated_datetime"),
            "expected_datetime": doc.get("expected_datetime"), "address": doc.get("address") or None,
            "address_id": None, "zipcode": None, "lat": doc.get("lat"), "long": doc.get("long"),
            "media_url": doc.get("media_url") or None}


@dataclass(frozen=True)
class Filters:
    ids: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    start: float = 0.0
    end: float = float("inf")
    statuses: tuple[str, ...] = ()
    limit: int = 1000


def parse_filters(query: Mapping[str, str], *, cfg: ReportsSettings, now: float) -> Filters:
    """``GET requests.json`` arguments -> :class:`Filters`; :class:`InvalidReport` (HTTP 400) names each bad one."""
    problems: list[Problem] = []
    ids = _list(query.get("service_request_id"))
    codes = _list(query.get("service_code"))
    statuses = _list(query.get("status"))
    for s in statuses:
        if s not in ("open", "closed"):
            problems.append(Problem("status", f"{s[:32]!r} is not open or closed", "bad_value"))
    start = _date(query, "start_date", problems)
    end = _date(query, "end_date", problems)
    if start is not None and end is not None and start > end:
        problems.append(Problem("start_date", "is after end_date", "bad_value"))
    if problems:
        raise InvalidReport(problems)
    span = cfg.list_days * 86400
    if end is None:
        end = now if start is None else start + span
    if start is None:
        start = end - span
    return Filters(ids=ids, codes=codes, start=start, end=end, statuses=statuses, limit=cfg.list_limit)


def select(docs: Iterable[Mapping[str, Any]], f: Filters) -> list[Mapping[str, Any]]:
    """The matching tasks, newest first, at most ``f.limit``."""
    if f.ids:
        wanted = set(f.ids)
        return sorted((d for d in docs if d["service_request_id"] in wanted), key=_requested, reverse=True)
    out = [d for d in docs
           if (not f.codes or d.get("service_code") in f.codes)
           and (not f.statuses or d.get("status") in f.statuses)
           and f.start <= _requested(d) <= f.end]
    out.sort(key=_requested, reverse=True)
    return out[:f.limit]


def _requested(doc: Mapping[str, Any]) -> float:
    try:
        return datetime.fromisoformat(str(doc.get("requested_datetime"))).timestamp()
    except ValueError:
        return 0.0


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())[:1000]


def _date(query: Mapping[str, str], name: str, problems: list[Problem]) -> float | None:
    value = query.get(name)
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        problems.append(Problem(name, "must be an ISO 8601 datetime with an offset, e.g. 2026-09-08T10:00:00+08:00",
                                "bad_value"))
        return None
    if dt.tzinfo is None:
        problems.append(Problem(name, "needs a time zone offset (e.g. +08:00 or Z)", "bad_value"))
        return None
    return dt.timestamp()
