"""Article 14(4): the city's own conditions. Xiamen's (2016 rules) are on by default; the rest are
conditions other cities impose, switched on in ``vetting.rules``.
"""

from __future__ import annotations

from engine.vetting.calendar import add_months, add_years, whole_years
from engine.vetting.models import TAXI_CERTIFICATE_REVOKED, VIOLATION
from engine.vetting.rules import Facts, Verdict, dates_of, fail, review, rule, span, split_list
from engine.vetting.settings import VettingSettings

TEMPORARY = "temporary"


@rule("xiamen.residence", "Xiamen hukou, or a valid Xiamen residence permit (held {residence_permit_min_months} "
      "months), or a temporary residence permit held at least {temporary_permit_min_months} months.")
def residence(f: Facts, cfg: VettingSettings) -> Verdict | None:
    a, today = f.application, f.today
    city = split_list(cfg.city_names)
    here = {c.casefold() for c in city}
    if a.hukou_city and a.hukou_city.casefold() in here:
        return None
    if a.residence_permit_city and a.residence_permit_city.casefold() in here:
        temporary = a.residence_permit_kind == TEMPORARY
        what = "temporary residence permit" if temporary else "residence permit"
        if a.residence_permit_until is not None and a.residence_permit_until < today:
            return fail(f"The {city[0]} {what} expired on {a.residence_permit_until}.")
        need = cfg.temporary_permit_min_months if temporary else cfg.residence_permit_min_months
        if need <= 0:
            return None
        if a.residence_permit_since is None:
            return review(f"A {city[0]} {what} must have been held {need} months, and residence_permit_since "
                          f"is not given.")
        if add_months(a.residence_permit_since, need) > today:
            return fail(f"The {city[0]} {what} was issued on {a.residence_permit_since}: held "
                        f"{span(a.residence_permit_since, today)} on {today}, {need} months are required.")
        return None
    if a.hukou_city is None and a.residence_permit_city is None:
        return review(f"No residence facts: give hukou_city, or residence_permit_city (and "
                      f"residence_permit_since) to show {city[0]} residence.")
    held = [f"hukou in {a.hukou_city}" if a.hukou_city else "", f"a permit for {a.residence_permit_city}"
            if a.residence_permit_city else ""]
    return fail(f"Neither a {city[0]} hukou nor a {city[0]} residence permit ({', '.join(h for h in held if h)}).")


@rule("xiamen.plate", "The vehicle carries a local plate ({plate_prefix}).")
def plate(f: Facts, cfg: VettingSettings) -> Verdict | None:
    p = f.application.plate
    if p is not None and not p.startswith(cfg.plate_prefix):
        return fail(f"Plate {p} is not a local plate: {cfg.plate_prefix} is required.")
    return None


@rule("xiamen.vehicle_age", "The vehicle is at most {vehicle_max_age_years} years old at its first application.")
def vehicle_age(f: Facts, cfg: VettingSettings) -> Verdict | None:
    a = f.application
    if a.plate is None and a.vehicle_registered is None:
        return None  # the application names no vehicle
    if a.vehicle_registered is None:
        return review("The application names a vehicle but not its registration date (vehicle_registered), so its "
                      "age cannot be checked.")
    at = a.vehicle_first_application or f.today
    if add_years(a.vehicle_registered, cfg.vehicle_max_age_years) < at:
        return fail(f"The vehicle was registered on {a.vehicle_registered}: {span(a.vehicle_registered, at)} old at "
                    f"its first application on {at}; at most {cfg.vehicle_max_age_years} years are allowed.")
    return None


@rule("city.retirement_age", "Below the retirement age ({retirement_age_male} for men, {retirement_age_female} "
      "for women).")
def retirement_age(f: Facts, cfg: VettingSettings) -> Verdict | None:
    a = f.application
    if a.birth_date is None or a.sex is None:
        return review("The birth date is not known, so the retirement-age rule cannot be checked.")
    limit = cfg.retirement_age_male if a.sex == "male" else cfg.retirement_age_female
    age = whole_years(a.birth_date, f.today)
    if age >= limit:
        return fail(f"Aged {age} on {f.today}: at or above the retirement age of {limit}.")
    return None


@rule("city.taxi_certificate", "No taxi driver's certificate revoked in the last {taxi_revocation_years} years.",
      uses_records=True)
def taxi_certificate(f: Facts, cfg: VettingSettings) -> Verdict | None:
    since = add_years(f.today, -cfg.taxi_revocation_years)
    hits = [r for r in f.of_kind(TAXI_CERTIFICATE_REVOKED) if r.date > since]
    if hits:
        return fail(f"Taxi driver's certificate revoked {dates_of(hits)}, within the last "
                    f"{cfg.taxi_revocation_years} years (since {since}).", hits)
    return None


@rule("city.violations", "Fewer than {max_violations} traffic violations in the last {violations_window_months} "
      "months.", uses_records=True)
def violations(f: Facts, cfg: VettingSettings) -> Verdict | None:
    since = add_months(f.today, -cfg.violations_window_months)
    hits = [r for r in f.of_kind(VIOLATION) if since < r.date <= f.today]
    if len(hits) >= cfg.max_violations:
        return fail(f"{len(hits)} traffic violations since {since} {dates_of(hits)}: fewer than "
                    f"{cfg.max_violations} in {cfg.violations_window_months} months are allowed.", hits)
    return None
