"""Resident ID numbers (GB 11643-1999): normalise, validate, and read the birth date and sex.

Eighteen characters: a 6-digit area code, the birth date ``YYYYMMDD``, a
3-digit sequence (odd = male) and a check character::

    S = sum(a_i * W_i) for i = 1..17, W = 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
    check = "10X98765432"[S % 11]

>>> normalise(" 35020319900101123x ")
'35020319900101123X'
>>> birth_date("35020319900101123X")
datetime.date(1990, 1, 1)
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from engine.vetting.errors import IdNumberError

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
EARLIEST_BIRTH_YEAR = 1800  # the standard's century codes start at 18xx
_SHAPE = re.compile(r"[1-9]\d{16}[\dX]")


def check_char(first17: str) -> str:
    """The check character of the first 17 digits."""
    return CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, WEIGHTS)) % 11]


def compose(area: str, born: date, sequence: int) -> str:
    """A valid ID number from its parts (for simulators and tests).

    >>> compose("350203", date(1990, 1, 1), 123)
    '35020319900101123X'
    """
    first17 = f"{area}{born:%Y%m%d}{sequence:03d}"
    return first17 + check_char(first17)


def normalise(raw: object) -> str:
    """Full-width characters to ASCII, whitespace removed, ``x`` upper-cased (no validation)."""
    if not isinstance(raw, str):
        raise IdNumberError("must be a string of 18 characters")
    text = unicodedata.normalize("NFKC", raw)
    return "".join(text.split()).upper()


def validate(raw: object, today: date) -> str:
    """The normalised ID number, or :class:`IdNumberError` saying what is wrong (never echoing it)."""
    n = normalise(raw)
    if len(n) != 18:
        raise IdNumberError(f"must be 18 characters (GB 11643-1999), got {len(n)}")
    if not _SHAPE.fullmatch(n):
        raise IdNumberError("must be 17 digits (not starting with 0) followed by a digit or X")
    born = _birth_date_or_none(n)
    if born is None:
        raise IdNumberError("birth date (characters 7-14) is not a real date")
    if born.year < EARLIEST_BIRTH_YEAR:
        raise IdNumberError(f"birth year before {EARLIEST_BIRTH_YEAR}")
    if born > today:
        raise IdNumberError("birth date (characters 7-14) is in the future")
    if check_char(n[:17]) != n[17]:
        raise IdNumberError("check character does not match (GB 11643-1999 checksum)")
    return n


def is_valid(raw: object, today: date) -> bool:
    try:
        validate(raw, today)
    except IdNumberError:
        return False
    return True


def birth_date(n: str) -> date:
    """Birth date of a validated ID number."""
    born = _birth_date_or_none(n)
    if born is None:
        raise IdNumberError("birth date (characters 7-14) is not a real date")
    return born


def sex(n: str) -> str:
    """``"male"`` when the 17th character is odd, else ``"female"``."""
    return "male" if int(n[16]) % 2 else "female"


def _birth_date_or_none(n: str) -> date | None:
    try:
        return date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        return None
