"""The rule engine: one small function per rule, each with an id, the law's wording and a reason.

A rule looks at the :class:`Facts` of one application (the application, the
person's records, today's date in the city) and returns ``None`` when it
does not fire, :func:`fail` when it rejects and :func:`review` when the
information it needs is missing or ambiguous. Adding a city's rule::

    @rule("city.example", "What the city's rule says, with {setting_name} placeholders.")
    def example(f: Facts, cfg: VettingSettings) -> Verdict | None:
        if ...:
            return fail("Plain-language reason naming the dates and facts.", records)
        return None

then list it in :func:`engine.vetting.ruleset.ruleset` behind a switch in ``vetting.rules`` and test
both outcomes. Rules over records say ``uses_records=True``: those are the
ones re-checked for licensed drivers whenever a new record arrives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from engine.vetting.calendar import whole_months
from engine.vetting.models import FAIL, REVIEW, Application, Finding, Record
from engine.vetting.settings import VettingSettings


@dataclass(frozen=True)
class Facts:
    application: Application
    records: tuple[Record, ...]
    today: date

    def of_kind(self, *kinds: str) -> list[Record]:
        """The person's records of ``kinds``, oldest first."""
        return sorted((r for r in self.records if r.kind in kinds), key=lambda r: (r.date, r.id))


@dataclass(frozen=True)
class Verdict:
    outcome: str
    reason: str
    records: tuple[str, ...] = ()


def fail(reason: str, records: Iterable[Record] = ()) -> Verdict:
    return Verdict(FAIL, reason, tuple(r.id for r in records))


def review(reason: str, records: Iterable[Record] = ()) -> Verdict:
    return Verdict(REVIEW, reason, tuple(r.id for r in records))


Check = Callable[[Facts, VettingSettings], "Verdict | None"]


@dataclass(frozen=True)
class Rule:
    id: str
    text: str  # the condition as the law or city rule states it; {placeholders} name settings
    check: Check
    uses_records: bool = False

    def describe(self, cfg: VettingSettings) -> str:
        return self.text.format(**dataclasses.asdict(cfg))

    def apply(self, facts: Facts, cfg: VettingSettings) -> Finding | None:
        v = self.check(facts, cfg)
        return None if v is None else Finding(self.id, v.outcome, v.reason, v.records)


def rule(rule_id: str, text: str, *, uses_records: bool = False) -> Callable[[Check], Rule]:
    """Decorator: make a check function into a :class:`Rule`."""
    def wrap(check: Check) -> Rule:
        return Rule(rule_id, text, check, uses_records)
    return wrap


def evaluate(rules: Sequence[Rule], facts: Facts, cfg: VettingSettings) -> list[Finding]:
    """The findings of every rule that fires, in rule order."""
    return [f for f in (r.apply(facts, cfg) for r in rules) if f is not None]


def split_list(text: str) -> list[str]:
    """A comma-separated setting as a list of trimmed, non-empty items."""
    return [s.strip() for s in text.split(",") if s.strip()]


def dates_of(records: Sequence[Record]) -> str:
    """``on 2006-03-02 and 2006-09-15 (records R1, R2)``."""
    days = sorted({r.date.isoformat() for r in records})
    when = days[0] if len(days) == 1 else ", ".join(days[:-1]) + " and " + days[-1]
    ids = ", ".join(r.id for r in records)
    return f"on {when} ({'record' if len(records) == 1 else 'records'} {ids})"


def span(start: date, end: date) -> str:
    """``2 years 6 months`` between two dates."""
    m = whole_months(start, end)
    years, months = divmod(max(m, 0), 12)
    parts = [f"{years} year{'s' if years != 1 else ''}"] if years else []
    if months or not years:
        parts.append(f"{months} month{'s' if months != 1 else ''}")
    return " ".join(parts)
