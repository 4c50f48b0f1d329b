"""``vehicle.offline`` / ``vehicle.online``: a moving vehicle that goes silent.

A vehicle whose last accepted fix showed it moving (speed at least
``geofence.moving_kmh``) and that has sent nothing for longer than
``geofence.offline_factor`` x its class's report interval
(``geofence.report_interval_s.<class>``; 0 = never) raises ``vehicle.offline``
once (warning). Its next accepted live fix raises ``vehicle.online`` (info,
with ``gap_s``); that one comes from the checker (:func:`online_alert`).

:func:`scan_offline` is pure over the stored states and an injected ``now``;
the worker runs it on a timer over the vehicles of the partitions it owns.
Ids derive from the last fix's event time, so two scans (or two workers
during a rebalance) give the same ``alert_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from engine.alerts.models import make_alert, stable_id
from engine.core.clock import to_iso
from engine.geofence.fleet import PartitionFleet
from engine.geofence.settings import GeofenceSettings
from engine.telemetry.models import Fix


class Progress:
    """How far the worker has got in each partition of the stream.

    Per partition: the newest fix of the last batch read from it, and when.
    ``stream_now(partition, now)`` is the clock minus the lag that batch
    showed: the clock (less the pipeline's latency) when the worker keeps up,
    behind it while the worker catches up after a restart or a stall - when
    silence in the table means "not read yet", not "not sent". Per partition,
    because a batch can be fresh for one partition while another still has a
    backlog; a partition not read since the worker started has no "now".

    >>> p = Progress()
    >>> p.stream_now(0, 100.0) is None
    True
    >>> p.update(0, wall=100.0, newest_event=40.0)   # 60 s behind
    >>> p.stream_now(0, 130.0), p.stream_now(1, 130.0)
    (70.0, None)
    """

    def __init__(self) -> None:
        self._lag: dict[int, float] = {}

    def update(self, partition: int, wall: float, newest_event: float) -> None:
        self._lag[partition] = max(0.0, wall - newest_event)

    def stream_now(self, partition: int, now: float) -> float | None:
        lag = self._lag.get(partition)
        return None if lag is None else now - lag


def silence_limit_s(vclass: str, cfg: GeofenceSettings) -> float | None:
    """Seconds of silence after which a moving vehicle of ``vclass`` is offline (None: never)."""
    intervals = cfg.report_interval_s
    interval = getattr(intervals, vclass, intervals.other)
    if interval <= 0 or cfg.offline_factor <= 0:
        return None
    return cfg.offline_factor * interval


def silent_rows(fleet: PartitionFleet, now: float, cfg: GeofenceSettings) -> Iterator[tuple[str, dict[str, Any]]]:
    """The vehicles of ``fleet`` that :func:`scan_offline` may flag: moving at their last fix and silent for
    longer than their class's limit, chosen over the fleet's columns (a state dict for those only)."""
    limits = np.array([silence_limit_s(c, cfg) or np.inf for c in fleet.classes])
    n = len(fleet)
    rows = np.flatnonzero((fleet.speed[:n] >= cfg.moving_kmh) & (now - fleet.ts[:n] > limits[fleet.class_code[:n]]))
    for r in rows.tolist():
        vid = fleet.ids[r]
        st = fleet.state(vid)
        if st is not None and "off" not in st:
            yield vid, st


def scan_offline(states: Iterable[tuple[str, dict[str, Any] | None]], now: float, cfg: GeofenceSettings,
                 tz: ZoneInfo) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Alerts for vehicles that just went silent, and their states marked offline.

    Examples
    --------
    >>> st = {"ts": 0.0, "lat": 24.5, "lon": 118.1, "class": "hazmat", "speed": 50.0, "zones": {}}
    >>> alerts, changed = scan_offline([("v", st)], 91.0, GeofenceSettings(), ZoneInfo("UTC"))
    >>> [a["kind"] for a in alerts], "off" in changed["v"]
    (['vehicle.offline'], True)
    """
    alerts: list[dict[str, Any]] = []
    changed: dict[str, dict[str, Any]] = {}
    for vid, st in states:
        if not st or "off" in st or (st.get("speed") or 0.0) < cfg.moving_kmh:
            continue
        limit = silence_limit_s(st.get("class", "other"), cfg)
        if limit is None or now - st["ts"] <= limit:
            continue
        aid = stable_id("offline", vid, round(st["ts"], 3))
        alerts.append(make_alert(
            "vehicle.offline", "warning", alert_id=aid, subject=vid, ts=st["ts"] + limit, detected_at=now, tz=tz,
            vehicle_id=vid, **{"class": st.get("class", "other")}, lat=st["lat"], lon=st["lon"],
            incident_id=aid, last_fix_at=to_iso(st["ts"], tz), silent_s=round(now - st["ts"], 3),
            speed_kmh=st.get("speed"), late=False))
        changed[vid] = {**st, "off": {"alert": aid, "since": st["ts"] + limit}}
    return alerts, changed


def online_alert(fix: Fix, prev: dict[str, Any], now: float, tz: ZoneInfo) -> dict[str, Any]:
    """``vehicle.online`` for the first accepted live fix after ``vehicle.offline``."""
    off = prev["off"]
    return make_alert(
        "vehicle.online", "info", alert_id=stable_id("online", off["alert"]), subject=fix.vehicle_id, ts=fix.ts,
        detected_at=now, tz=tz, vehicle_id=fix.vehicle_id, **{"class": fix.vclass}, lat=fix.lat, lon=fix.lon,
        incident_id=off["alert"], last_fix_at=to_iso(prev["ts"], tz), gap_s=round(fix.ts - prev["ts"], 3),
        late=False)
