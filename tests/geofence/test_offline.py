"""vehicle.offline / vehicle.online with an injected clock."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from engine.geofence.offline import Progress, scan_offline, silence_limit_s
from engine.geofence.settings import GeofenceSettings
from engine.settings import Settings
from tests.geofence.plane import T0, TZ, Run, fix, load, rect

CFG = GeofenceSettings()


def scan(states, now, cfg=CFG):
    return scan_offline(list(states.items()), now, cfg, ZoneInfo(TZ))


def tracked(*fixes):
    r = Run(load(rect("far", 50_000, 50_000, 50_100, 50_100)))
    r.each(list(fixes))
    return r


def test_a_moving_vehicle_silent_for_three_intervals_goes_offline_once_then_online_with_the_gap():
    r = tracked(fix("h", 0, 0, 0), fix("h", 30, 400, 0, speed_kmh=48))
    assert scan(r.states, T0 + 30 + 90)[0] == []                   # 90 s = 3 x 30 s: not yet
    alerts, changed = scan(r.states, T0 + 30 + 91)
    [off] = alerts
    assert off["kind"] == "vehicle.offline" and off["severity"] == "warning" and off["vehicle_id"] == "h"
    assert off["class"] == "hazmat" and off["ts"] == "2026-09-08T10:02:00.000+08:00"   # when it became overdue
    assert off["silent_s"] == 91 and off["lat"] == r.states["h"]["lat"]
    r.states.update(changed)
    assert scan(r.states, T0 + 1000)[0] == []                      # already offline: no repeat
    res = r.feed(fix("h", 600, 5000, 0))
    [on] = res.alerts
    assert on["kind"] == "vehicle.online" and on["severity"] == "info" and on["gap_s"] == 570
    assert on["incident_id"] == off["alert_id"] and "off" not in r.states["h"]


def test_ids_are_stable_across_scans_and_workers():
    r = tracked(fix("h", 0, 0, 0), fix("h", 30, 400, 0))
    assert scan(r.states, T0 + 200)[0][0]["alert_id"] == scan(r.states, T0 + 500)[0][0]["alert_id"]


def test_parked_vehicles_and_disabled_classes_are_never_offline():
    parked = tracked(fix("p", 0, 0, 0, speed_kmh=0), fix("p", 30, 2, 0, speed_kmh=0))
    assert scan(parked.states, T0 + 10_000)[0] == []
    no_speed = tracked(fix("q", 0, 0, 0, speed_kmh=None), fix("q", 300, 3, 0, speed_kmh=None))   # implied ~0
    assert scan(no_speed.states, T0 + 10_000)[0] == []
    cfg = Settings().replace(geofence={"report_interval_s": {"taxi": 0}}).geofence
    taxi = tracked(fix("t", 0, 0, 0, vclass="taxi"), fix("t", 30, 400, 0, vclass="taxi"))
    assert silence_limit_s("taxi", cfg) is None and scan(taxi.states, T0 + 10_000, cfg)[0] == []
    assert scan(taxi.states, T0 + 10_000)[0] != []


def test_interval_and_factor_are_settings_per_class():
    cfg = Settings().replace(geofence={"offline_factor": 2, "report_interval_s": {"police": 10}}).geofence
    assert silence_limit_s("police", cfg) == 20 and silence_limit_s("hazmat", cfg) == 60
    r = tracked(fix("p", 0, 0, 0, vclass="police"), fix("p", 10, 200, 0, vclass="police"))
    assert scan(r.states, T0 + 31, cfg)[0] != [] and scan(r.states, T0 + 29, cfg)[0] == []


def test_stream_progress_holds_the_scan_back_while_the_worker_catches_up():
    p = Progress()
    assert p.stream_now(0, T0) is None                                # nothing read from partition 0: no scan
    p.update(0, wall=T0 + 600, newest_event=T0)                       # replaying 10 minutes of backlog
    assert p.stream_now(0, T0 + 610) == T0 + 10
    p.update(1, wall=T0 + 620, newest_event=T0 + 619.9)               # partition 1 is live ...
    assert abs(p.stream_now(1, T0 + 700) - (T0 + 699.9)) < 1e-6
    assert p.stream_now(0, T0 + 700) == T0 + 100                      # ... partition 0 still behind
    p.update(2, wall=T0, newest_event=T0 + 60)                        # a terminal clock ahead: no negative lag
    assert p.stream_now(2, T0 + 5) == T0 + 5
