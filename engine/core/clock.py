"""Injected time: logic asks a clock, never ``datetime.now()`` directly."""

from __future__ import annotations

import time
from datetime import UTC, datetime, tzinfo
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_788_832_800.0):  # 2026-09-08T10:00:00+08:00
        self.t = float(start)

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def to_iso(epoch: float, tz: tzinfo = UTC) -> str:
    """ISO 8601 with offset, millisecond precision."""
    return datetime.fromtimestamp(epoch, tz).isoformat(timespec="milliseconds")
