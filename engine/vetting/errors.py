"""Vetting's exceptions (children of :class:`engine.core.errors.CitywatchError`).

Messages never contain the input value: an ID number typed into a date field
must not be echoed back into a response or a log.
"""

from __future__ import annotations

from engine.core.errors import CitywatchError


class InvalidInput(CitywatchError):
    """An application or record is invalid; ``field`` names it, ``code`` is a short machine label."""

    def __init__(self, field: str, reason: str, code: str = "bad_value"):
        self.field, self.reason, self.code = field, reason, code
        super().__init__(f"{field}: {reason}")


class IdNumberError(InvalidInput):
    """A resident ID number is not valid under GB 11643-1999."""

    def __init__(self, reason: str, field: str = "id_number"):
        super().__init__(field, reason, "bad_id_number")
