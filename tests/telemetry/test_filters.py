"""GPS filters: each rejects with its reason, never raises an alert, and is a setting."""

from __future__ import annotations

import orjson
import pytest

from engine.settings import Settings, load_settings
from engine.telemetry.filters import check_jump, implied_kmh, quality_problem
from engine.telemetry.settings import FilterSettings
from engine.telemetry.validation import parse_payload
from tests.geofence.plane import Run, fix, load, rect, road

S = load_settings(env={})


@pytest.fixture
def ban():
    return load(rect("ban", 0, 0, 200, 200, classes=["hazmat"]))


def reasons(run):
    return [r.reason for r in run.rejections]


@pytest.mark.parametrize("extra, reason", [
    ({"valid": False}, "invalid_fix"),
    ({"status_flags": 0b01}, "invalid_fix"),            # ACC on, positioning bit clear
    ({"status_flags": 0b11, "accuracy_m": 80}, "poor_accuracy"),
    ({"valid": True, "status_flags": 0b10, "accuracy_m": 10}, None),
])
def test_stateless_filters(extra, reason, ban):
    r = Run(ban)
    r.feed(fix("h", 0, 100, 100, **extra))
    assert reasons(r) == ([reason] if reason else [])
    assert r.kinds() == ([] if reason else [("zone.enter", "ban")])
    if reason:
        rec = orjson.loads(r.rejections[0].to_json())
        assert rec["source"] == "worker" and rec["vehicle_id"] == "h" and rec["detail"]


def test_stateless_filters_can_be_switched_off():
    off = FilterSettings(invalid_fix=False, max_accuracy_m=0)
    assert quality_problem(fix("h", 0, 0, 0, valid=False, status_flags=0, accuracy_m=500), off) is None


def test_gateway_fields_valid_and_status_flags_are_type_checked_and_kept():
    base = {"vehicle_id": "V1", "ts": 1_788_832_800, "lat": 24.48, "lon": 118.09}

    def parse(**extra):
        return parse_payload(orjson.dumps({**base, **extra}), topic="citywatch/fixes/V1", settings=S,
                             now=1_788_832_800)

    [f] = parse(valid=False, status_flags=3).fixes.fixes()
    assert (f.valid, f.status_flags) == (False, 3)
    assert [r.reason for r in parse(valid="yes").rejections] == ["bad_type"]
    assert [r.reason for r in parse(status_flags=-1).rejections] == ["bad_type"]
    assert [r.reason for r in parse(status_flags=True).rejections] == ["bad_type"]


def test_a_teleport_is_rejected_and_never_raises_a_zone_alert(ban):
    r = Run(ban)
    r.each([fix("h", 0, -3000, 100), fix("h", 30, -2800, 100),
            fix("h", 40, 100, 100),               # 2.9 km in 10 s, into the zone
            fix("h", 60, -2600, 100)])            # back on the road: consistent with the anchor
    assert reasons(r) == ["implausible_jump"] and r.alerts == []
    assert r.rejections[0].extra["implied_kmh"] > 1000
    assert r.states["h"]["ts"] == fix("h", 60, 0, 0).ts and "sus" not in r.states["h"]


def test_a_bad_anchor_does_not_lock_the_vehicle_out(ban):
    """A glitched first fix far away: after 3 consistent fixes the vehicle is re-anchored where it really is."""
    r = Run(ban)
    r.feed(fix("h", 0, 30_000, 100))                           # the glitch becomes the anchor
    r.each([fix("h", 10 * i, -400 + 100 * i, 100) for i in range(1, 5)])
    assert reasons(r) == ["implausible_jump"] * 2                 # 2 suspects, the 3rd re-anchors
    assert r.alerts == []                                         # no crossing along the jump itself
    r.each([fix("h", 50, 50, 100)])
    assert r.kinds() == [("zone.enter", "ban")]


def test_re_anchoring_never_tests_the_jump_segment_against_zones():
    portal = load(road("portal", [(0, -5000), (0, 5000)], 20))
    r = Run(portal)
    r.feed(fix("h", 0, -20_000, 0))
    r.each([fix("h", 10 * i, 100 * i, 0) for i in range(1, 5)])   # east of the portal, far from the anchor
    assert r.alerts == [] and reasons(r) == ["implausible_jump"] * 2


def test_inconsistent_suspects_restart_the_count():
    cfg = FilterSettings(reanchor_fixes=3)
    anchor = (0.0, 0.0, 0.0)
    v1 = check_jump(anchor, [], 10, 50_000, 0, cfg)
    v2 = check_jump(anchor, v1.suspects, 20, -50_000, 0, cfg)   # another glitch, 100 km from the first
    assert not v2.accept and len(v2.suspects) == 1
    v3 = check_jump(anchor, v2.suspects, 30, -49_900, 0, cfg)
    v4 = check_jump(anchor, v3.suspects, 40, -49_800, 0, cfg)
    assert not v3.accept and v4.accept and v4.reanchored


def test_noise_at_one_hertz_is_not_a_jump():
    # 40 m apart within one second: GPS noise on both fixes, forgiven by jump_tolerance_m.
    assert implied_kmh(0, 0, 0, 1, 40, 0, tolerance_m=50) == 0
    assert check_jump((0.0, 0.0, 0.0), [], 1, 40, 0, FilterSettings()).accept


def test_jump_limits_are_settings(ban):
    r = Run(ban, settings=Settings().replace(filters={"max_implied_speed_kmh": 50, "jump_tolerance_m": 0}))
    r.each([fix("h", 0, -500, 100), fix("h", 10, -300, 100)])      # 72 km/h
    assert reasons(r) == ["implausible_jump"]


def test_a_replayed_glitch_does_not_count_twice_towards_re_anchoring(ban):
    r = Run(ban)
    r.each([fix("h", 0, -3000, 100), fix("h", 10, 100, 100)])       # glitch: 1 suspect
    r.each([fix("h", 10, 100, 100), fix("h", 10, 100, 100)])        # replayed twice after rebalances
    assert reasons(r) == ["implausible_jump", "duplicate", "duplicate"] and r.alerts == []
    assert len(r.states["h"]["sus"]) == 1
