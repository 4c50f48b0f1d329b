"""Terminal alarms as episodes: the JT/T 808 alarm DWORD of a fix (``alarm_flags``) -> ``vehicle.*`` alerts.

Three bits of the DWORD raise alerts (JT/T 808-2011 table 24):

====  ===================================  ========  ==========================================
bit   alarm                                severity  kinds (opening / clearing, info)
====  ===================================  ========  ==========================================
0     emergency (the driver's SOS button)  critical  ``vehicle.emergency`` / ``_cleared``
1     overspeed (terminal's own limit)     warning   ``vehicle.overspeed_alarm`` / ``_cleared``
2     fatigue driving                      warning   ``vehicle.fatigue_alarm`` / ``_cleared``
====  ===================================  ========  ==========================================

An *episode* opens on the first live fix (accepted, or rejected by a GPS filter: below) with the bit set
while it was clear (or the vehicle never sent it) and closes on the first later one with it clear: one
opening alert however many fixes repeat the set bit, then one clearing alert (``<kind>_cleared``, info, as ``zone.enter`` / ``zone.exit`` and
``system.overloaded`` / ``system.overload_cleared`` pair). The opening alert's ``alert_id`` derives from the
vehicle, the kind and the event time of the fix that set the bit (:func:`episode_id`), so a replayed batch
or a restarted worker gives the same id; it is the ``incident_id`` of both alerts, and the clearing one
carries ``since_at``, ``ended_at``, ``duration_s`` and ``reason`` (``cleared``).

A fix a GPS filter rejects (``invalid_fix``: no position lock in a tunnel or a garage; ``poor_accuracy``;
``implausible_jump``) still carries the terminal's real alarm bits: it opens and clears episodes as an
accepted fix does (``rejected=True``), while its position stays rejected. Its alerts carry the vehicle's last
accepted position instead, and say so: ``position`` is ``"fix"`` on the alerts of an accepted fix (``lat`` /
``lon`` / ``speed_kmh`` are the fix's), ``"last_known"`` on those of a rejected fix when the vehicle has a
stored position (its ``lat`` / ``lon``, and ``position_ts``: when it was taken; ``speed_kmh`` None), ``"none"``
when it has none yet (``lat`` / ``lon`` None).

A fix without the DWORD (``alarm_flags`` not sent) changes nothing. Late fixes (older than the vehicle's
newest accepted one) never reach this module: they are audited, not moves (engine.geofence.late); nor do
duplicates, nor rejected fixes not newer than the vehicle's newest accepted one (the checker's test). And a
fix not newer than the last fix that changed the alarm state changes nothing: when that fix was a rejected
one, newer than the vehicle's newest accepted fix, ``alarms`` keeps its event time under :data:`AS_OF`
(dropped again by the first accepted fix at least as new), so a rejected fix that arrives out of order
neither reopens nor closes an episode, however the batches fall.

The open episodes are the vehicle state's ``alarms``: alarm name -> event time it opened (``{"emergency":
1789000000.0}``), plus :data:`AS_OF` when set; the fleet keeps the open bits as a column (:func:`open_bits`)
so the fast lane (engine.geofence.fast_lane) sends to the per-fix path only the fixes whose bits differ from
it (and the vehicles with :data:`AS_OF`).

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

The same SOS on a fix without position lock, the vehicle last placed at (24.49, 118.09) at 90 s:

>>> tunnel = Fix("闽DH0001", 100.0, 0.0, 0.0, "hazmat", alarm_flags=0b1, valid=False)
>>> alarms, alerts = step_alarms(tunnel, None, None, 101.0, ZoneInfo("UTC"), rejected=True,
...                              last_known=(24.49, 118.09, 90.0))
>>> alarms, [(a["kind"], a["position"], a["lat"], a["position_ts"]) for a in alerts]
({'emergency': 100.0, 'as_of': 100.0}, [('vehicle.emergency', 'last_known', 24.49, '1970-01-01T00:01:30.000+00:00')])
>>> step_alarms(Fix("闽DH0001", 95.0, 0.0, 0.0, alarm_flags=0, valid=False), None, alarms, 102.0,
...             ZoneInfo("UTC"), rejected=True)[1]            # older than the change: nothing
[]
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
#: The key in ``alarms`` of the event time of the last change a rejected fix made, while it is newer than the
#: vehicle's newest accepted fix (that one's time otherwise bounds the changes: see the module's doc).
AS_OF = "as_of"
#: An alarm alert's ``position``: where its ``lat`` / ``lon`` come from.
FIX_POSITION, LAST_KNOWN, NO_POSITION = "fix", "last_known", "none"


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


def step_alarms(fix: Fix, speed: float | None, alarms: dict[str, float] | None, now: float, tz: ZoneInfo, *,
                rejected: bool = False, last_known: tuple[float, float, float] | None = None,
                ) -> tuple[dict[str, float] | None, list[dict[str, Any]]]:
    """One live fix's effect on the vehicle's alarm episodes: the new ``alarms`` (None when empty; ``alarms``
    itself when nothing changed, never changed in place) and the alerts it raises.

    ``speed``: reported or implied (km/h). ``rejected``: a GPS filter rejected the fix (the checker has
    made sure it is newer than the vehicle's newest accepted one); its alerts carry ``last_known``, the
    vehicle's stored ``(lat, lon, ts)`` (None: it has no position yet), and a change it makes is kept as
    :data:`AS_OF`. A fix not newer than :data:`AS_OF` changes nothing; an accepted fix at least as new drops
    it (its own time is the vehicle's newest from now on)."""
    as_of = alarms.get(AS_OF) if alarms else None
    if as_of is not None and not rejected and fix.ts >= as_of:
        alarms = {k: v for k, v in alarms.items() if k != AS_OF} if alarms else None
    flags = fix.alarm_flags
    if flags is None or flags < 0 or (flags & ALARM_MASK) == open_bits(alarms) \
            or (as_of is not None and fix.ts <= as_of):
        return alarms or None, []
    out = dict(alarms) if alarms else {}
    if rejected:
        where: dict[str, Any] = {"lat": None, "lon": None, "speed_kmh": None, "position": NO_POSITION}
        if last_known is not None:
            where.update(lat=last_known[0], lon=last_known[1], position=LAST_KNOWN,
                         position_ts=to_iso(last_known[2], tz))
    else:
        where = {"lat": fix.lat, "lon": fix.lon, "speed_kmh": None if speed is None else round(speed, 1),
                 "position": FIX_POSITION}
    alerts: list[dict[str, Any]] = []
    for a in ALARMS:
        on, since = bool(flags >> a.bit & 1), out.get(a.name)
        if on and since is None:
            out[a.name] = fix.ts
            aid = episode_id(fix.vehicle_id, a.kind, fix.ts)
            alerts.append(_alert(a.kind, a.severity, aid, aid, a, fix, where, now, tz, since_at=to_iso(fix.ts, tz)))
        elif not on and since is not None:
            del out[a.name]
            aid = episode_id(fix.vehicle_id, a.kind, since)
            kind = f"{a.kind}_cleared"
            alerts.append(_alert(kind, "info", stable_id(kind, aid), aid, a, fix, where, now, tz,
                                 since_at=to_iso(since, tz), ended_at=to_iso(fix.ts, tz),
                                 duration_s=round(max(fix.ts - since, 0.0), 3), reason="cleared"))
    if rejected:
        out[AS_OF] = fix.ts
    return out or None, alerts


def _alert(kind: str, severity: str, alert_id: str, incident: str, alarm: Alarm, fix: Fix, where: dict[str, Any],
           now: float, tz: ZoneInfo, **fields: Any) -> dict[str, Any]:
    return make_alert(
        kind, severity, alert_id=alert_id, subject=fix.vehicle_id, ts=fix.ts, detected_at=now, tz=tz,
        vehicle_id=fix.vehicle_id, **{"class": fix.vclass}, **where, incident_id=incident, alarm=alarm.name,
        alarm_bit=alarm.bit, alarm_flags=fix.alarm_flags, late=False, **fields)
