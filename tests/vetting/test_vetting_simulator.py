"""The applicant simulator: valid ID numbers, and every profile decided as the simulator expects."""

from __future__ import annotations

from collections import Counter

import orjson

from engine.vetting import idnumber
from engine.vetting.intake import Intake
from engine.vetting.service import Vetting
from simulators.vetting import PROFILES, ApplicantSimulator
from tests.vetting.factories import CFG, KEYER, TODAY, TZ, clock


def test_simulated_applicants_are_decided_as_expected():
    sim = ApplicantSimulator(TODAY, seed=11)
    intake = Intake(KEYER, CFG, TZ, clock())
    seen: Counter[str] = Counter()
    for i, case in enumerate(sim.cases(300)):
        svc = Vetting(CFG, TZ, clock(), people={}, records={})
        assert idnumber.is_valid(case.application["id_number"], TODAY)
        for rec in intake.records(orjson.dumps(case.records)) if case.records else []:
            svc.add_record(rec)
        app = intake.application(orjson.dumps(case.application), suffix=f"{i:012x}", source="simulator")
        doc, _ = svc.vet(app)
        assert doc["decision"] == case.expected, (case.profile, doc["reasons"])
        seen[case.profile] += 1
    assert set(seen) == {p[0] for p in PROFILES}  # every profile came up


def test_the_same_seed_gives_the_same_applicants():
    a = [c.application for c in ApplicantSimulator(TODAY, seed=3).cases(20)]
    b = [c.application for c in ApplicantSimulator(TODAY, seed=3).cases(20)]
    assert a == b
