"""Reports from HTTP and MQTT alike: raw input -> a validated, placed :class:`Report`, or a rejection record.

Placement: the grid units containing the point (:mod:`engine.casework.grid`),
its projected position and its place keys for duplicate checks
(:mod:`engine.casework.dedup`). A point in the city bounds but in no grid unit
is refused as ``out_of_area``. A rejection record (``reports.rejected``)
names the source, the reason code, every problem and carries a copy of the
input with contact fields masked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from engine.casework import dedup
from engine.casework.errors import InvalidReport, Problem
from engine.casework.grid import Grid
from engine.casework.report_models import CONTACT_FIELDS, Report, mask_contact
from engine.casework.settings import CaseworkConfig
from engine.casework.validation import form_fields, parse_report
from engine.core.clock import Clock

MAX_BODY = 65536


class Intake:
    def __init__(self, settings: CaseworkConfig, grid: Grid, clock: Clock):
        self.settings, self.grid, self.clock = settings, grid, clock
        self.cfg = settings.reports

    def http(self, body: bytes, content_type: str, *, report_id: str) -> Report:
        """A POST ``requests.json`` body: form-encoded (the standard) or a JSON object."""
        return self.report(decode_body(body, content_type), report_id=report_id, source="http")

    def mqtt(self, payload: bytes, *, report_id: str) -> Report:
        """An MQTT message on ``reports.mqtt_topic``: a JSON object with the Open311 arguments."""
        if len(payload) > MAX_BODY:
            raise InvalidReport.one("payload", f"at most {MAX_BODY} bytes, got {len(payload)}", "payload_too_large")
        return self.report(decode_json(payload), report_id=report_id, source="mqtt")

    def report(self, args: Mapping[str, Any], *, report_id: str, source: str) -> Report:
        r = parse_report(args, services=self.settings.tasks.services, cfg=self.cfg, bounds=self.settings.city.bounds,
                         now=self.clock.now(), report_id=report_id, source=source)
        return self.place(r)

    def place(self, r: Report) -> Report:
        placement = self.grid.locate(r.lat, r.lon)
        if not placement.units:
            raise InvalidReport.one("lat/long", f"({r.lat}, {r.lon}) is in no unit of the city's grid "
                                                "(settings reports.grid_dir)", "out_of_area")
        x, y = self.grid.project(r.lat, r.lon)
        keys = dedup.place_keys(r.service_code, x, y, self.cfg.dedup_cell_m, self.cfg.dedup_radius_m)
        return dataclasses.replace(r, grid=placement.codes, grid_names=placement.names, x=x, y=y, place_key=keys[0],
                                   cells=tuple(keys))


def decode_body(body: bytes, content_type: str) -> dict[str, Any]:
    if len(body) > MAX_BODY:
        raise InvalidReport.one("body", f"at most {MAX_BODY} bytes, got {len(body)}", "payload_too_large")
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "application/json" or (not ctype and body.lstrip()[:1] == b"{"):
        return decode_json(body)
    if ctype in ("application/x-www-form-urlencoded", ""):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidReport.one("body", f"not UTF-8 (byte {exc.start})", "bad_shape") from None
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=100)
        except ValueError as exc:
            raise InvalidReport.one("body", f"not a form-encoded body: {exc}", "bad_shape") from None
        return form_fields(pairs)
    raise InvalidReport.one("Content-Type", f"{ctype!r} not accepted: send application/x-www-form-urlencoded "
                                            "(Open311) or application/json", "bad_shape")


def decode_json(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        raise InvalidReport.one("body", "is not valid JSON", "bad_json") from None
    if not isinstance(value, dict):
        raise InvalidReport.one("body", "must be a JSON object of Open311 arguments", "bad_shape")
    return value


def safe_copy(args: Any) -> Any:
    """The input as kept on ``reports.rejected``: contact fields masked, long strings cut."""
    if not isinstance(args, Mapping):
        return None
    out: dict[str, Any] = {}
    for k, v in list(args.items())[:50]:
        key = str(k)[:64]
        if key in CONTACT_FIELDS and v is not None:
            out[key] = mask_contact(str(v))
        elif isinstance(v, str):
            out[key] = v[:500]
        elif isinstance(v, (int, float, bool)) or v is None:
            out[key] = v
        else:
            out[key] = f"<{type(v).__name__}>"
    return out


def rejection(exc: InvalidReport, *, source: str, received_at: float, args: Any = None, raw_len: int = 0,
              where: Mapping[str, Any] | None = None) -> bytes:
    """The ``reports.rejected`` record."""
    rec: dict[str, Any] = {"source": source, "reason": exc.code, "field": exc.field, "detail": exc.reason,
                           "errors": [dataclasses.asdict(p) for p in exc.problems], "received_at": received_at,
                           **(where or {})}
    copy = safe_copy(args)
    if copy is not None:
        rec["payload"] = copy
    else:
        rec["payload_bytes"] = raw_len
    return orjson.dumps(rec)


__all__ = ["Intake", "InvalidReport", "Problem", "decode_body", "decode_json", "rejection"]
