"""Terminal alarms as episodes: the JT/T 808 alarm DWORD of a fix (``alarm_flags``) -> ``vehicle.*`` alerts.

Three bits of the DWORD raise alerts (JT/T 808-2011 table 24):

====  ===================================  ========  ==========================================
bit   alarm                                severity  kinds (opening / clearing, info)
====  ===================================  ========  ==========================================
0     emergency (the driver's SOS button)  critical  ``vehicle.emergency`` / ``_cleared``
1     overspeed (terminal's own limit)     warning   ``vehicle.overspeed_alarm`` / ``_cleared``
2     fatigue driving                      warning   ``vehicle.fatigue_alarm`` / ``_cleared``
====  ===================================  ========  ==========================================

An *episode* opens on the first accepted live fix with the bit set while it was clear (or the vehicle never
sent it) and closes on the first later one with it clear: one opening alert however many fixes repeat the
set bit, then one clearing alert (``<kind>_cleared``, info, as ``zone.enter`` / ``zone.exit`` and
``system.overloaded`` / ``system.overload_cleared`` pair). The opening alert's ``alert_id`` derives from the
vehicle, the kind and the event time of the fix that set the bit (:func:`episode_id`), so a replayed batch
or a restarted worker gives the same id; it is the ``incident_id`` of both alerts, and the clearing one
carries ``since_at``, ``ended_at``, ``duration_s`` and ``reason`` (``cleared``).

A fix without the DWORD (``alarm_flags`` not sent) changes nothing. Late fixes (older than the vehicle's
newest) never reach this module: they are audited, not moves (engine.geofence.late). Fixes a GPS filter
rejects (``invalid_fix``, ``poor_accuracy``, ``implausible_jump``) and duplicates do not either.

The open episodes are the vehicle state's ``alarms``: alarm name -> event time it opened (``{"emergency":
1789000000.0}``); the fleet keeps their bits as a column (:func:`open_bits`) so the fast lane
(engine.geofence.fast_lane) sends to the per-fix path only the fixes whose bits differ from it.

>>> from zoneinfo import ZoneInfo
>>> from engine.telemetry.models import Fix
>>> sos = Fix("闽DH0001", 100.0, 24.5, 118.1, "hazmat", alarm_flags=0b1)
>>> alarms, alerts = step_alarms(sos, 30.0, None, 101.0, ZoneInfo("UTC"))
>>> alarms, [a["kind"] for a in alerts]
({'emergency': 100.0}, ['vehicle.emergency'])
>>> step_alarms(Fix("闽DH0001", 110.0, 24.5, 118.1, alarm_flags=0b1), 30.0, alarms, 111.0, ZoneInfo("UTC"))[1]
[]
>>> cleared = step_alarms(Fix("闽DH0001", 160.0, 24.5, 118.1, alarm_flags=0), 30.0, alarms, 161.0, ZoneInfo("UTC"))
>>> cleared[0], [(a["kind"], a["duration_s"], a["incident_id"] == alerts[0]["alert_id"]) for a in cleared[1]]
(None, [('vehicle.emergency_cleared', 60.0, True)])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from engine.alerts.models import make_alert, stable_id
from engine.core.clock import to_iso
from engine.telemetry.models import Fix


class Alarm(NamedTuple):
    bit: int          # in the JT/T 808 alarm DWORD
    name: str         # its key in a vehicle state's ``alarms``
    kind: str         # the opening alert; the clearing one is ``kind + "_cleared"``
    severity: str


ALARMS = (Alarm(0, "emergency", "vehicle.emergency", "critical"),
          Alarm(1, "overspeed", "vehicle.overspeed_alarm", "warning"),
          Alarm(2, "fatigue", "vehicle.fatigue_alarm", "warning"))
ALARM_MASK = sum(1 << a.bit for a in ALARMS)    # the bits that raise alerts (0b111)
OPENING = frozenset(a.kind for a in ALARMS)
CLEARING = frozenset(f"{a.kind}_cleared" for a in ALARMS)
_BITS = {a.name: 1 << a.bit for a in ALARMS}


def open_bits(alarms: Mapping[str, float] | None) -> int:
    """The bits (of :data:`ALARM_MASK`) of the open episodes in a state's ``alarms``.

    >>> open_bits({"emergency": 1.0, "fatigue": 2.0}), open_bits(None)
    (5, 0)
    """
    if not alarms:
        return 0
    bits = 0
    for name in alarms:
        bits |= _BITS.get(name, 0)
    return bits


def episode_id(vehicle_id: str, kind: str, since: float) -> str:
    """The id of an alarm episode (its opening alert's ``alert_id``) that the fix at ``since`` opened."""
    return stable_id(kind, vehicle_id, round(since, 3))


def step_alarms(fix: Fix, speed: float | None, alarms: dict[str, float] | None, now: float,
                tz: ZoneInfo) -> tuple[dict[str, float] | None, list[dict[str, Any]]]:
    """One accepted live fix's effect on the vehicle's open alarm episodes: the new ``alarms`` (None when none
    is open; ``alarms`` itself when nothing changed, never changed in place) and the alerts it raises.
    ``speed``: reported or implied (km/h)."""
    flags = fix.alarm_flags
    if flags is None or flags < 0 or (flags & ALARM_MASK) == open_bits(alarms):
        return alarms or None, []
    out = dict(alarms) if alarms else {}
    alerts: list[dict[str, Any]] = []
    for a in ALARMS:
        on, since = bool(flags >> a.bit & 1), out.get(a.name)
        if on and since is None:
            out[a.name] = fix.ts
            aid = episode_id(fix.vehicle_id, a.kind, fix.ts)
            alerts.append(_alert(a.kind, a.severity, aid, aid, a, fix, speed, now, tz, since_at=to_iso(fix.ts, tz)))
        elif not on and since is not None:
            del out[a.name]
            aid = episode_id(fix.vehicle_id, a.kind, since)
            kind = f"{a.kind}_cleared"
            alerts.append(_alert(kind, "info", stable_id(kind, aid), aid, a, fix, speed, now, tz,
                                 since_at=to_iso(since, tz), ended_at=to_iso(fix.ts, tz),
                                 duration_s=round(max(fix.ts - since, 0.0), 3), reason="cleared"))
    return out or None, alerts


def _alert(kind: str, severity: str, alert_id: str, incident: str, alarm: Alarm, fix: Fix, speed: float | None,
           now: float, tz: ZoneInfo, **fields: Any) -> dict[str, Any]:
    return make_alert(
        kind, severity, alert_id=alert_id, subject=fix.vehicle_id, ts=fix.ts, detected_at=now, tz=tz,
        vehicle_id=fix.vehicle_id, **{"class": fix.vclass}, lat=fix.lat, lon=fix.lon,
        speed_kmh=None if speed is None else round(speed, 1), incident_id=incident, alarm=alarm.name,
        alarm_bit=alarm.bit, alarm_flags=fix.alarm_flags, late=False, **fields)
