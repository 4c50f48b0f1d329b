"""Decisions with their explanation, kept per person; monitoring of licensed drivers (tables as dicts)."""

from __future__ import annotations

from datetime import date

import orjson
import pytest

from engine.vetting.models import DRINK_DRIVING, DRUG_USE, POINTS, VIOLENT_CRIME
from engine.vetting.service import Vetting
from tests.vetting.factories import CFG, CLEAN_ID, KEYER, SEED_ID, TZ, application, clock, record


@pytest.fixture
def svc() -> Vetting:
    return Vetting(CFG, TZ, clock(), people={}, records={})


def decided(svc: Vetting, app) -> dict:
    doc, new = svc.vet(app)
    assert new
    svc.commit(doc)
    return doc


def test_seed_case_repeated_drug_use_in_2006_is_rejected_with_rule_and_records(svc):
    svc.add_record(record(DRUG_USE, date(2006, 3, 2), rid="PSB-2006-0113"))
    svc.add_record(record(DRUG_USE, date(2006, 9, 15), rid="PSB-2006-0542"))
    doc = decided(svc, application())
    assert doc["decision"] == "rejected" and doc["status"] == "rejected"
    assert doc["reasons"] == [{
        "rule": "art14.drug_use", "outcome": "fail", "records": ["PSB-2006-0113", "PSB-2006-0542"],
        "reason": "Registered for drug use on 2006-03-02 and 2006-09-15 (records PSB-2006-0113, PSB-2006-0542). "
                  "Article 14(2) bars anyone with a record of drug use, with no time limit."}]
    assert doc["id_number"] == "3502**********123X" and doc["driver_key"] == KEYER.key(SEED_ID)
    assert "art14.points" in doc["rules_checked"] and len(doc["rules_checked"]) == 11
    assert doc["decided_at"] == "2026-09-08T10:00:00.000+08:00"
    assert SEED_ID not in orjson.dumps(doc).decode()


def test_clean_applicant_is_approved_and_licensed(svc):
    doc = decided(svc, application(CLEAN_ID))
    assert (doc["decision"], doc["status"], doc["reasons"]) == ("approved", "licensed", [])
    view = svc.application_view(doc["driver_key"], doc["id"])
    assert view["status"] == "licensed" and view["suspension"] is None and view["name"] == "Zhang Wei"
    driver = svc.driver_view(doc["driver_key"])
    assert driver["status"] == "licensed" and driver["licensed_application"] == doc["id"]
    assert driver["id_number"] == "1101**********002X"


def test_missing_residence_facts_mean_review(svc):
    doc = decided(svc, application(hukou_city=None))
    assert doc["decision"] == "review" and [r["rule"] for r in doc["reasons"]] == ["xiamen.residence"]


def test_records_of_other_people_do_not_count(svc):
    svc.add_record(record(DRUG_USE, date(2006, 3, 2), id_number=CLEAN_ID))
    assert decided(svc, application(SEED_ID))["decision"] == "approved"


def test_the_same_application_is_decided_once(svc):
    app = application()
    first = decided(svc, app)
    svc.add_record(record(DRUG_USE, date(2006, 3, 2)))  # arrives later: a replay must not change the answer
    again, new = svc.vet(app)
    assert not new and again["decision"] == first["decision"] == "approved"


def test_new_record_suspends_a_licensed_driver_and_raises_a_stable_alert(svc):
    doc = decided(svc, application(CLEAN_ID))
    rec = record(DRINK_DRIVING, date(2026, 9, 7), id_number=CLEAN_ID, rid="DD-77")
    flag = svc.add_record(rec)
    assert flag is not None and flag.action == "suspended"
    a = flag.alert
    assert (a["kind"], a["severity"], a["rule"], a["records"], a["record_id"]) == (
        "driver.flagged", "critical", "art14.drink_driving", ["DD-77"], "DD-77")
    assert a["subject"] == a["driver_key"] == doc["driver_key"] and a["id_number"] == "1101**********002X"
    assert a["application_id"] == doc["id"] and "drink-driving" in a["reason"]
    assert a["ts"] == "2026-09-07T00:00:00.000+08:00" and a["detected_at"] == "2026-09-08T10:00:00.000+08:00"
    assert CLEAN_ID not in orjson.dumps(a).decode()
    assert svc.application_view(doc["driver_key"], doc["id"])["status"] == "licensed"  # not until applied
    svc.suspend(flag)
    view = svc.application_view(doc["driver_key"], doc["id"])
    assert view["decision"] == "approved" and view["status"] == "suspended"
    assert view["suspension"]["alert_id"] == a["alert_id"] and view["suspension"]["record_id"] == "DD-77"
    assert svc.driver_view(doc["driver_key"])["status"] == "suspended"
    # The same record replayed on a fresh worker gives the same alert id.
    other = Vetting(CFG, TZ, clock(), people={}, records={})
    other.commit(doc)
    assert other.add_record(rec).alert["alert_id"] == a["alert_id"]


def test_record_event_time_is_used_when_given(svc):
    decided(svc, application(CLEAN_ID))
    flag = svc.add_record(record(DRUG_USE, date(2026, 9, 7), id_number=CLEAN_ID, recorded_at=1788800000.0))
    assert flag.alert["ts"] == "2026-09-08T00:53:20.000+08:00"


def test_no_flag_for_harmless_records_unlicensed_people_or_the_already_suspended(svc):
    decided(svc, application(CLEAN_ID))
    assert svc.add_record(record(POINTS, date(2026, 9, 1), id_number=CLEAN_ID, points=3)) is None
    assert svc.add_record(record(DRUG_USE, date(2020, 1, 1), id_number=SEED_ID)) is None  # never applied
    svc.suspend(svc.add_record(record(DRUG_USE, date(2026, 9, 1), id_number=CLEAN_ID)))
    assert svc.add_record(record(DRINK_DRIVING, date(2026, 9, 2), id_number=CLEAN_ID)) is None


def test_points_reaching_the_limit_suspend(svc):
    decided(svc, application(CLEAN_ID))
    assert svc.add_record(record(POINTS, date(2026, 5, 1), id_number=CLEAN_ID, points=9)) is None
    flag = svc.add_record(record(POINTS, date(2026, 9, 1), id_number=CLEAN_ID, points=3))
    assert flag.action == "suspended" and flag.alert["rule"] == "art14.points" and len(flag.alert["records"]) == 2


def test_an_ambiguous_record_asks_for_review_without_suspending(svc):
    doc = decided(svc, application(CLEAN_ID))
    flag = svc.add_record(record(VIOLENT_CRIME, date(2026, 9, 1), id_number=CLEAN_ID, offence="affray"))
    assert flag.action == "review" and flag.alert["severity"] == "warning"
    svc.suspend(flag)
    assert svc.driver_view(doc["driver_key"])["status"] == "licensed"


def test_a_new_approval_replaces_a_suspended_licence(svc):
    first = decided(svc, application(CLEAN_ID))
    rec = record(DRUG_USE, date(2026, 9, 1), id_number=CLEAN_ID, rid="X1")
    svc.suspend(svc.add_record(rec))
    assert svc.remove_record(first["driver_key"], "X1") and not svc.remove_record(first["driver_key"], "X1")
    assert svc.driver_view(first["driver_key"])["status"] == "suspended"  # a retraction does not reinstate
    second = decided(svc, application(CLEAN_ID, suffix="000000000002"))
    assert second["decision"] == "approved"
    assert svc.application_view(first["driver_key"], first["id"])["status"] == "superseded"
    assert svc.driver_view(first["driver_key"])["status"] == "licensed"


def test_driver_view_of_a_person_known_only_by_records(svc):
    svc.add_record(record(DRUG_USE, date(2006, 1, 1)))
    assert svc.driver_view(KEYER.key(SEED_ID)) == {"driver_key": KEYER.key(SEED_ID), "status": "none",
                                                   "applications": [], "records": 1}
    assert svc.driver_view("0" * 64) is None
