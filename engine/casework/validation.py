"""Open311 ``POST requests`` arguments -> a :class:`Report`, or :class:`InvalidReport` naming every problem.

Pure: the caller passes the services, the limits, the city bounds and the time.
The body is form-encoded (``application/x-www-form-urlencoded``, as GeoReport v2
says) or a JSON object; both arrive here as a mapping of argument -> value.

Accepted arguments: ``service_code`` and ``lat``/``long`` (WGS-84, inside the
city bounds) are required - this jurisdiction cannot geocode an
``address_string`` alone, which is then kept as the address; ``description``
(at most ``reports.max_description`` characters), ``media_url`` (http/https),
``address_string``, ``address_id``, ``email``, ``phone``, ``first_name``,
``last_name``, ``device_id``, ``account_id``, ``jurisdiction_id`` (must be
ours when given), and ``token`` (MQTT only: where the answer is published).
``api_key`` is accepted and not checked here (access control sits in front of
the API); ``attribute[...]`` and other arguments are ignored, since no service
declares attributes (``metadata: false``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from engine.casework.errors import InvalidReport, Problem
from engine.casework.report_models import CONTACT_FIELDS, Report
from engine.casework.settings import ReportsSettings, ServiceSettings
from engine.core.city import Bounds

EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,60}")
PHONE = re.compile(r"\+?[0-9][0-9 \-]{2,30}")
TOKEN = re.compile(r"[A-Za-z0-9_\-]{1,64}")
TEXT_LIMITS = {"address_string": 500, "address_id": 128, "first_name": 100, "last_name": 100, "device_id": 128,
               "account_id": 128, "email": 254, "phone": 32, "media_url": 2048}


def parse_report(args: Mapping[str, Any], *, services: Mapping[str, ServiceSettings], cfg: ReportsSettings,
                 bounds: Bounds, now: float, report_id: str, source: str) -> Report:
    """Validate Open311 POST arguments; every problem is collected before raising."""
    problems: list[Problem] = []

    def text(name: str, limit: int) -> str:
        value = args.get(name)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            problems.append(Problem(name, "must be a string", "bad_type"))
            return ""
        s = str(value).strip()
        if len(s) > limit:
            problems.append(Problem(name, f"at most {limit} characters, got {len(s)}", "too_long"))
            return ""
        if any(ord(c) < 32 and c not in "\n\r\t" for c in s):
            problems.append(Problem(name, "contains control characters", "bad_value"))
            return ""
        return s

    jurisdiction = text("jurisdiction_id", 128)
    if jurisdiction and jurisdiction != cfg.jurisdiction_id:
        problems.append(Problem("jurisdiction_id", f"this endpoint serves jurisdiction {cfg.jurisdiction_id!r} only",
                                "bad_jurisdiction"))
    code = text("service_code", 64)
    if not code:
        if "service_code" not in [p.field for p in problems]:
            problems.append(Problem("service_code", "is required (see services.json)", "missing_field"))
    elif code not in services:
        problems.append(Problem("service_code", f"{code[:64]!r} is not a service of this jurisdiction "
                                                "(see services.json)", "unknown_service"))
    lat = _coordinate(args, "lat", -90, 90, problems)
    lon = _coordinate(args, "long", -180, 180, problems)
    if lat is not None and lon is not None and not (bounds.lat_min <= lat <= bounds.lat_max
                                                    and bounds.lon_min <= lon <= bounds.lon_max):
        problems.append(Problem("lat/long", f"({lat}, {lon}) is outside the city (lat {bounds.lat_min}-"
                                            f"{bounds.lat_max}, long {bounds.lon_min}-{bounds.lon_max}, WGS-84)",
                                "out_of_area"))
    description = text("description", cfg.max_description)
    media_url = text("media_url", TEXT_LIMITS["media_url"])
    if media_url and not re.match(r"https?://[^\s/]+", media_url):
        problems.append(Problem("media_url", "must be an http:// or https:// URL", "bad_value"))
    address = text("address_string", TEXT_LIMITS["address_string"])
    address_id = text("address_id", TEXT_LIMITS["address_id"])
    contact = {k: v for k in CONTACT_FIELDS if (v := text(k, TEXT_LIMITS[k]))}
    if "email" in contact and not EMAIL.fullmatch(contact["email"]):
        problems.append(Problem("email", "is not an e-mail address", "bad_value"))
    if "phone" in contact and not PHONE.fullmatch(contact["phone"]):
        problems.append(Problem("phone", "is not a phone number (digits, spaces, '-', leading '+')", "bad_value"))
    token = text("token", 64)
    if token and not TOKEN.fullmatch(token):
        problems.append(Problem("token", "1-64 letters, digits, '_' or '-'", "bad_value"))
    if problems:
        raise InvalidReport(problems)
    assert lat is not None and lon is not None
    return Report(report_id=report_id, service_code=code, lat=lat, lon=lon, received_at=now, source=source,
                  description=description, address=address, address_id=address_id, media_url=media_url,
                  contact=contact, token=token)


def _coordinate(args: Mapping[str, Any], name: str, low: float, high: float, problems: list[Problem]) -> float | None:
    value = args.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        hint = " (this jurisdiction cannot geocode address_string)" if args.get("address_string") else ""
        if name == "long" and "lon" in args:
            hint = " (the Open311 name is 'long', not 'lon')"
        problems.append(Problem(name, f"is required, WGS-84 decimal degrees{hint}", "missing_field"))
        return None
    if isinstance(value, bool):
        problems.append(Problem(name, "must be a number", "bad_type"))
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        problems.append(Problem(name, "must be a number", "bad_type"))
        return None
    if not math.isfinite(number) or not low <= number <= high:
        problems.append(Problem(name, f"must be between {low} and {high} (WGS-84), got {str(value)[:32]}",
                                "bad_coordinates"))
        return None
    return number


def form_fields(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Form arguments as a dict; an argument given twice is refused rather than guessed."""
    out: dict[str, str] = {}
    for k, v in pairs:
        if k in out and out[k] != v:
            raise InvalidReport.one(k[:64], "given twice with different values", "bad_shape")
        out[k] = v
    return out
