"""Applications and records from JSON: every field checked, errors named, ID numbers never echoed."""

from __future__ import annotations

from datetime import date

import orjson
import pytest

from engine.vetting.errors import InvalidInput
from engine.vetting.intake import Intake, rejection, safe_payload
from engine.vetting.models import DRUG_USE, POINTS
from engine.vetting.validation import errors_of, parse_application, parse_record
from tests.vetting.factories import CFG, CLEAN_ID, KEYER, SEED_ID, TODAY, TZ, application_json, cfg, clock


def parse(body, c=CFG):
    return parse_application(body, keyer=KEYER, cfg=c, today=TODAY, now=0.0, suffix="abcdef012345", source="http")


def errors(body, parser=parse):
    with pytest.raises(InvalidInput) as e:
        parser(body)
    return {x["field"]: x["reason"] for x in errors_of(e.value)}, e.value


def test_a_full_application_becomes_a_model_without_the_id_number():
    a = parse(application_json(id_number=" 35020319900101123x ", licence_class="c1", plate="闽D 12345",
                               vehicle_registered="2025-01-02", residence_permit_city="Xiamen",
                               residence_permit_kind="Temporary", residence_permit_since="2025-01-01",
                               reference="platform-42", unknown_field="dropped"))
    assert a.person_key == KEYER.key(SEED_ID) and a.id == f"{a.person_key}-abcdef012345"
    assert a.id_masked == "3502**********123X" and a.licence_class == "C1" and a.plate == "闽D12345"
    assert a.residence_permit_kind == "temporary" and a.vehicle_registered == date(2025, 1, 2)
    assert a.birth_date is None and a.sex is None  # only carried for the retirement-age rule
    assert SEED_ID not in orjson.dumps(a.to_dict()).decode()


def test_birth_date_is_carried_only_when_the_age_rule_is_on():
    a = parse(application_json(), cfg(rules=dict(retirement_age=True)))
    assert a.birth_date == date(1990, 1, 1) and a.sex == "male"
    assert "birth_date" not in a.facts()


@pytest.mark.parametrize("body, field, reason", [
    (application_json(name=None), "name", "is required"),
    (application_json(name="  "), "name", "must not be empty"),
    (application_json(name=7), "name", "must be a string"),
    (application_json(id_number=None), "id_number", "is required"),
    (application_json(id_number="340524198001010013"), "id_number", "check character"),
    (application_json(id_number="35020319900230123X"), "id_number", "not a real date"),
    (application_json(id_number=35020319900101123), "id_number", "must be a string"),
    (application_json(licence_class="car"), "licence_class", "licence class code"),
    (application_json(licence_first_issued="01/02/2015"), "licence_first_issued", "YYYY-MM-DD"),
    (application_json(licence_first_issued=20150101), "licence_first_issued", "ISO date string"),
    (application_json(licence_first_issued="2026-09-09"), "licence_first_issued", "in the future"),
    (application_json(licence_first_issued="1989-12-31"), "licence_first_issued", "before the birth date"),
    (application_json(residence_permit_kind="visa"), "residence_permit_kind", "must be one of"),
    (application_json(plate="ABC"), "plate", "Chinese plate"),
    (application_json(vehicle_registered="2025-01-01", vehicle_first_application="2024-12-31"),
     "vehicle_first_application", "before vehicle_registered"),
    (application_json(reference=f"ref {CLEAN_ID}"), "reference", "must not contain an ID number"),
    (application_json(name=f"Zhang {SEED_ID}"), "name", "must not contain an ID number"),
])
def test_each_bad_field_is_named(body, field, reason):
    found, exc = errors(body)
    assert reason in found[field]
    assert SEED_ID not in str(found) and CLEAN_ID not in str(found) and "340524198001010013" not in str(found)


def test_every_problem_is_reported_first_one_on_the_exception():
    found, exc = errors({"id_number": "123", "licence_class": 5})
    assert set(found) == {"name", "id_number", "licence_class", "licence_first_issued"}
    assert exc.field == "name" and exc.code == "missing_field"


@pytest.mark.parametrize("body", [[], "text", 5, None])
def test_a_body_that_is_not_an_object(body):
    found, exc = errors(body)
    assert found == {"body": "must be a JSON object"} and exc.code == "bad_shape"


def rec(body):
    return parse_record(body, keyer=KEYER, today=TODAY)


def test_records_are_keyed_by_hmac_and_masked():
    r = rec({"id": "PSB-2006-1", "id_number": SEED_ID.lower(), "kind": "drug_use", "date": "2006-03-02",
             "source": "Xiamen PSB", "recorded_at": "2026-09-08T09:00:00+08:00", "name": "not kept"})
    assert (r.id, r.kind, r.date, r.person_key) == ("PSB-2006-1", DRUG_USE, date(2006, 3, 2), KEYER.key(SEED_ID))
    assert r.id_masked == "3502**********123X" and r.recorded_at == 1788829200.0
    assert SEED_ID not in orjson.dumps(r.to_dict()).decode() and "name" not in r.to_dict()
    p = rec({"record_id": "P-1", "id_number": SEED_ID, "kind": "points", "date": "2025-01-01", "points": 6,
             "cycle_start": "2024-03-01"})
    assert (p.id, p.kind, p.points, p.cycle_start) == ("P-1", POINTS, 6, date(2024, 3, 1))


@pytest.mark.parametrize("body, field, reason", [
    ({"id_number": SEED_ID, "kind": "drug_use", "date": "2006-01-01"}, "id", "is required"),
    ({"id": "a b", "id_number": SEED_ID, "kind": "drug_use", "date": "2006-01-01"}, "id", "letters, digits"),
    ({"id": f"X{SEED_ID}", "id_number": SEED_ID, "kind": "drug_use", "date": "2006-01-01"}, "id", "ID number"),
    ({"id": "1", "id_number": SEED_ID, "kind": "parking", "date": "2006-01-01"}, "kind", "must be one of"),
    ({"id": "1", "id_number": SEED_ID, "kind": "drug_use"}, "date", "is required"),
    ({"id": "1", "id_number": SEED_ID, "kind": "drug_use", "date": "2027-01-01"}, "date", "in the future"),
    ({"id": "1", "id_number": SEED_ID, "kind": "drug_use", "date": "1989-01-01"}, "date", "before the birth date"),
    ({"id": "1", "id_number": SEED_ID, "kind": "violent_crime", "date": "2006-01-01"}, "offence", "is required"),
    ({"id": "1", "id_number": SEED_ID, "kind": "points", "date": "2006-01-01"}, "points", "is required"),
    ({"id": "1", "id_number": SEED_ID, "kind": "points", "date": "2006-01-01", "points": 2.5}, "points", "whole"),
    ({"id": "1", "id_number": SEED_ID, "kind": "points", "date": "2006-01-01", "points": True}, "points", "whole"),
    ({"id": "1", "id_number": SEED_ID, "kind": "points", "date": "2006-01-01", "points": 0}, "points", "between"),
    ({"id": "1", "id_number": SEED_ID, "kind": "drug_use", "date": "2006-01-01", "recorded_at": "2026-09-08"},
     "recorded_at", "with offset"),
    ({"id": "1", "id_number": "350203199001011230", "kind": "drug_use", "date": "2006-01-01"}, "id_number",
     "check character"),
])
def test_bad_records_name_the_field(body, field, reason):
    found, _ = errors(body, rec)
    assert reason in found[field]


def test_record_batches_are_all_or_nothing_with_indexed_fields():
    intake = Intake(KEYER, CFG, TZ, clock())
    good = {"id": "A", "id_number": SEED_ID, "kind": "drug_use", "date": "2006-01-01"}
    assert len(intake.records(orjson.dumps([good, {**good, "id": "B"}]))) == 2
    with pytest.raises(InvalidInput) as e:
        intake.records(orjson.dumps([good, {**good, "id": "B", "id_number": "340524198001010013"}, good]))
    fields = [x["field"] for x in errors_of(e.value)]
    assert fields == ["[1].id_number", "[2].id"]  # and the repeated record id
    for body, reason in [(b"{", "not valid JSON"), (b"[]", "non-empty array"), (b"7", "record object")]:
        with pytest.raises(InvalidInput, match=reason):
            intake.records(body)


def test_rejection_records_mask_id_numbers_everywhere():
    body = orjson.dumps({"id_number": SEED_ID.lower(), "note": f"see {CLEAN_ID}", "nested": [{"x": OLD}],
                         "n": 440524188001010014})
    exc = InvalidInput("date", "is required", "missing_field")
    out = rejection("record", exc, source="kafka", where={"topic": "t", "partition": 0, "offset": 5}, body=body)
    text = out.decode()
    for n in (SEED_ID, SEED_ID.lower(), CLEAN_ID, OLD):
        assert n not in text
    doc = orjson.loads(out)
    assert doc["payload"]["id_number"] == "3502**********123X" and doc["field"] == "date" and doc["offset"] == 5
    raw = rejection("record", InvalidInput("body", "is not valid JSON", "bad_json"), source="kafka", where={},
                    body=f"{{{SEED_ID}".encode())
    assert SEED_ID not in raw.decode() and orjson.loads(raw)["payload_bytes"] == 19


OLD = "440524188001010014"


def test_safe_payload_leaves_other_values_alone():
    assert safe_payload({"a": 1, "b": [True, None, "x"], "id_number": 42}) == {"a": 1, "b": [True, None, "x"],
                                                                              "id_number": "**"}
