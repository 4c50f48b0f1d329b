"""Every rule, firing and not, at its boundary; the decision; the rule set from settings.

Today is 2026-09-08 (Asia/Shanghai). The default applicant's licence was first
issued on 2015-03-01, so scoring cycles run 1 March to 28/29 February and the
last three (the current one counted) are 2024-03-01 .. 2027-02-28.
"""

from __future__ import annotations

from datetime import date

import pytest

from engine.vetting import article14, local
from engine.vetting.calendar import add_months, cycle_bounds, cycle_index, whole_years
from engine.vetting.models import (
    APPROVED,
    CRIME,
    DANGEROUS_DRIVING,
    DRINK_DRIVING,
    DRUG_USE,
    FAIL,
    POINTS,
    REJECTED,
    REVIEW,
    TAXI_CERTIFICATE_REVOKED,
    TRAFFIC_ACCIDENT_CRIME,
    VIOLATION,
    VIOLENT_CRIME,
    Finding,
    decide,
)
from engine.vetting.rules import Facts, evaluate, fail, rule
from engine.vetting.ruleset import ruleset
from tests.vetting.factories import CFG, application, cfg, facts, record

D = date


def check(r, f: Facts, c=CFG):
    return r.apply(f, c)


# -- calendar ---------------------------------------------------------------------------------------

def test_month_arithmetic_clamps_to_the_months_end():
    assert add_months(D(2020, 2, 29), 36) == D(2023, 2, 28)
    assert add_months(D(2026, 1, 31), 1) == D(2026, 2, 28)
    assert add_months(D(2026, 3, 31), -1) == D(2026, 2, 28)
    assert whole_years(D(1990, 9, 9), D(2026, 9, 8)) == 35 and whole_years(D(1990, 9, 8), D(2026, 9, 8)) == 36


def test_scoring_cycles_run_twelve_months_from_first_issue():
    first = D(2015, 3, 1)
    assert cycle_index(first, D(2015, 2, 28)) == -1
    assert cycle_index(first, D(2016, 2, 29)) == 0 and cycle_index(first, D(2016, 3, 1)) == 1
    assert cycle_bounds(first, 9) == (D(2024, 3, 1), D(2025, 2, 28))


# -- art. 14(1) -------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, fires", [("C1", False), ("C2", False), ("B2", False), ("A1", False), ("C1E", False),
                                        ("D", True), ("C5", True), ("M", True)])
def test_licence_class(cls, fires):
    f = check(article14.licence_class, facts(application(licence_class=cls)))
    assert (f is not None) == fires
    if fires:
        assert f.outcome == FAIL and cls in f.reason and "C1" in f.reason


def test_driving_experience_exactly_three_years_passes():
    assert check(article14.driving_experience, facts(application(licence_first_issued=D(2023, 9, 8)))) is None


def test_driving_experience_one_day_short_fails_with_the_dates():
    f = check(article14.driving_experience, facts(application(licence_first_issued=D(2023, 9, 9))))
    assert f.rule == "art14.driving_experience" and f.outcome == FAIL
    assert "2023-09-09" in f.reason and "2 years 11 months" in f.reason and "2026-09-09" in f.reason


def test_driving_experience_from_a_leap_day():
    app = application(licence_first_issued=D(2020, 2, 29))
    assert check(article14.driving_experience, facts(app, today=D(2023, 2, 28))) is None
    assert check(article14.driving_experience, facts(app, today=D(2023, 2, 27))) is not None


def test_driving_experience_is_configurable():
    app = application(licence_first_issued=D(2023, 9, 8))
    assert check(article14.driving_experience, facts(app), cfg(min_driving_years=5)) is not None


# -- art. 14(2): records with no time limit ---------------------------------------------------------

@pytest.mark.parametrize("r, kind, words", [
    (article14.traffic_accident_crime, TRAFFIC_ACCIDENT_CRIME, "traffic accident"),
    (article14.dangerous_driving, DANGEROUS_DRIVING, "dangerous driving"),
    (article14.drug_use, DRUG_USE, "drug use"),
    (article14.drink_driving, DRINK_DRIVING, "drink-driving"),
])
def test_disqualifying_records_fire_however_old(r, kind, words):
    old = record(kind, D(1995, 6, 1), rid="OLD-1")
    f = check(r, facts(records=[old]))
    assert f == Finding(r.id, FAIL, f.reason, ("OLD-1",))
    assert words in f.reason and "1995-06-01" in f.reason and "no time limit" in f.reason
    others = [record(k, D(2020, 1, 1)) for k in (TRAFFIC_ACCIDENT_CRIME, DANGEROUS_DRIVING, DRUG_USE, DRINK_DRIVING)
              if k != kind]
    assert check(r, facts(records=others)) is None


def test_seed_case_repeated_drug_use_in_2006_cites_both_records():
    recs = [record(DRUG_USE, D(2006, 9, 15), rid="PSB-2"), record(DRUG_USE, D(2006, 3, 2), rid="PSB-1")]
    f = check(article14.drug_use, facts(records=recs))
    assert f.records == ("PSB-1", "PSB-2")  # oldest first
    assert "on 2006-03-02 and 2006-09-15 (records PSB-1, PSB-2)" in f.reason


def _points(day: date, n: int, **kw):
    return record(POINTS, day, points=n, **kw)


def test_twelve_points_in_the_oldest_counted_cycle_fires():
    recs = [_points(D(2024, 3, 1), 6, rid="P1"), _points(D(2025, 2, 28), 6, rid="P2")]
    f = check(article14.points, facts(records=recs))
    assert f.outcome == FAIL and f.records == ("P1", "P2")
    assert "12 points in the cycle 2024-03-01 to 2025-02-28" in f.reason


def test_points_before_the_counted_cycles_or_below_the_limit_do_not_fire():
    assert check(article14.points, facts(records=[_points(D(2023, 3, 1), 6), _points(D(2024, 2, 29), 6)])) is None
    assert check(article14.points, facts(records=[_points(D(2024, 3, 1), 6), _points(D(2025, 3, 1), 6)])) is None
    assert check(article14.points, facts(records=[_points(D(2026, 3, 1), 11)])) is None


def test_points_in_the_current_cycle_count_unless_configured_otherwise():
    recs = [_points(D(2026, 4, 1), 12)]
    assert check(article14.points, facts(records=recs)) is not None
    assert check(article14.points, facts(records=recs), cfg(points_count_current_cycle=False)) is None
    older = [_points(D(2023, 3, 1), 12)]  # cycle 8: counted only when the current cycle is not
    assert check(article14.points, facts(records=older), cfg(points_count_current_cycle=False)) is not None


def test_a_points_record_belongs_to_its_stated_cycle():
    late_report = _points(D(2024, 3, 5), 12, cycle_start=D(2023, 3, 1))  # reported in cycle 9, about cycle 8
    assert check(article14.points, facts(records=[late_report])) is None


# -- art. 14(3) -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, offence", [(VIOLENT_CRIME, "robbery"), (VIOLENT_CRIME, "Intentional injury"),
                                           (CRIME, "intentional-homicide"), (VIOLENT_CRIME, "ARSON")])
def test_violent_crime_on_the_list_fires(kind, offence):
    f = check(article14.violent_crime, facts(records=[record(kind, D(2001, 1, 1), offence=offence, rid="C1")]))
    assert f.outcome == FAIL and f.records == ("C1",) and "violent crime" in f.reason


def test_other_crimes_do_not_fire_and_an_unlisted_violent_crime_needs_review():
    assert check(article14.violent_crime, facts(records=[record(CRIME, D(2001, 1, 1), offence="fraud")])) is None
    f = check(article14.violent_crime, facts(records=[record(VIOLENT_CRIME, D(2001, 1, 1), offence="affray",
                                                            rid="V9")]))
    assert f.outcome == REVIEW and f.records == ("V9",) and "affray" in f.reason and "clerk" in f.reason


def test_the_violent_crime_list_is_a_setting():
    r = [record(CRIME, D(2001, 1, 1), offence="affray")]
    assert check(article14.violent_crime, facts(records=r), cfg(violent_offences="affray,robbery")) is not None


# -- Xiamen -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields", [
    dict(hukou_city="Xiamen"), dict(hukou_city="厦门"), dict(hukou_city="xiamen"),
    dict(hukou_city="Quanzhou", residence_permit_city="Xiamen"),
    dict(hukou_city=None, residence_permit_city="厦门市", residence_permit_until=D(2026, 9, 8)),
    dict(hukou_city=None, residence_permit_city="Xiamen", residence_permit_kind="temporary",
         residence_permit_since=D(2026, 3, 8)),  # exactly 6 months
])
def test_residence_satisfied(fields):
    assert check(local.residence, facts(application(**fields))) is None


@pytest.mark.parametrize("fields, outcome, words", [
    (dict(hukou_city="Quanzhou"), FAIL, "hukou in Quanzhou"),
    (dict(hukou_city=None, residence_permit_city="Fuzhou"), FAIL, "permit for Fuzhou"),
    (dict(hukou_city=None), REVIEW, "No residence facts"),
    (dict(hukou_city=None, residence_permit_city="Xiamen", residence_permit_until=D(2026, 9, 7)), FAIL, "expired"),
    (dict(hukou_city=None, residence_permit_city="Xiamen", residence_permit_kind="temporary",
          residence_permit_since=D(2026, 3, 9)), FAIL, "5 months"),
    (dict(hukou_city=None, residence_permit_city="Xiamen", residence_permit_kind="temporary"), REVIEW,
     "residence_permit_since"),
])
def test_residence_not_satisfied(fields, outcome, words):
    f = check(local.residence, facts(application(**fields)))
    assert f.rule == "xiamen.residence" and f.outcome == outcome and words in f.reason


def test_residence_assumptions_are_settings():
    app = application(hukou_city=None, residence_permit_city="Xiamen", residence_permit_since=D(2026, 6, 1))
    assert check(local.residence, facts(app)) is None
    assert check(local.residence, facts(app), cfg(residence_permit_min_months=6)).outcome == FAIL
    assert check(local.residence, facts(application(hukou_city="Fuzhou")), cfg(city_names="Fuzhou")) is None


def test_plate():
    assert check(local.plate, facts(application(plate=None))) is None
    assert check(local.plate, facts(application(plate="闽D12345"))) is None
    f = check(local.plate, facts(application(plate="闽A12345")))
    assert f.outcome == FAIL and "闽A12345" in f.reason and "闽D" in f.reason


def test_vehicle_age_boundary_and_first_application():
    assert check(local.vehicle_age, facts(application(plate=None))) is None
    assert check(local.vehicle_age, facts(application(plate="闽D1", vehicle_registered=D(2023, 9, 8)))) is None
    f = check(local.vehicle_age, facts(application(plate="闽D1", vehicle_registered=D(2023, 9, 7))))
    assert f.outcome == FAIL and "2023-09-07" in f.reason and "3 years" in f.reason
    admitted_young = application(plate="闽D1", vehicle_registered=D(2020, 1, 1),
                                 vehicle_first_application=D(2022, 6, 1))
    assert check(local.vehicle_age, facts(admitted_young)) is None


def test_vehicle_without_registration_date_needs_review():
    f = check(local.vehicle_age, facts(application(plate="闽D12345")))
    assert f.outcome == REVIEW and "vehicle_registered" in f.reason


# -- optional city rules ----------------------------------------------------------------------------

def test_retirement_age():
    man60 = application(birth_date=D(1966, 9, 8), sex="male")
    assert check(local.retirement_age, facts(man60)).outcome == FAIL
    assert check(local.retirement_age, facts(application(birth_date=D(1966, 9, 9), sex="male"))) is None
    assert check(local.retirement_age, facts(application(birth_date=D(1971, 9, 8), sex="female"))).outcome == FAIL
    assert check(local.retirement_age, facts(application(birth_date=D(1971, 9, 9), sex="female"))) is None
    assert check(local.retirement_age, facts(man60), cfg(retirement_age_male=63)) is None
    assert check(local.retirement_age, facts(application())).outcome == REVIEW


def test_taxi_certificate_revoked_within_the_window():
    inside = record(TAXI_CERTIFICATE_REVOKED, D(2023, 9, 9), rid="T1")
    f = check(local.taxi_certificate, facts(records=[inside]))
    assert f.outcome == FAIL and f.records == ("T1",)
    assert check(local.taxi_certificate, facts(records=[record(TAXI_CERTIFICATE_REVOKED, D(2023, 9, 8))])) is None
    assert check(local.taxi_certificate, facts(records=[inside]), cfg(taxi_revocation_years=2)) is None


def test_violations_in_twelve_months():
    four = [record(VIOLATION, D(2026, m, 1)) for m in (1, 2, 3, 4)]
    assert check(local.violations, facts(records=four + [record(VIOLATION, D(2025, 9, 8))])) is None  # 12 months ago
    f = check(local.violations, facts(records=four + [record(VIOLATION, D(2025, 9, 9))]))
    assert f.outcome == FAIL and len(f.records) == 5 and "5 traffic violations" in f.reason


# -- the engine -------------------------------------------------------------------------------------

def test_decision_reject_beats_review_beats_approve():
    assert decide([]) == APPROVED
    assert decide([Finding("a", REVIEW, "r")]) == REVIEW
    assert decide([Finding("a", REVIEW, "r"), Finding("b", FAIL, "f")]) == REJECTED


def test_default_ruleset_and_switches():
    ids = [r.id for r in ruleset(CFG)]
    assert ids == ["art14.licence_class", "art14.driving_experience", "art14.traffic_accident_crime",
                   "art14.dangerous_driving", "art14.drug_use", "art14.drink_driving", "art14.points",
                   "art14.violent_crime", "xiamen.residence", "xiamen.plate", "xiamen.vehicle_age"]
    every = [r.id for r in ruleset(cfg(rules=dict(retirement_age=True, taxi_certificate=True, violations=True)))]
    assert every[-3:] == ["city.retirement_age", "city.taxi_certificate", "city.violations"]
    national = [r.id for r in ruleset(cfg(rules=dict(residence=False, vehicle=False)))]
    assert all(i.startswith("art14.") for i in national) and len(national) == 8


def test_rule_wording_fills_in_settings():
    texts = {r.id: r.describe(CFG) for r in ruleset(CFG)}
    assert "At least 3 years" in texts["art14.driving_experience"]
    assert "12 points in any of the last 3" in texts["art14.points"]


def test_evaluate_explains_every_rule_that_fired_in_order():
    app = application(licence_first_issued=D(2024, 1, 1), hukou_city=None, plate="闽A00001",
                      vehicle_registered=D(2025, 1, 1))
    recs = [record(DRINK_DRIVING, D(2024, 5, 1), rid="DD1")]
    findings = evaluate(ruleset(CFG), facts(app, recs), CFG)
    assert [(f.rule, f.outcome) for f in findings] == [
        ("art14.driving_experience", FAIL), ("art14.drink_driving", FAIL), ("xiamen.residence", REVIEW),
        ("xiamen.plate", FAIL)]
    assert findings[1].records == ("DD1",)
    assert decide(findings) == REJECTED


def test_a_new_city_rule_is_a_small_function():
    @rule("city.example", "No more than {max_violations} of anything.", uses_records=True)
    def example(f, c):
        return fail("too many records", f.records) if len(f.records) > c.max_violations else None

    assert example.describe(CFG) == "No more than 5 of anything."
    recs = [record(VIOLATION, D(2020, 1, i + 1)) for i in range(6)]
    assert evaluate([example], facts(records=recs), CFG)[0].records == tuple(r.id for r in recs)
    assert evaluate([example], facts(records=recs[:5]), CFG) == []
