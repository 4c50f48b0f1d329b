"""The rule list: Article 14 always, then the city rules switched on in ``vetting.rules``.

Kept apart from the rule engine (:mod:`engine.vetting.rules`) so the rules
import the engine and the engine imports no rule.
"""

from __future__ import annotations

from engine.vetting import article14, local
from engine.vetting.rules import Rule
from engine.vetting.settings import VettingSettings


def ruleset(cfg: VettingSettings) -> list[Rule]:
    """Article 14 (always) and the city rules switched on in ``vetting.rules``, in the law's order."""
    rules = list(article14.RULES)
    on = cfg.rules
    if on.residence:
        rules.append(local.residence)
    if on.vehicle:
        rules += [local.plate, local.vehicle_age]
    if on.retirement_age:
        rules.append(local.retirement_age)
    if on.taxi_certificate:
        rules.append(local.taxi_certificate)
    if on.violations:
        rules.append(local.violations)
    return rules
