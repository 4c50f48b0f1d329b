"""Builders for vetting tests: applications, records and facts on a fixed day (2026-09-08, Xiamen)."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from engine.core.clock import FakeClock
from engine.vetting.models import Application, Record
from engine.vetting.privacy import PersonKeyer, mask
from engine.vetting.rules import Facts
from engine.vetting.settings import VettingSettings

TZ = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 9, 8)  # FakeClock's default start, 10:00 in Xiamen
SEED_ID = "35020319900101123X"  # a valid Xiamen (Siming district) example
CLEAN_ID = "11010519491231002X"
OLD_ID = "440524188001010014"
KEYER = PersonKeyer("test-secret")
CFG = VettingSettings()
VALID_IDS = (SEED_ID, CLEAN_ID, OLD_ID)


def clock() -> FakeClock:
    return FakeClock()


def cfg(**changes: Any) -> VettingSettings:
    rules = changes.pop("rules", None)
    c = dataclasses.replace(CFG, **changes)
    return dataclasses.replace(c, rules=dataclasses.replace(c.rules, **rules)) if rules else c


def application(id_number: str = SEED_ID, suffix: str = "000000000001", keyer: PersonKeyer = KEYER,
                **fields: Any) -> Application:
    pk = keyer.key(id_number)
    base: dict[str, Any] = dict(id=f"{pk}-{suffix}", person_key=pk, id_masked=mask(id_number), name="Zhang Wei",
                                licence_class="C1", licence_first_issued=date(2015, 3, 1),
                                received_at=FakeClock().now(), hukou_city="Xiamen")
    base.update(fields)
    return Application(**base)


_n = iter(range(1, 10**6))


def record(kind: str, day: date, id_number: str = SEED_ID, rid: str | None = None, keyer: PersonKeyer = KEYER,
           **fields: Any) -> Record:
    return Record(id=rid or f"R{next(_n)}", person_key=keyer.key(id_number), id_masked=mask(id_number), kind=kind,
                  date=day, **fields)


def facts(app: Application | None = None, records: tuple[Record, ...] | list[Record] = (),
          today: date = TODAY) -> Facts:
    return Facts(app or application(), tuple(records), today)


def application_json(id_number: str = SEED_ID, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Zhang Wei", "id_number": id_number, "licence_class": "C1",
                            "licence_first_issued": "2015-03-01", "hukou_city": "Xiamen"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}
