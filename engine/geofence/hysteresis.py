"""Zone presence with hysteresis: whether a vehicle counts as inside a zone, fix by fix.

GPS positions scatter by ~5-15 m, so a vehicle near a boundary produces fixes
on both sides of it. Presence changes only on evidence stronger than that
noise (``margin`` = ``geofence.exit_margin_m``, ``fixes`` = ``geofence.exit_fixes``):

- **Leaving** (inside -> outside): a fix outside by more than ``margin``
  ("hard" exit), or ``fixes`` consecutive outside fixes ("soft" exit: it
  stays near the zone, in the boundary band).
- **Entering** (outside -> inside): at once, on the first fix inside, unless
  the vehicle left *softly* and has not been further than ``margin`` from the
  zone since ("in the band"). Then it must be inside by more than ``margin``
  or for ``fixes`` consecutive moving fixes. A vehicle arriving from further
  away is never delayed, so no real entry is lost; only the flapping case is.
- **Crossing** (both fixes outside, the segment between them through the
  zone): reported unless the segment starts in the band (the noise of a
  vehicle parked beside the zone must not read as crossings). After a
  crossing whose end fix lies within ``margin``, the vehicle is in the band.
- **Stationary** fixes (the vehicle reports a speed below
  ``geofence.moving_kmh`` and is within ``2 x margin`` of its previous fix)
  differ from each other only by noise, so they are no evidence of a move:
  they change nothing for a vehicle inside or in the band (no exit however
  far the noise throws them, no count, no re-entry) and cross nothing. They
  can still enter a zone the vehicle is not near (a truck parked inside when
  a ban begins is caught). So a truck parked on a boundary raises at most one
  incident, and it closes when the truck drives away.

The function is pure: the caller stores ``Presence`` and hands it back.
"""

from __future__ import annotations

from typing import NamedTuple


class Presence(NamedTuple):
    inside: bool
    streak: int = 0         # consecutive moving fixes pointing at the other state
    band: bool = False      # outside after a soft exit, not yet further than the margin
    out_since: float | None = None  # while inside: event time of the first fix of the current outside run


class Step(NamedTuple):
    presence: Presence
    event: str | None = None  # "enter" | "exit" | "cross" | None
    left_at: float | None = None  # for "exit": when the vehicle left (first fix of the outside run)


def step(prev: Presence, *, ts: float, inside: bool, distance: float, crossed: bool, moving: bool,
         margin: float, fixes: int) -> Step:
    """Presence after one fix.

    Parameters
    ----------
    prev : Presence
        Presence before the fix (``Presence(False)`` for a vehicle never seen near the zone).
    ts : float
        The fix's event time.
    inside : bool
        The fix is inside the zone (or on its boundary).
    distance : float
        Signed distance to the boundary in metres: negative inside (depth), positive
        outside; ``inf`` when the fix is known to be far away.
    crossed : bool
        The segment from the previous fix passes through the zone.
    moving : bool
        The vehicle moves (its fixes are not noise around one spot; see "Stationary").

    Examples
    --------
    >>> p = step(Presence(False), ts=0, inside=True, distance=-3, crossed=True, moving=True, margin=15, fixes=3)
    >>> p.event, p.presence.inside
    ('enter', True)
    >>> step(p.presence, ts=30, inside=False, distance=5, crossed=True, moving=True, margin=15, fixes=3).event is None
    True
    """
    if not moving and (prev.inside or prev.band):
        return Step(prev)
    if prev.inside:
        if inside:
            return Step(Presence(True))
        out_since = prev.out_since if prev.out_since is not None else ts
        if distance > margin:
            return Step(Presence(False), "exit", out_since)
        count = prev.streak + 1
        if count >= fixes:
            return Step(Presence(False, band=True), "exit", out_since)
        return Step(Presence(True, count, out_since=out_since))
    band = prev.band and distance <= margin
    if inside:
        if not band or -distance > margin:
            return Step(Presence(True), "enter")
        count = prev.streak + 1
        if count >= fixes:
            return Step(Presence(True), "enter")
        return Step(Presence(False, count, band=True))
    if crossed and moving and not prev.band:
        return Step(Presence(False, band=distance <= margin), "cross")
    return Step(Presence(False, band=band))
