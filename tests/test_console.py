"""The console line ``citywatch up`` prints for each alert (engine.up.format_alert)."""

from __future__ import annotations

from engine.up import format_alert

BASE = {"ts": "2026-09-08T10:00:00.000+08:00", "vehicle_id": "闽DH1234", "class": "hazmat", "lat": 24.4812,
        "lon": 118.045}


def test_an_sos_and_its_clearing_read_as_sentences():
    line = format_alert({**BASE, "kind": "vehicle.emergency", "severity": "critical"})
    assert line.startswith("!! 10:00:00+08:00 CRITICAL vehicle.emergency")
    assert line.endswith("闽DH1234 (hazmat) pressed SOS at 24.48120,118.04500")
    cleared = format_alert({**BASE, "kind": "vehicle.emergency_cleared", "severity": "info", "duration_s": 90.0})
    assert cleared.endswith("闽DH1234 (hazmat) cleared its SOS after 90 s at 24.48120,118.04500")


def test_a_zone_alert_names_the_zone():
    line = format_alert({**BASE, "kind": "zone.enter", "severity": "critical", "zone_id": "haicang-tunnel",
                         "zone_name": "Haicang Tunnel"})
    assert line.endswith("闽DH1234 (hazmat) entered Haicang Tunnel [haicang-tunnel] at 24.48120,118.04500")


def test_an_sos_without_a_gps_lock_says_where_the_vehicle_was_last_seen():
    line = format_alert({**BASE, "kind": "vehicle.emergency", "severity": "critical", "position": "last_known",
                         "position_ts": "2026-09-08T09:58:30.000+08:00"})
    assert line.endswith("闽DH1234 (hazmat) pressed SOS last seen at 24.48120,118.04500 at 09:58:30")
    nowhere = format_alert({**BASE, "kind": "vehicle.emergency", "severity": "critical", "position": "none",
                            "lat": None, "lon": None})
    assert nowhere.endswith("闽DH1234 (hazmat) pressed SOS (no position yet)")
