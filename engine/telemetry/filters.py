"""GPS sanity filters of the worker (settings ``filters:``); each rejection has its reason.

Stateless (any fix, live or late):

- ``invalid_fix``: the terminal says the fix is not valid (``valid: false``, or
  JT/T 808 ``status_flags`` with bit 1 clear) - typically the last position
  repeated, or a cold start.
- ``poor_accuracy``: ``accuracy_m`` worse than ``max_accuracy_m``.

Stateful, against the vehicle's last accepted fix (the *anchor*):

- ``implausible_jump``: the move from the anchor implies a speed above
  ``max_implied_speed_kmh`` once ``jump_tolerance_m`` of position noise is
  forgiven. Such a fix never moves the vehicle, so a teleport never raises a
  zone alert. Recovery from a bad anchor: rejected fixes are kept as
  suspects; when ``reanchor_fixes`` consecutive suspects are consistent with
  each other (plausible speed between neighbours), the last of them is
  accepted as the new anchor - without a segment from the old one, so the
  jump itself is never tested against zones.

The bridge has already rejected bad coordinates, (0, 0), out-of-area and
future timestamps; the checker rejects duplicates.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from engine.telemetry.models import Fix
from engine.telemetry.settings import FilterSettings

FIX_VALID_BIT = 1 << 1  # JT/T 808 status bit 1: positioning valid


def quality_problem(fix: Fix, cfg: FilterSettings) -> tuple[str, str] | None:
    """``(reason, detail)`` if the fix fails a stateless filter, else None."""
    if cfg.invalid_fix:
        if fix.valid is False:
            return "invalid_fix", "the terminal marked the fix invalid (valid: false)"
        if fix.status_flags is not None and not fix.status_flags & FIX_VALID_BIT:
            return "invalid_fix", f"JT/T 808 status_flags {fix.status_flags:#x}: bit 1 (fix valid) is clear"
    if cfg.max_accuracy_m > 0 and fix.accuracy_m is not None and fix.accuracy_m > cfg.max_accuracy_m:
        return "poor_accuracy", f"accuracy_m {fix.accuracy_m:g} is worse than {cfg.max_accuracy_m:g}"
    return None


def implied_kmh(t0: float, x0: float, y0: float, t1: float, x1: float, y1: float, tolerance_m: float = 0.0) -> float:
    """Speed (km/h) of a straight move between two projected fixes, ``tolerance_m`` of it forgiven.

    >>> round(implied_kmh(0, 0, 0, 36, 1000, 0), 1)
    100.0
    >>> implied_kmh(0, 0, 0, 1, 40, 0, tolerance_m=50)
    0.0
    """
    dt = t1 - t0
    moved = max(math.hypot(x1 - x0, y1 - y0) - tolerance_m, 0.0)
    if dt <= 0:
        return math.inf if moved > 0 else 0.0
    return moved / dt * 3.6


class JumpVerdict(NamedTuple):
    accept: bool
    reanchored: bool          # accepted as a new anchor: no segment from the old one
    suspects: list[list[float]]  # [ts, x, y] of the rejected fixes since the last accepted one
    implied_kmh: float


def check_jump(anchor: tuple[float, float, float] | None, suspects: list[list[float]], ts: float, x: float,
               y: float, cfg: FilterSettings) -> JumpVerdict:
    """Decide one live fix against the anchor ``(ts, x, y)`` and the pending suspects.

    >>> cfg = FilterSettings(reanchor_fixes=2)
    >>> v = check_jump((0, 0, 0), [], 10, 50_000, 0, cfg)      # 50 km in 10 s
    >>> v.accept, v.suspects
    (False, [[10, 50000, 0]])
    >>> check_jump((0, 0, 0), v.suspects, 20, 50_100, 0, cfg).reanchored
    True
    """
    if anchor is None:
        return JumpVerdict(True, False, [], 0.0)
    tol, limit = cfg.jump_tolerance_m, cfg.max_implied_speed_kmh
    v = implied_kmh(anchor[0], anchor[1], anchor[2], ts, x, y, tol)
    if v <= limit:
        return JumpVerdict(True, False, [], v)
    last = suspects[-1] if suspects else None
    if last is not None and implied_kmh(last[0], last[1], last[2], ts, x, y, tol) <= limit:
        chain = [*suspects, [ts, x, y]]
    else:
        chain = [[ts, x, y]]
    if len(chain) >= max(1, cfg.reanchor_fixes):
        return JumpVerdict(True, True, [], v)
    return JumpVerdict(False, False, chain, v)
