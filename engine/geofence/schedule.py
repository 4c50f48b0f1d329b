"""When a zone's rule is in force.

A schedule is a tuple of windows; the zone is active when any window is.
No windows means always active.

- ``{"start": ISO, "end": ISO}``: an absolute window, both ends inclusive
  (``end`` is usually written ``...T23:59:59+08:00``). Offsets are required.
- ``{"days": ["mon", ...], "from": "HH:MM", "to": "HH:MM"}``: a recurring
  window in the city's time zone, half-open ``[from, to)`` so back-to-back
  windows tile a day without overlap. ``to < from`` wraps past midnight
  (the listed day is the day the window *starts*); ``from == to`` lasts a
  full 24 h; ``to`` may be ``"24:00"``. Times are local wall-clock times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MINUTES_PER_DAY = 24 * 60


class ScheduleError(ValueError):
    """A schedule value is malformed; ``field`` says where (e.g. ``schedule[1].from``)."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


def _require_aware(ts: datetime) -> None:
    if not isinstance(ts, datetime):
        raise TypeError(f"expected a datetime, got {type(ts).__name__}")
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp {ts.isoformat()} is naive; a time zone is required")


@dataclass(frozen=True)
class AbsoluteWindow:
    """Active from ``start`` to ``end``, both inclusive (timezone-aware)."""

    start: datetime
    end: datetime

    def active(self, ts: datetime) -> bool:
        return self.start <= ts <= self.end


@dataclass(frozen=True)
class RecurringWindow:
    """Active on ``days`` (0 = Monday) from ``start_min`` for ``length_min`` minutes, local time."""

    days: frozenset[int]
    start_min: int
    length_min: int
    tz: ZoneInfo

    def active(self, ts: datetime) -> bool:
        local = ts.astimezone(self.tz)
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        end = self.start_min + self.length_min
        if local.weekday() in self.days and self.start_min <= minute < end:
            return True
        # The tail of a window that started yesterday and runs past midnight.
        yesterday = (local.weekday() - 1) % 7
        return yesterday in self.days and minute < end - _MINUTES_PER_DAY


Window = AbsoluteWindow | RecurringWindow


@dataclass(frozen=True)
class Schedule:
    """A zone's windows; an empty tuple means always active.

    Examples
    --------
    >>> s = parse_schedule([{"days": ["mon"], "from": "22:00", "to": "05:00"}], "Asia/Shanghai")
    >>> s.active(datetime.fromisoformat("2026-09-08T04:59:00+08:00"))  # Tuesday
    True
    """

    windows: tuple[Window, ...] = ()

    def active(self, ts: datetime) -> bool:
        """Whether the schedule is in force at ``ts`` (must be timezone-aware)."""
        _require_aware(ts)
        return not self.windows or any(w.active(ts) for w in self.windows)


ALWAYS = Schedule()


def resolve_tz(tz: str | ZoneInfo) -> ZoneInfo:
    """Return ``tz`` as a ZoneInfo; ValueError if the name is unknown."""
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


def parse_schedule(raw: Any, tz: str | ZoneInfo, *, where: str = "schedule") -> Schedule:
    """Parse the JSON value of ``properties.schedule``.

    Parameters
    ----------
    raw : list of dict or None
        The windows; None means always active.
    tz : str or ZoneInfo
        Time zone of recurring windows (the city's, e.g. ``"Asia/Shanghai"``).
    where : str
        Field name used in error messages.

    Raises
    ------
    ScheduleError
        With ``field`` naming the offending window and key.
    """
    zone = resolve_tz(tz)
    if raw is None:
        return ALWAYS
    if not isinstance(raw, list):
        raise ScheduleError(where, f"must be a list of windows, got {type(raw).__name__}")
    if not raw:
        raise ScheduleError(where, "empty list; omit the schedule for 'always'")
    return Schedule(tuple(_parse_window(w, zone, f"{where}[{i}]") for i, w in enumerate(raw)))


def _parse_window(raw: Any, tz: ZoneInfo, where: str) -> Window:
    if not isinstance(raw, dict):
        raise ScheduleError(where, f"a window must be an object, got {type(raw).__name__}")
    keys = set(raw)
    if keys == {"start", "end"}:
        start = _parse_instant(raw["start"], f"{where}.start")
        end = _parse_instant(raw["end"], f"{where}.end")
        if end <= start:
            raise ScheduleError(f"{where}.end", "end must be after start")
        return AbsoluteWindow(start, end)
    if keys == {"days", "from", "to"}:
        days = _parse_days(raw["days"], f"{where}.days")
        first = _parse_clock(raw["from"], f"{where}.from", allow_24=False)
        last = _parse_clock(raw["to"], f"{where}.to", allow_24=True)
        length = (last - first) % _MINUTES_PER_DAY or _MINUTES_PER_DAY
        return RecurringWindow(days, first, length, tz)
    raise ScheduleError(where, f"keys {sorted(keys)}: expected exactly start/end or days/from/to")


def _parse_instant(raw: Any, where: str) -> datetime:
    if not isinstance(raw, str):
        raise ScheduleError(where, "must be an ISO 8601 string with offset")
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        raise ScheduleError(where, f"{raw!r} is not an ISO 8601 datetime") from None
    if ts.tzinfo is None:
        raise ScheduleError(where, f"{raw!r} has no UTC offset (e.g. +08:00)")
    return ts


def _parse_days(raw: Any, where: str) -> frozenset[int]:
    if not isinstance(raw, list) or not raw:
        raise ScheduleError(where, f"must be a non-empty list of {', '.join(DAYS)}")
    days = set()
    for day in raw:
        if not isinstance(day, str) or day.lower() not in DAYS:
            raise ScheduleError(where, f"unknown day {day!r}; use {', '.join(DAYS)}")
        days.add(DAYS.index(day.lower()))
    return frozenset(days)


def _parse_clock(raw: Any, where: str, *, allow_24: bool) -> int:
    """``"HH:MM"`` -> minutes after midnight."""
    if isinstance(raw, str) and re.fullmatch(r"[0-9]{2}:[0-9]{2}", raw):
        hours, minutes = int(raw[:2]), int(raw[3:])
        if (hours < 24 and minutes < 60) or (allow_24 and raw == "24:00"):
            return hours * 60 + minutes
    raise ScheduleError(where, f"{raw!r} is not a time HH:MM (00:00-23:59)")
