"""Overload made visible: how far behind a worker is, and ``system.overloaded`` / ``system.overload_cleared``.

**The lag** (:class:`PartitionLag`, the ``citywatch_worker_lag_seconds`` gauge) is, per partition of the
``fixes`` topic, the age of the oldest record of the last batch read from it when that batch was done:
the clock minus the record's Kafka timestamp (the time the bridge produced it, or the broker appended it).
That is how long the oldest fix of the batch waited before this worker had checked it - and so how late its
alerts are. A worker's lag is the worst of the partitions it owns. A partition counts while its last batch
is recent (``stale_s``) or while records wait behind it (Kafka's high watermark is past what was read); a
partition with nothing waiting and no recent batch counts 0, so an idle worker reports 0, not the age of
the last fix it saw.

Kafka timestamps rather than the fixes' own fields: they exist on every record whatever its format, cost one
read per record instead of one per fix, and say when the record reached Kafka - a backfill of old fixes
produced now is not lag, nor is the time the bridge held records back during a Kafka outage (the bridge's
own metrics show that). The bridge's clock and the worker's must agree (NTP); a skew shows up as lag.

**The episode** (:class:`Overload`): one ``system.overloaded`` (warning) when the lag passes
``worker.max_lag_s``, then nothing more until the lag has stayed at or below half the limit for
``clear_after_s`` (default: the limit itself) - one ``system.overload_cleared`` (info, ``duration_s``).
A lag hovering around the limit therefore neither repeats the alert nor clears it. The episode's
``alert_id`` derives from the worker's id and the moment it began; the clear's ``incident_id`` is that id.
Pure: fed ``(now, lag)`` from an injected clock.

>>> from zoneinfo import ZoneInfo
>>> o = Overload(30.0, worker_id="w1:6066", host="w1", tz=ZoneInfo("UTC"))
>>> raised = o.update(100.0, 45.0); o.sent(raised)
>>> [a["kind"] for a in raised], o.update(101.0, 50.0), o.update(110.0, 10.0)
(['system.overloaded'], [], [])
>>> [(a["kind"], a["duration_s"]) for a in o.update(140.0, 1.0)]
[('system.overload_cleared', 40.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any
from zoneinfo import ZoneInfo

from engine.alerts.models import make_alert, stable_id
from engine.core.clock import to_iso

STALE_S = 2.0     # a partition's last measurement counts this long with nothing waiting behind it
REPORT_S = 1.0    # how often the worker reports the lag and runs the episode logic


class PartitionLag:
    """Per partition: the lag measured at its last batch, the time of that batch, and the next offset to read.

    >>> lag = PartitionLag()
    >>> lag.read(100.0, [(0, 7, 40.0), (0, 8, 41.0), (1, 3, 99.5)])   # (partition, offset, Kafka timestamp)
    >>> lag.value(100.5, owned={0, 1}, highwater=lambda p: None)
    60.0
    >>> lag.value(103.0, owned={0, 1}, highwater=lambda p: 10 if p == 0 else None)  # one waits on 0
    60.0
    >>> lag.value(103.0, owned={0, 1}, highwater=lambda p: None)                  # idle
    0.0
    """

    def __init__(self, stale_s: float = STALE_S):
        self.stale_s = stale_s
        self._seen: dict[int, tuple[float, float, int]] = {}  # partition -> (lag, measured at, next offset)

    def read(self, now: float, records: Iterable[tuple[int, int, float | None]]) -> None:
        """A batch done at ``now``: its records' ``(partition, offset, timestamp)``, in the order read."""
        oldest: dict[int, float] = {}
        next_offset: dict[int, int] = {}
        for p, offset, ts in records:
            next_offset[p] = offset + 1
            if ts and ts > 0:
                oldest[p] = min(ts, oldest.get(p, ts))
        for p, nxt in next_offset.items():
            self._seen[p] = (max(0.0, now - oldest[p]) if p in oldest else 0.0, now, nxt)

    def value(self, now: float, owned: Collection[int], highwater: Callable[[int], int | None]) -> float:
        """The worst lag of the ``owned`` partitions (others are forgotten); ``highwater(p)``: None if unknown."""
        worst = 0.0
        for p, (lag, at, nxt) in list(self._seen.items()):
            if p not in owned:
                del self._seen[p]
                continue
            hw = highwater(p)
            if now - at < self.stale_s or (hw is not None and hw > nxt):
                worst = max(worst, lag)
        return worst


class Overload:
    """One overload episode at a time: when to raise ``system.overloaded`` and when to clear it.

    ``update`` returns the alerts to send now, with any earlier ones not yet confirmed by :meth:`sent`
    (an alert that could not be produced is sent again, with the same id).
    """

    def __init__(self, max_lag_s: float, *, worker_id: str, host: str, tz: ZoneInfo,
                 clear_after_s: float | None = None):
        self.max_lag_s, self.worker_id, self.host, self.tz = max_lag_s, worker_id, host, tz
        self.clear_after_s = max_lag_s if clear_after_s is None else clear_after_s
        self.started: float | None = None     # when the open episode began
        self.episode_id: str | None = None
        self.peak = 0.0
        self._below_since: float | None = None
        self._outbox: list[dict[str, Any]] = []

    @property
    def overloaded(self) -> bool:
        return self.started is not None

    def update(self, now: float, lag: float) -> list[dict[str, Any]]:
        if self.max_lag_s > 0:
            if self.started is None:
                if lag > self.max_lag_s:
                    self._raise(now, lag)
            else:
                self.peak = max(self.peak, lag)
                if lag > self.max_lag_s / 2:
                    self._below_since = None
                elif self._below_since is None:
                    self._below_since = now
                if self._below_since is not None and now - self._below_since >= self.clear_after_s:
                    self._clear(now, lag)
        return list(self._outbox)

    def sent(self, alerts: Iterable[dict[str, Any]]) -> None:
        """These alerts are on Kafka: do not return them again."""
        done = {a["alert_id"] for a in alerts}
        self._outbox = [a for a in self._outbox if a["alert_id"] not in done]

    def _raise(self, now: float, lag: float) -> None:
        self.started, self.peak, self._below_since = now, lag, None
        self.episode_id = stable_id("system.overloaded", self.worker_id, round(now, 3))
        self._outbox.append(self._alert("system.overloaded", "warning", self.episode_id, now, lag))

    def _clear(self, now: float, lag: float) -> None:
        assert self.started is not None and self.episode_id is not None
        self._outbox.append(self._alert(
            "system.overload_cleared", "info", stable_id("system.overload_cleared", self.episode_id), now, lag,
            since_at=to_iso(self.started, self.tz), duration_s=round(now - self.started, 3),
            peak_lag_s=round(self.peak, 3)))
        self.started = self.episode_id = self._below_since = None
        self.peak = 0.0

    def _alert(self, kind: str, severity: str, alert_id: str, now: float, lag: float, **fields: Any) -> dict[str, Any]:
        return make_alert(kind, severity, alert_id=alert_id, subject=self.worker_id, ts=now, detected_at=now,
                          tz=self.tz, worker_id=self.worker_id, host=self.host, lag_s=round(lag, 3),
                          max_lag_s=self.max_lag_s, incident_id=self.episode_id, **fields)
