"""Input from HTTP and Kafka alike: JSON bytes -> validated models, or a rejection record.

A rejection keeps the field, the reason and where the input came from; its
copy of the payload has the ID number masked and any ID-number-like text in
it scrubbed, so ``vetting.rejected`` never holds a raw number either.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import orjson

from engine.core.clock import Clock
from engine.core.limits import too_deep
from engine.vetting import idnumber
from engine.vetting.calendar import local_date
from engine.vetting.errors import InvalidInput
from engine.vetting.models import Application, Record
from engine.vetting.privacy import PersonKeyer, mask, scrub
from engine.vetting.settings import VettingSettings
from engine.vetting.validation import errors_of, parse_application, parse_record

MAX_RECORDS_PER_REQUEST = 1000
SAFE_COPY_DEPTH = 32  # a rejected payload nested deeper is kept as its size only


class Intake:
    def __init__(self, keyer: PersonKeyer, cfg: VettingSettings, tz: ZoneInfo, clock: Clock):
        self.keyer, self.cfg, self.tz, self.clock = keyer, cfg, tz, clock

    def application(self, body: bytes, *, suffix: str, source: str) -> Application:
        now = self.clock.now()
        return parse_application(decode(body, self.cfg.max_json_depth), keyer=self.keyer, cfg=self.cfg, today=local_date(now, self.tz),
                                 now=now, suffix=suffix, source=source)

    def record(self, body: bytes) -> Record:
        return parse_record(decode(body, self.cfg.max_json_depth), keyer=self.keyer, today=local_date(self.clock.now(), self.tz))

    def records(self, body: bytes) -> list[Record]:
        """One record object or an array of them; any invalid element rejects them all (fields ``[i].name``)."""
        payload = decode(body, self.cfg.max_json_depth)
        if isinstance(payload, dict):
            return [parse_record(payload, keyer=self.keyer, today=local_date(self.clock.now(), self.tz))]
        if not isinstance(payload, list) or not payload:
            raise InvalidInput("body", "must be a record object or a non-empty array of them", "bad_shape")
        if len(payload) > MAX_RECORDS_PER_REQUEST:
            raise InvalidInput("body", f"at most {MAX_RECORDS_PER_REQUEST} records per request", "bad_shape")
        today = local_date(self.clock.now(), self.tz)
        out: list[Record] = []
        problems: list[InvalidInput] = []
        seen: set[tuple[str, str]] = set()
        for i, item in enumerate(payload):
            try:
                r = parse_record(item, keyer=self.keyer, today=today)
            except InvalidInput as exc:
                problems += [InvalidInput(f"[{i}].{e['field']}", e["reason"], exc.code) for e in errors_of(exc)]
                continue
            if (r.person_key, r.id) in seen:
                problems.append(InvalidInput(f"[{i}].id", "appears twice in this request"))
            seen.add((r.person_key, r.id))
            out.append(r)
        if problems:
            error = InvalidInput(problems[0].field, problems[0].reason, problems[0].code)
            error.errors = problems  # type: ignore[attr-defined]
            raise error
        return out


def decode(body: bytes | None, max_depth: int | None = None) -> Any:
    """JSON bytes -> value; ``max_depth`` is ``vetting.max_json_depth`` (``too_deep`` beyond it)."""
    try:
        value = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        raise InvalidInput("body", "is not valid JSON", "bad_json") from None
    if max_depth is not None and too_deep(body or b"", value, max_depth):
        raise InvalidInput("body", f"is nested deeper than limit vetting.max_json_depth ({max_depth})", "too_deep")
    return value


def safe_payload(value: Any) -> Any:
    """A copy of a JSON value with ``id_number`` masked and ID-number-like text scrubbed everywhere."""
    if isinstance(value, dict):  # keys too: an ID number can be typed anywhere
        return {scrub(k): (_masked_id(v) if k == "id_number" else safe_payload(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [safe_payload(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and len(str(value)) >= 15:
        return scrub(str(value))
    return value


def _masked_id(v: Any) -> str:
    try:
        return mask(idnumber.normalise(v))
    except InvalidInput:
        return mask(str(v))


def rejection(kind: str, exc: InvalidInput, *, source: str, where: dict[str, Any], body: bytes | None) -> bytes:
    """The ``vetting.rejected`` record for an invalid ``kind`` (application / record)."""
    rec: dict[str, Any] = {"kind": kind, "source": source, "code": exc.code, "field": exc.field,
                           "reason": exc.reason, "errors": errors_of(exc), **where}
    try:
        value = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        value = None
    if value is None or too_deep(body or b"", value, SAFE_COPY_DEPTH):
        rec["payload_bytes"] = len(body or b"")
    else:
        rec["payload"] = safe_payload(value)
    return orjson.dumps(rec)
