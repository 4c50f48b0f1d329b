"""Applications and records from HTTP or Kafka JSON: validated whole, then made into models.

Every field is checked and every problem reported (``InvalidInput.errors``;
the first one is ``field``/``reason``), before anything is stored. Messages
name the field and the rule broken, never the value. The ID number is
replaced by its person key and mask here: nothing after this step sees it.
Free-text fields that contain something shaped like an ID number are
refused, so one cannot slip into storage by another door.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from engine.vetting import idnumber
from engine.vetting.errors import InvalidInput
from engine.vetting.models import KINDS, NEEDS_OFFENCE, POINTS, Application, Record
from engine.vetting.privacy import PersonKeyer, mask
from engine.vetting.settings import VettingSettings

_ID_LIKE = re.compile(r"\d{15}")
_LICENCE = re.compile(r"(?:A[1-3]|B[12]|C[1-6]|D|E|F|M|N|P){1,4}")  # GA/T licence classes, combined as "C1E"
_RECORD_ID = re.compile(r"[\w.:/#-]{1,100}")
PERMIT_KINDS = ("residence", "temporary")


class Fields:
    """Reads typed fields out of a JSON object, collecting every error."""

    def __init__(self, payload: object):
        if not isinstance(payload, dict):
            raise InvalidInput("body", "must be a JSON object", "bad_shape")
        self.d: dict[str, Any] = payload
        self.errors: list[InvalidInput] = []

    def error(self, name: str, reason: str, code: str = "bad_value") -> None:
        self.errors.append(InvalidInput(name, reason, code))

    def _get(self, name: str, required: bool) -> Any:
        v = self.d.get(name)
        if v is None and required:
            self.error(name, "is required", "missing_field")
        return v

    def text(self, name: str, *, required: bool = False, max_len: int = 100) -> str | None:
        v = self._get(name, required)
        if v is None:
            return None
        if not isinstance(v, str):
            self.error(name, "must be a string", "bad_type")
            return None
        v = " ".join(unicodedata.normalize("NFKC", v).split())
        if not v:
            if required:
                self.error(name, "must not be empty", "missing_field")
            return None
        if len(v) > max_len:
            self.error(name, f"must be at most {max_len} characters")
            return None
        if _ID_LIKE.search(v.replace(" ", "")):
            self.error(name, "must not contain an ID number (use the id_number field)")
            return None
        return v

    def day(self, name: str, *, required: bool = False, not_after: date | None = None,
            not_before: tuple[date, str] | None = None) -> date | None:
        v = self._get(name, required)
        if v is None:
            return None
        if not isinstance(v, str):
            self.error(name, "must be an ISO date string YYYY-MM-DD", "bad_type")
            return None
        try:
            d = date.fromisoformat(v.strip())
        except ValueError:
            self.error(name, "must be a real date written YYYY-MM-DD")
            return None
        if not_after is not None and d > not_after:
            self.error(name, f"is in the future (after {not_after})")
            return None
        if not_before is not None and d < not_before[0]:
            self.error(name, f"is before {not_before[1]}")
            return None
        return d

    def integer(self, name: str, *, required: bool = False, lo: int = 0, hi: int = 10**6) -> int | None:
        v = self._get(name, required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
            self.error(name, "must be a whole number", "bad_type")
            return None
        if not lo <= v <= hi:
            self.error(name, f"must be between {lo} and {hi}")
            return None
        return int(v)

    def choice(self, name: str, options: tuple[str, ...], *, required: bool = False) -> str | None:
        v = self._get(name, required)
        if v is None:
            return None
        if not isinstance(v, str):
            self.error(name, "must be a string", "bad_type")
            return None
        v = v.strip().lower()
        if v not in options:
            self.error(name, f"must be one of {', '.join(options)}")
            return None
        return v

    def id_number(self, today: date) -> str | None:
        v = self._get("id_number", True)
        if v is None:
            return None
        try:
            return idnumber.validate(v, today)
        except InvalidInput as exc:
            self.errors.append(exc)
            return None

    def done(self) -> None:
        if self.errors:
            first = self.errors[0]
            exc = InvalidInput(first.field, first.reason, first.code)
            exc.errors = list(self.errors)  # type: ignore[attr-defined]
            raise exc


def errors_of(exc: InvalidInput) -> list[dict[str, str]]:
    """Every problem of an :class:`InvalidInput` as ``[{"field", "reason"}]``."""
    errs = getattr(exc, "errors", None) or [exc]
    return [{"field": e.field, "reason": e.reason} for e in errs]


def normalise_plate(raw: str) -> str:
    return "".join(ch for ch in raw.upper() if ch not in " ·.-")


def parse_application(payload: object, *, keyer: PersonKeyer, cfg: VettingSettings, today: date, now: float,
                      suffix: str, source: str) -> Application:
    """A validated :class:`Application` with id ``{person_key}-{suffix}``, or :class:`InvalidInput`."""
    f = Fields(payload)
    name = f.text("name", required=True)
    n = f.id_number(today)
    born = idnumber.birth_date(n) if n else None
    licence = f.text("licence_class", required=True, max_len=8)
    if licence is not None:
        licence = licence.upper().replace(" ", "")
        if not _LICENCE.fullmatch(licence):
            f.error("licence_class", "must be a licence class code such as C1 or B2")
            licence = None
    issued = f.day("licence_first_issued", required=True, not_after=today,
                   not_before=(born, "the birth date in id_number") if born else None)
    hukou = f.text("hukou_city", max_len=50)
    permit_city = f.text("residence_permit_city", max_len=50)
    permit_kind = f.choice("residence_permit_kind", PERMIT_KINDS) or "residence"
    permit_since = f.day("residence_permit_since", not_after=today)
    permit_until = f.day("residence_permit_until")
    plate = f.text("plate", max_len=12)
    if plate is not None:
        plate = normalise_plate(plate)
        if not (7 <= len(plate) <= 8 and not plate[0].isascii() and plate[1:].isascii() and plate[1:].isalnum()):
            f.error("plate", "must be a Chinese plate such as 闽D12345")
            plate = None
    registered = f.day("vehicle_registered", not_after=today)
    first_app = f.day("vehicle_first_application", not_after=today,
                      not_before=(registered, "vehicle_registered") if registered else None)
    reference = f.text("reference")
    f.done()
    assert n is not None and name is not None and licence is not None and issued is not None
    pk = keyer.key(n)
    age_rule = cfg.rules.retirement_age
    return Application(
        id=f"{pk}-{suffix}", person_key=pk, id_masked=mask(n), name=name, licence_class=licence,
        licence_first_issued=issued, received_at=now, source=source, hukou_city=hukou,
        residence_permit_city=permit_city, residence_permit_kind=permit_kind, residence_permit_since=permit_since,
        residence_permit_until=permit_until, plate=plate, vehicle_registered=registered,
        vehicle_first_application=first_app, reference=reference,
        birth_date=born if age_rule else None, sex=idnumber.sex(n) if age_rule else None)


def parse_record(payload: object, *, keyer: PersonKeyer, today: date) -> Record:
    """A validated :class:`Record`, or :class:`InvalidInput`."""
    f = Fields(payload)
    rid_field = "id" if "id" in f.d or "record_id" not in f.d else "record_id"
    rid = f.text(rid_field, required=True)
    if rid is not None and not _RECORD_ID.fullmatch(rid):
        f.error(rid_field, "must be 1-100 letters, digits or . : / # - _")
        rid = None
    n = f.id_number(today)
    born = idnumber.birth_date(n) if n else None
    kind = f.choice("kind", KINDS, required=True)
    day = f.day("date", required=True, not_after=today,
                not_before=(born, "the birth date in id_number") if born else None)
    offence = f.text("offence", required=kind in NEEDS_OFFENCE)
    points = f.integer("points", required=kind == POINTS, lo=1, hi=100)
    cycle_start = f.day("cycle_start", not_after=today)
    source = f.text("source", max_len=50)
    recorded_at = _epoch(f, "recorded_at")
    f.done()
    assert rid is not None and n is not None and kind is not None and day is not None
    return Record(id=rid, person_key=keyer.key(n), id_masked=mask(n), kind=kind, date=day, offence=offence,
                  points=points if kind == POINTS else None, cycle_start=cycle_start if kind == POINTS else None,
                  source=source, recorded_at=recorded_at)


def _epoch(f: Fields, name: str) -> float | None:
    v = f.d.get(name)
    if v is None:
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    parse: Callable[[str], datetime] = datetime.fromisoformat
    if isinstance(v, str):
        try:
            dt = parse(v.strip())
        except ValueError:
            dt = None
        if dt is not None and dt.tzinfo is not None:
            return dt.timestamp()
    f.error(name, "must be an ISO 8601 date-time with offset, or epoch seconds")
    return None
