"""Applicants and record feeds for demos and tests: valid ID numbers, realistic mixes of histories.

Each :class:`Case` is an application body, the records to feed first, and the
decision the rules should reach. ``run()`` only produces: it posts the records
and the application to a worker and reports what came back::

    python -m simulators.vetting --url http://127.0.0.1:6066 --applicants 20

It sends an API key with the ``admin`` role (records and applications):
``--api-key``, else ``CITYWATCH_API_KEY``, else the first admin key in the settings.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from engine.vetting.calendar import add_years, cycle_bounds, cycle_index
from engine.vetting.idnumber import compose
from engine.vetting.privacy import mask

XIAMEN_AREAS = ("350203", "350205", "350206", "350211", "350212", "350213")
OTHER_AREAS = ("350102", "350503", "110105", "440304", "360102")
SURNAMES = ("Chen", "Lin", "Huang", "Zhang", "Li", "Wang", "Wu", "Liu", "Cai", "Yang", "Zheng", "Xu")
GIVEN = ("Wei", "Fang", "Jianguo", "Xiaomei", "Jun", "Lei", "Ying", "Hui", "Qiang", "Min", "Tao", "Na")
# (profile, weight, expected decision)
PROFILES = (("clean", 50, "approved"), ("old_points", 6, "approved"), ("drug_use", 8, "rejected"),
            ("drink_driving", 7, "rejected"), ("dangerous_driving", 3, "rejected"), ("full_points", 6, "rejected"),
            ("violent_crime", 5, "rejected"), ("new_licence", 6, "rejected"), ("non_local_plate", 4, "rejected"),
            ("old_vehicle", 3, "rejected"), ("no_residence", 2, "review"))


@dataclass(frozen=True)
class Case:
    profile: str
    expected: str
    application: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)


class ApplicantSimulator:
    def __init__(self, today: date, seed: int = 7):
        self.today, self.rng = today, random.Random(seed)
        self._record_no = 0

    def cases(self, n: int) -> Iterator[Case]:
        names, weights = [p[0] for p in PROFILES], [p[1] for p in PROFILES]
        expected = {p[0]: p[2] for p in PROFILES}
        for _ in range(n):
            profile = self.rng.choices(names, weights)[0]
            yield self.case(profile, expected[profile])

    def case(self, profile: str, expected: str) -> Case:
        r, today = self.rng, self.today
        born = date(r.randint(1968, 1998), r.randint(1, 12), r.randint(1, 28))
        local = r.random() < 0.6
        n = compose(r.choice(XIAMEN_AREAS if local else OTHER_AREAS), born, r.randint(0, 999))
        first = add_years(born, r.randint(19, 25))
        if first > today - timedelta(days=4 * 366) or profile == "new_licence":
            first = today - timedelta(days=r.randint(200, 1000)) if profile == "new_licence" else \
                today - timedelta(days=4 * 366 + r.randint(0, 400))
        app: dict[str, Any] = {"name": f"{r.choice(SURNAMES)} {r.choice(GIVEN)}", "id_number": n,
                               "licence_class": r.choice(("C1", "C1", "C2", "B2", "A1")),
                               "licence_first_issued": first.isoformat(),
                               "plate": f"闽D{r.choice('ABCDEFGH')}{r.randint(10000, 99999)}",
                               "vehicle_registered": (today - timedelta(days=r.randint(30, 900))).isoformat()}
        if local:
            app["hukou_city"] = "Xiamen"
        else:
            app.update(hukou_city="Quanzhou", residence_permit_city="Xiamen",
                       residence_permit_since=(today - timedelta(days=r.randint(30, 2000))).isoformat())
        recs: list[dict[str, Any]] = []
        if profile == "no_residence":
            for key in ("hukou_city", "residence_permit_city", "residence_permit_since"):
                app.pop(key, None)
        elif profile == "non_local_plate":
            app["plate"] = f"闽A{r.randint(10000, 99999)}"
        elif profile == "old_vehicle":
            app["vehicle_registered"] = (today - timedelta(days=r.randint(1200, 2500))).isoformat()
        elif profile in ("drug_use", "drink_driving", "dangerous_driving"):
            for _ in range(r.randint(1, 3)):
                recs.append(self._record(n, profile, self._day_after(add_years(born, 18))))
        elif profile == "violent_crime":
            recs.append(self._record(n, "violent_crime", self._day_after(add_years(born, 18)),
                                     offence=r.choice(("robbery", "intentional_injury", "kidnapping"))))
        elif profile in ("full_points", "old_points"):
            current = cycle_index(first, today)
            k = current - r.randint(0, 2) if profile == "full_points" else current - r.randint(4, 6)
            start, end = cycle_bounds(first, max(k, 0))
            end = min(end, today)
            for pts in (6, 6) if r.random() < 0.5 else (3, 9):
                recs.append(self._record(n, "points", self._day_between(start, end), points=pts))
        if profile in ("clean", "old_points") and r.random() < 0.4:  # a few points, never 12 in a cycle
            recs.append(self._record(n, "points", self._day_between(first, today), points=r.choice((1, 2, 3, 6))))
        return Case(profile, expected, app, recs)

    def _record(self, n: str, kind: str, day: date, **extra: Any) -> dict[str, Any]:
        self._record_no += 1
        return {"id": f"SIM-{day.year}-{self._record_no:06d}", "id_number": n, "kind": kind,
                "date": day.isoformat(), "source": "simulator", **extra}

    def _day_after(self, start: date) -> date:
        return self._day_between(start, self.today)

    def _day_between(self, start: date, end: date) -> date:
        return start + timedelta(days=self.rng.randint(0, max(0, (end - start).days)))


def run(url: str, n: int, seed: int = 7, today: date | None = None,
        api_key: str | None = None) -> Counter[tuple[str, str]]:
    """Post ``n`` cases to the worker at ``url``; counts of (expected, decided). Prints one masked line each."""
    sim = ApplicantSimulator(today or date.today(), seed)
    tally: Counter[tuple[str, str]] = Counter()
    for case in sim.cases(n):
        if case.records:
            _post(f"{url}/api/v1/records", case.records, api_key)
        status, doc = _post(f"{url}/api/v1/vetting/applications", case.application, api_key)
        got = doc.get("decision", f"http {status}")
        tally[(case.expected, got)] += 1
        print(f"{got:9} {case.application['name']:16} {mask(case.application['id_number'])}  ({case.profile})")
    return tally


def _post(url: str, body: object, api_key: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    req = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False).encode(), method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def default_api_key() -> str | None:
    """``CITYWATCH_API_KEY``, else the first ``admin`` key of the settings."""
    if os.environ.get("CITYWATCH_API_KEY"):
        return os.environ["CITYWATCH_API_KEY"]
    from engine.settings import load_settings

    return next((k.api_key for k in load_settings().web.api_keys.values() if k.role == "admin"), None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Post simulated ride-hailing applicants and their records")
    p.add_argument("--url", default="http://127.0.0.1:6066", help="a worker's web address")
    p.add_argument("--applicants", type=int, default=20)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--api-key", default=None, help="prefer CITYWATCH_API_KEY (a key on the command line shows in ps)")
    args = p.parse_args(argv)
    tally = run(args.url.rstrip("/"), args.applicants, args.seed, api_key=args.api_key or default_api_key())
    wrong = sum(c for (want, got), c in tally.items() if want != got)
    print(f"{sum(tally.values())} applicants, {wrong} decided otherwise than the simulator expected")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
