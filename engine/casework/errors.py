"""A report that cannot be accepted, with every problem found (field, reason, machine code)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.core.errors import CitywatchError


@dataclass(frozen=True)
class Problem:
    field: str
    reason: str
    code: str  # low-cardinality label for citywatch_reports_rejected_total{reason}


class InvalidReport(CitywatchError):
    """Raised with every problem of a report; ``code``/``field``/``reason`` are the first one's."""

    def __init__(self, problems: list[Problem]):
        if not problems:
            raise ValueError("InvalidReport needs at least one problem")
        self.problems = list(problems)
        first = self.problems[0]
        self.field, self.reason, self.code = first.field, first.reason, first.code
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in self.problems))

    @classmethod
    def one(cls, field: str, reason: str, code: str) -> InvalidReport:
        return cls([Problem(field, reason, code)])

    def open311(self, status: int = 400) -> list[dict[str, Any]]:
        """The GeoReport v2 error body: one ``{code, description}`` per problem."""
        return [{"code": status, "description": f"{p.field}: {p.reason}"} for p in self.problems]
