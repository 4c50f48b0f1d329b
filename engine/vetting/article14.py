"""Article 14 of the Interim Measures for online ride-hailing: the national conditions on a driver.

(1) a licence for the vehicle class and >= 3 years' driving experience;
(2) no record of traffic-accident crime, dangerous-driving crime, drug use or
drink-driving (no time limit), and no full 12 points in any of the last 3
scoring cycles; (3) no violent-crime record. (4), the city's conditions, is
in :mod:`engine.vetting.local`.
"""

from __future__ import annotations

import re
from collections import defaultdict

from engine.vetting.calendar import add_years, cycle_bounds, cycle_index
from engine.vetting.models import (
    CRIME,
    DANGEROUS_DRIVING,
    DRINK_DRIVING,
    DRUG_USE,
    POINTS,
    TRAFFIC_ACCIDENT_CRIME,
    VIOLENT_CRIME,
    Record,
)
from engine.vetting.rules import Facts, Rule, Verdict, dates_of, fail, review, rule, span, split_list
from engine.vetting.settings import VettingSettings


@rule("art14.licence_class", "Holds a driving licence of a class that covers the vehicle ({licence_classes}); "
      "art. 14(1).")
def licence_class(f: Facts, cfg: VettingSettings) -> Verdict | None:
    allowed = [c.upper() for c in split_list(cfg.licence_classes)]
    cls = f.application.licence_class
    if not set(re.findall(r"[A-Z]\d?", cls)) & set(allowed):  # "C1E" holds C1 and E
        return fail(f"Licence class {cls} does not cover a ride-hailing car; the accepted classes are "
                    f"{', '.join(allowed)}.")
    return None


@rule("art14.driving_experience", "At least {min_driving_years} years of driving experience; art. 14(1).")
def driving_experience(f: Facts, cfg: VettingSettings) -> Verdict | None:
    issued = f.application.licence_first_issued
    qualifies = add_years(issued, cfg.min_driving_years)
    if qualifies > f.today:
        return fail(f"The licence was first issued on {issued}: {span(issued, f.today)} of driving experience on "
                    f"{f.today}, and {cfg.min_driving_years} years are required (reached on {qualifies}).")
    return None


def _no_record_of(kind: str, rule_id: str, what: str) -> Rule:
    @rule(rule_id, f"No record of {what}, however old; art. 14(2).", uses_records=True)
    def check(f: Facts, cfg: VettingSettings) -> Verdict | None:
        hits = f.of_kind(kind)
        if hits:
            return fail(f"Registered for {what} {dates_of(hits)}. Article 14(2) bars anyone with a record of "
                        f"{what}, with no time limit.", hits)
        return None
    return check


traffic_accident_crime = _no_record_of(TRAFFIC_ACCIDENT_CRIME, "art14.traffic_accident_crime",
                                       "the crime of causing a serious traffic accident")
dangerous_driving = _no_record_of(DANGEROUS_DRIVING, "art14.dangerous_driving", "the crime of dangerous driving")
drug_use = _no_record_of(DRUG_USE, "art14.drug_use", "drug use")
drink_driving = _no_record_of(DRINK_DRIVING, "art14.drink_driving", "drink-driving")


@rule("art14.points", "No full {points_limit} points in any of the last {points_cycles} scoring cycles "
      "(12 months each from the licence's first issue date); art. 14(2).", uses_records=True)
def points(f: Facts, cfg: VettingSettings) -> Verdict | None:
    first = f.application.licence_first_issued
    last = cycle_index(first, f.today) - (0 if cfg.points_count_current_cycle else 1)
    counted = range(max(0, last - cfg.points_cycles + 1), last + 1)
    by_cycle: dict[int, list[Record]] = defaultdict(list)
    for r in f.of_kind(POINTS):
        k = cycle_index(first, r.cycle_start or r.date)
        if k in counted:
            by_cycle[k].append(r)
    full = [(k, sum(r.points or 0 for r in recs), recs) for k, recs in sorted(by_cycle.items())
            if sum(r.points or 0 for r in recs) >= cfg.points_limit]
    if not full:
        return None
    cycles = "; ".join(f"{total} points in the cycle {cycle_bounds(first, k)[0]} to {cycle_bounds(first, k)[1]}"
                       for k, total, _ in full)
    used = [r for _, _, recs in full for r in recs]
    return fail(f"Full score reached: {cycles} ({len(used)} point records). Article 14(2) bars a driver with "
                f"{cfg.points_limit} points in any of the last {cfg.points_cycles} scoring cycles.", used)


def offence_id(offence: str | None) -> str:
    """``"Intentional injury"`` -> ``"intentional_injury"`` (how offences are compared with the setting)."""
    return "_".join((offence or "").strip().lower().replace("-", " ").split())


@rule("art14.violent_crime", "No record of a violent crime (listed in vetting.violent_offences); art. 14(3).",
      uses_records=True)
def violent_crime(f: Facts, cfg: VettingSettings) -> Verdict | None:
    listed = {offence_id(o) for o in split_list(cfg.violent_offences)}
    hits = [r for r in f.of_kind(VIOLENT_CRIME, CRIME) if offence_id(r.offence) in listed]
    if hits:
        offences = ", ".join(sorted({offence_id(r.offence).replace("_", " ") for r in hits}))
        return fail(f"Record of a violent crime ({offences}) {dates_of(hits)}. Article 14(3) bars anyone with a "
                    f"violent-crime record.", hits)
    unclear = [r for r in f.of_kind(VIOLENT_CRIME) if offence_id(r.offence) not in listed]
    if unclear:
        offences = ", ".join(sorted({offence_id(r.offence).replace("_", " ") for r in unclear}))
        return review(f"Recorded as violent crime {dates_of(unclear)}, but the offence ({offences}) is not on the "
                      f"city's list of violent crimes (vetting.violent_offences): a clerk must decide.", unclear)
    return None


RULES = (licence_class, driving_experience, traffic_accident_crime, dangerous_driving, drug_use, drink_driving,
         points, violent_crime)
