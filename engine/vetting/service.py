"""Decisions and monitoring over the two vetting tables, both keyed by person key.

``people``: person key -> ``{"driver_key", "id_number" (masked), "status", "licensed", "suspension",
"applications": {application id: decision}}``; ``records``: person key -> ``{record id: record}``.
The tables are plain mappings here (Faust tables in the worker, dicts in
tests). Methods that only compute (:meth:`Vetting.vet`, :meth:`Vetting.add_record`)
are separate from the ones that write the person (:meth:`Vetting.commit`,
:meth:`Vetting.suspend`), so the agent can put the decision or alert on Kafka
before the state that says it was sent: a crash in between repeats the
output with the same ids instead of losing it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from engine.alerts.models import make_alert, stable_id
from engine.core.clock import Clock, to_iso
from engine.vetting.calendar import local_date, start_of_day
from engine.vetting.models import APPROVED, FAIL, LICENSED, SUSPENDED, Application, Finding, Record, decide
from engine.vetting.rules import Facts, Rule, evaluate
from engine.vetting.ruleset import ruleset
from engine.vetting.settings import VettingSettings

NONE = "none"
FLAGGED = "driver.flagged"


@dataclass(frozen=True)
class Flag:
    """A licensed driver made ineligible (``action`` ``suspended``) or put up for review by a record."""

    person_key: str
    action: str
    alert: dict[str, Any]
    findings: tuple[Finding, ...]


class Vetting:
    def __init__(self, cfg: VettingSettings, tz: ZoneInfo, clock: Clock, people: MutableMapping[str, Any],
                 records: MutableMapping[str, Any], rules: list[Rule] | None = None):
        self.cfg, self.tz, self.clock = cfg, tz, clock
        self.people, self.records = people, records
        self.rules = ruleset(cfg) if rules is None else rules
        self.record_rules = [r for r in self.rules if r.uses_records]

    def today(self) -> date:
        return local_date(self.clock.now(), self.tz)

    # -- applications -------------------------------------------------------------------------------

    def person_records(self, pk: str) -> tuple[Record, ...]:
        return tuple(Record.from_dict(d) for d in (self.records.get(pk) or {}).values())

    def vet(self, app: Application) -> tuple[dict[str, Any], bool]:
        """The decision document of ``app`` and whether it is new (an id seen before is not decided again)."""
        person = self.people.get(app.person_key)
        if person and app.id in person["applications"]:
            return self.application_view(app.person_key, app.id) or {}, False
        now = self.clock.now()
        findings = evaluate(self.rules, Facts(app, self.person_records(app.person_key), self.today()), self.cfg)
        decision = decide(findings)
        doc = {
            "id": app.id, "decision": decision, "status": LICENSED if decision == APPROVED else decision,
            "reasons": [f.to_dict() for f in findings], "rules_checked": [r.id for r in self.rules],
            "id_number": app.id_masked, "driver_key": app.person_key, "name": app.name,
            "received_at": to_iso(app.received_at, self.tz), "decided_at": to_iso(now, self.tz),
            "source": app.source, "application": app.facts(), "suspension": None,
        }
        if app.reference:
            doc["reference"] = app.reference
        return doc, True

    def commit(self, doc: dict[str, Any]) -> None:
        """Keep a new decision; an approval licenses the driver (and lifts an earlier suspension)."""
        pk = doc["driver_key"]
        person = dict(self.people.get(pk) or {"driver_key": pk, "id_number": doc["id_number"], "status": NONE,
                                               "licensed": None, "suspension": None, "applications": {}})
        stored = {k: v for k, v in doc.items() if k not in ("status", "suspension")}
        person["applications"] = {**person["applications"], doc["id"]: stored}
        if doc["decision"] == APPROVED:
            person.update(status=LICENSED, licensed=doc["id"], suspension=None)
        self.people[pk] = person

    def application_view(self, pk: str, app_id: str) -> dict[str, Any] | None:
        """A decision as GET shows it: with the driver's current ``status`` and any ``suspension``."""
        person = self.people.get(pk)
        if not person:
            return None
        doc = person["applications"].get(app_id)
        if not doc:
            return None
        view = dict(doc)
        if doc["decision"] == APPROVED:
            current = person["licensed"] == app_id
            view["status"] = person["status"] if current else "superseded"
            view["suspension"] = person["suspension"] if current else None
        else:
            view["status"], view["suspension"] = doc["decision"], None
        return view

    def driver_view(self, pk: str) -> dict[str, Any] | None:
        person = self.people.get(pk)
        if not person:
            recs = self.records.get(pk)
            return {"driver_key": pk, "status": NONE, "applications": [], "records": len(recs)} if recs else None
        apps = [{"id": d["id"], "decision": d["decision"], "decided_at": d["decided_at"]}
                for d in person["applications"].values()]
        return {"driver_key": pk, "id_number": person["id_number"], "status": person["status"],
                "licensed_application": person["licensed"], "suspension": person["suspension"],
                "applications": apps, "records": len(self.records.get(pk) or {})}

    # -- records and monitoring ---------------------------------------------------------------------

    def add_record(self, rec: Record) -> Flag | None:
        """Store ``rec``; if it makes the licensed driver ineligible (or needs a clerk), the :class:`Flag`."""
        self.records[rec.person_key] = {**(self.records.get(rec.person_key) or {}), rec.id: rec.to_dict()}
        return self.recheck(rec)

    def remove_record(self, pk: str, record_id: str) -> bool:
        """A retraction (tombstone). A suspension stays until a clerk lifts it."""
        recs = dict(self.records.get(pk) or {})
        if recs.pop(record_id, None) is None:
            return False
        self.records[pk] = recs
        return True

    def recheck(self, rec: Record) -> Flag | None:
        person = self.people.get(rec.person_key)
        if not person or person["status"] != LICENSED:
            return None
        doc = person["applications"][person["licensed"]]
        app = Application.from_dict({**doc["application"], "id": doc["id"], "person_key": rec.person_key,
                                     "id_masked": doc["id_number"], "name": doc["name"], "received_at": 0.0})
        findings = evaluate(self.record_rules, Facts(app, self.person_records(rec.person_key), self.today()),
                            self.cfg)
        fails = [f for f in findings if f.outcome == FAIL]
        reviews = [f for f in findings if f.outcome != FAIL and rec.id in f.records]
        if not fails and not reviews:
            return None
        fired = sorted(fails or reviews, key=lambda f: rec.id not in f.records)  # the new record's rule first
        action = SUSPENDED if fails else "review"
        ts = rec.recorded_at if rec.recorded_at is not None else start_of_day(rec.date, self.tz)
        first = fired[0]
        alert = make_alert(
            FLAGGED, "critical" if fails else "warning", alert_id=stable_id(FLAGGED, rec.person_key, rec.id),
            subject=rec.person_key, ts=ts, detected_at=self.clock.now(), tz=self.tz,
            driver_key=rec.person_key, id_number=doc["id_number"], application_id=doc["id"], action=action,
            rule=first.rule, reason=first.reason, records=list(first.records), record_id=rec.id,
            findings=[f.to_dict() for f in fired])
        return Flag(rec.person_key, action, alert, tuple(fired))

    def suspend(self, flag: Flag) -> None:
        """Apply a flag: a failing rule suspends the driver; a review changes nothing but is kept in the alert."""
        if flag.action != SUSPENDED:
            return
        person = dict(self.people[flag.person_key])
        person["status"] = SUSPENDED
        person["suspension"] = {"at": flag.alert["detected_at"], "alert_id": flag.alert["alert_id"],
                                "record_id": flag.alert["record_id"], "reasons": [f.to_dict() for f in flag.findings]}
        self.people[flag.person_key] = person
