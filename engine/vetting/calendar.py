"""Calendar arithmetic the rules need, on plain dates in the city's time zone.

Months are added the way licences and permits count them: the same day of the
month, clamped to the month's last day (a licence first issued on 29 Feb
2020 completes three years on 28 Feb 2023).
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time
from zoneinfo import ZoneInfo


def add_months(d: date, months: int) -> date:
    """``d`` moved by ``months`` (may be negative), day clamped to the month's end."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def add_years(d: date, years: int) -> date:
    return add_months(d, 12 * years)


def whole_years(start: date, end: date) -> int:
    """Completed years from ``start`` to ``end`` (an age, or years of driving)."""
    years = end.year - start.year
    return years - 1 if add_years(start, years) > end else years


def whole_months(start: date, end: date) -> int:
    """Completed months from ``start`` to ``end``."""
    months = (end.year - start.year) * 12 + end.month - start.month
    return months - 1 if add_months(start, months) > end else months


def local_date(epoch: float, tz: ZoneInfo) -> date:
    """The calendar date at ``epoch`` in ``tz``."""
    return datetime.fromtimestamp(epoch, tz).date()


def start_of_day(d: date, tz: ZoneInfo) -> float:
    """Epoch seconds of ``d`` 00:00 in ``tz``."""
    return datetime.combine(d, time(0), tz).timestamp()


def cycle_index(first_issued: date, d: date) -> int:
    """Index of the 12-month scoring cycle containing ``d`` (0 = the first; -1 before the licence)."""
    if d < first_issued:
        return -1
    k = whole_months(first_issued, d) // 12
    return k


def cycle_bounds(first_issued: date, k: int) -> tuple[date, date]:
    """First and last day of scoring cycle ``k``."""
    start = add_months(first_issued, 12 * k)
    end = add_months(first_issued, 12 * (k + 1))
    return start, date.fromordinal(end.toordinal() - 1)
