"""Terminal alarms (JT/T 808 ``alarm_flags``) as episodes: ``vehicle.emergency``, ``vehicle.overspeed_alarm``,
``vehicle.fatigue_alarm`` and their ``_cleared`` alerts.

Open, repeat and clear with stable ids; the three bits apart; late fixes and fixes without the DWORD change
nothing; fixes a GPS filter rejects open and clear episodes at the vehicle's last known position (or none),
their position still rejected, and never out of event-time order; a replay gives the same ids and no new alert; open episodes survive the tracks table (journal and
blocks) and a block of the previous version still reads; the fast lane sends only fixes whose alarm bits
differ from the stored ones (and JT/T 808 fixes with a valid status word) past Python, and gives what the
per-fix path gives.
"""

from __future__ import annotations

import asyncio
import base64
import doctest
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.clock import to_iso
from engine.geofence import alarms as alarms_module
from engine.geofence import fleet as fleet_module
from engine.geofence.alarms import episode_id
from engine.geofence.checker import FleetStates
from engine.geofence.fleet import PartitionFleet
from engine.geofence.fleet_store import FleetStore, is_durable
from engine.geofence.intake import has_position, log_position
from engine.settings import Settings
from engine.telemetry.columns import from_fixes
from engine.telemetry.models import Fix
from tests.geofence import test_agents_in_process as in_process
from tests.geofence.plane import T0, TZ, Run, fix, load, rect
from tests.geofence.test_agents_in_process import worker  # noqa: F401 - the in-process worker fixture
from tests.geofence.test_fast_lane import check_into, rejected

SOS, OVERSPEED, FATIGUE = 1 << 0, 1 << 1, 1 << 2
ZONES = load(rect("ban", 0, 0, 200, 200, classes=["hazmat"]))
FAR = 5000.0   # metres east: far from the zone


def far(vid: str, t: float, flags: int | None, east: float | None = None, **kw) -> Fix:
    """A fix of ``vid`` ``t`` s after T0 on a road 5 km from the zone, driving 10 m/s east."""
    return fix(vid, t, FAR + (10 * t if east is None else east), 0, alarm_flags=flags, **kw)


def iso(t: float) -> str:
    return to_iso(T0 + t, ZoneInfo(TZ))


def at(alert: dict) -> float:
    return datetime.fromisoformat(alert["ts"]).timestamp() - T0


def view(alerts: list[dict]) -> list[tuple]:
    return [(a["kind"], round(at(a), 3)) for a in alerts]


# --- episodes ---------------------------------------------------------------------------------------------


def test_an_emergency_opens_once_however_often_repeated_and_clears_with_its_id_and_duration():
    r = Run(ZONES)
    r.each([far("h", 0, 0), far("h", 10, SOS), far("h", 20, SOS), far("h", 30, SOS | 1 << 8),
            far("h", 40, None), far("h", 50, SOS)])
    [opened] = r.alerts
    assert opened["kind"] == "vehicle.emergency" and opened["severity"] == "critical"
    assert opened["alert_id"] == opened["incident_id"] == episode_id("h", "vehicle.emergency", T0 + 10)
    assert at(opened) == 10 and opened["since_at"] == opened["ts"]
    assert opened["vehicle_id"] == opened["subject"] == "h" and opened["class"] == "hazmat" and not opened["late"]
    assert (opened["alarm"], opened["alarm_bit"], opened["alarm_flags"]) == ("emergency", 0, SOS)
    assert opened["speed_kmh"] == 30.0 and opened["lat"] == far("h", 10, SOS).lat and "zone_id" not in opened
    assert r.states["h"]["alarms"] == {"emergency": T0 + 10}
    r.alerts.clear()
    r.feed(far("h", 70, 1 << 8))                       # bit 0 clear (another bit set): the episode ends
    [cleared] = r.alerts
    assert cleared["kind"] == "vehicle.emergency_cleared" and cleared["severity"] == "info"
    assert cleared["incident_id"] == opened["alert_id"] != cleared["alert_id"]
    assert cleared["duration_s"] == 60.0 and cleared["reason"] == "cleared" and at(cleared) == 70
    assert cleared["since_at"] == opened["ts"] and cleared["ended_at"] == cleared["ts"]
    assert "alarms" not in r.states["h"]
    r.alerts.clear()
    r.feed(far("h", 80, 0), far("h", 90, SOS))           # a new episode: a new id
    [again] = r.alerts
    assert again["kind"] == "vehicle.emergency" and again["alert_id"] == episode_id("h", "vehicle.emergency", T0 + 90)
    assert again["alert_id"] != opened["alert_id"]


def test_the_first_fix_of_a_vehicle_with_the_bit_set_opens_an_episode():
    r = Run(ZONES)
    r.feed(far("new", 0, FATIGUE))
    assert [(a["kind"], a["severity"]) for a in r.alerts] == [("vehicle.fatigue_alarm", "warning")]


def test_the_three_bits_are_independent_episodes():
    r = Run(ZONES)
    r.each([far("h", 0, SOS | OVERSPEED), far("h", 10, OVERSPEED | FATIGUE), far("h", 20, FATIGUE),
            far("h", 30, 0)])
    assert view(r.alerts) == [
        ("vehicle.emergency", 0), ("vehicle.overspeed_alarm", 0),
        ("vehicle.emergency_cleared", 10), ("vehicle.fatigue_alarm", 10),
        ("vehicle.overspeed_alarm_cleared", 20),
        ("vehicle.fatigue_alarm_cleared", 30)]
    by_kind = {a["kind"]: a for a in r.alerts}
    for kind, since, ended in (("vehicle.emergency", 0, 10), ("vehicle.overspeed_alarm", 0, 20),
                               ("vehicle.fatigue_alarm", 10, 30)):
        opened, cleared = by_kind[kind], by_kind[f"{kind}_cleared"]
        assert opened["alert_id"] == episode_id("h", kind, T0 + since) == cleared["incident_id"]
        assert cleared["duration_s"] == ended - since and cleared["since_at"] == iso(since)
    assert by_kind["vehicle.overspeed_alarm"]["severity"] == "warning"
    assert len({a["alert_id"] for a in r.alerts}) == 6


def test_a_fix_without_alarm_flags_changes_nothing():
    r = Run(ZONES)
    r.feed(far("h", 0, SOS | FATIGUE))
    opened = r.states["h"]["alarms"]
    r.alerts.clear()
    r.each([far("h", 10, None), far("h", 20, None)])
    assert r.alerts == [] and r.states["h"]["alarms"] == opened
    r.feed(far("h", 30, FATIGUE))
    assert view(r.alerts) == [("vehicle.emergency_cleared", 30)]


def test_late_fixes_neither_open_nor_close_episodes():
    r = Run(ZONES)
    r.feed(far("h", 100, 0))
    r.feed(far("h", 50, SOS))                                       # late: audited, not a move
    assert r.alerts == [] and "alarms" not in r.states["h"]
    r.feed(far("h", 200, SOS))
    r.feed(far("h", 150, 0), far("h", 160, 0))                      # late fixes with the bit clear
    assert view(r.alerts) == [("vehicle.emergency", 200)] and r.states["h"]["alarms"] == {"emergency": T0 + 200}
    r.feed(far("h", 210, 0))
    assert view(r.alerts)[-1] == ("vehicle.emergency_cleared", 210) and r.alerts[-1]["duration_s"] == 10


# --- fixes a GPS filter rejects ----------------------------------------------------------------------------

POSITION = ("ts", "lat", "lon", "x", "y", "speed", "class", "zones", "pos")


def test_an_sos_without_position_lock_opens_the_emergency_at_the_last_known_position():
    r = Run(ZONES)
    r.feed(fix("h", 0, 100, 100, alarm_flags=0), positions=[(1, 0)])        # inside the zone: an incident
    before = dict(r.states["h"])
    r.alerts.clear()
    tunnel = far("h", 10, SOS, valid=False)                                 # no lock: a stale, wrong position
    res = r.feed(tunnel, positions=[(2, 0)])
    [sos] = res.alerts
    assert sos["kind"] == "vehicle.emergency" and sos["severity"] == "critical" and at(sos) == 10
    assert sos["alert_id"] == sos["incident_id"] == episode_id("h", "vehicle.emergency", T0 + 10)
    assert sos["position"] == "last_known" and sos["position_ts"] == iso(0)
    assert (sos["lat"], sos["lon"]) == (before["lat"], before["lon"]) != (tunnel.lat, tunnel.lon)
    assert sos["speed_kmh"] is None and (sos["alarm"], sos["alarm_flags"]) == ("emergency", SOS)
    assert [(x.reason, x.vehicle_id) for x in res.rejections] == [("invalid_fix", "h")]
    after = r.states["h"]
    assert {k: after.get(k) for k in POSITION} == {k: before.get(k) for k in POSITION}   # zones, position, ts
    assert after["alarms"] == {"emergency": T0 + 10, "as_of": T0 + 10}
    r.alerts.clear()
    r.feed(fix("h", 20, 110, 100, alarm_flags=SOS))                         # the lock is back, still SOS
    assert r.alerts == [] and r.states["h"]["alarms"] == {"emergency": T0 + 10}
    r.feed(fix("h", 30, 120, 100, alarm_flags=0))
    [cleared] = r.alerts
    assert cleared["kind"] == "vehicle.emergency_cleared" and cleared["incident_id"] == sos["alert_id"]
    assert cleared["position"] == "fix" and "position_ts" not in cleared and cleared["duration_s"] == 20.0
    assert r.states["h"]["zones"] == before["zones"]                        # the zone's incident never moved


def test_a_rejected_fix_clears_an_episode_and_a_rejected_jump_opens_one():
    r = Run(ZONES)
    r.each([far("h", 0, FATIGUE), far("h", 10, FATIGUE)])
    stored = dict(r.states["h"])
    [opened] = r.alerts
    assert opened["position"] == "fix" and "position_ts" not in opened
    r.alerts.clear()
    r.feed(far("h", 20, 0, accuracy_m=500))                                 # poor accuracy, the bit clear
    [cleared] = r.alerts
    assert cleared["kind"] == "vehicle.fatigue_alarm_cleared" and cleared["incident_id"] == opened["alert_id"]
    assert cleared["duration_s"] == 20.0 and cleared["ended_at"] == iso(20) and cleared["position"] == "last_known"
    assert (cleared["lat"], cleared["lon"], cleared["position_ts"]) == (stored["lat"], stored["lon"], iso(10))
    r.alerts.clear()
    r.feed(far("h", 30, SOS, east=90_000))                                  # a teleport with the SOS
    [sos] = r.alerts
    assert sos["kind"] == "vehicle.emergency" and sos["position"] == "last_known" and sos["lat"] == stored["lat"]
    assert [x.reason for x in r.rejections] == ["poor_accuracy", "implausible_jump"]
    assert {k: r.states["h"].get(k) for k in POSITION} == {k: stored.get(k) for k in POSITION}
    assert r.states["h"]["sus"] and r.states["h"]["alarms"] == {"emergency": T0 + 30, "as_of": T0 + 30}


def test_a_vehicle_without_a_stored_position_raises_with_position_none_once_on_both_paths():
    garage = [far("g", 0, SOS, status_flags=0), far("g", 10, SOS, status_flags=0)]   # no lock since it started
    r = Run(ZONES)
    r.feed(garage[0])
    [sos] = r.alerts
    assert sos["kind"] == "vehicle.emergency" and sos["position"] == "none" and "position_ts" not in sos
    assert sos["lat"] is None and sos["lon"] is None and sos["class"] == "hazmat"
    assert [x.reason for x in r.rejections] == ["invalid_fix"]
    assert not has_position(r.states["g"]) and r.states["g"]["alarms"] == {"emergency": T0, "as_of": T0}
    r.feed(garage[1])
    assert len(r.alerts) == 1                                               # still the same episode
    columns, fleet = Run(ZONES), PartitionFleet()
    assert check_into(columns, fleet, garage[:1]).alerts == [sos]
    assert fleet.state("g") is None and fleet.alarm[fleet.rows["g"]] == SOS  # a row without a position
    assert FleetStates(fleet).get("g")["alarms"] == {"emergency": T0, "as_of": T0}
    assert check_into(columns, fleet, garage[1:]).alerts == []
    first = far("g", 20, 0)                                                 # the first lock: the bit clear
    res = check_into(columns, fleet, [first])
    [cleared] = res.alerts
    assert cleared["kind"] == "vehicle.emergency_cleared" and cleared["position"] == "fix"
    assert cleared["incident_id"] == sos["alert_id"] and cleared["duration_s"] == 20.0
    assert (fleet.state("g")["lat"], fleet.state("g")["ts"]) == (first.lat, T0 + 20)
    assert "alarms" not in fleet.state("g") and fleet.alarm[fleet.rows["g"]] == 0


def test_a_rejected_fix_not_newer_than_the_last_change_neither_reopens_nor_closes():
    r = Run(ZONES)
    r.feed(far("h", 0, 0))
    r.feed(far("h", 20, SOS, valid=False))                                  # opens
    r.feed(far("h", 10, 0, valid=False))                                    # newer than the position, older
    r.feed(far("h", 20, 0, valid=False))                                    # than the SOS, or as old: nothing
    assert view(r.alerts) == [("vehicle.emergency", 20)]
    r.feed(far("h", 30, 0, valid=False))                                    # clears
    r.feed(far("h", 25, SOS, valid=False))                                  # older than the clear: no reopening
    assert view(r.alerts) == [("vehicle.emergency", 20), ("vehicle.emergency_cleared", 30)]
    r.feed(far("h", 15, SOS))                                               # accepted, live, but older too
    assert len(r.alerts) == 2 and r.states["h"]["ts"] == T0 + 15 and r.states["h"]["alarms"] == {"as_of": T0 + 30}
    r.feed(far("h", 28, SOS, valid=False), far("h", 5, SOS, valid=False))   # older than the change / the position
    r.feed(far("h", 15, SOS, valid=False))                                  # the stored fix's time
    r.feed(far("h", 15, SOS))                                               # a duplicate
    assert len(r.alerts) == 2 and r.rejections[-1].reason == "duplicate"
    r.feed(far("h", 40, SOS, valid=False))
    assert view(r.alerts)[-1] == ("vehicle.emergency", 40)


def test_a_rejected_fix_as_old_as_the_stored_position_or_older_changes_nothing():
    r = Run(ZONES)
    r.each([far("h", 0, 0), far("h", 10, SOS)])                            # opened by an accepted fix: no as_of
    assert r.states["h"]["alarms"] == {"emergency": T0 + 10}
    r.feed(far("h", 10, 0, valid=False), far("h", 5, 0, valid=False))      # the stored fix's time, and older
    r.feed(far("h", 10, 0))                                                 # a duplicate with the bit clear
    assert view(r.alerts) == [("vehicle.emergency", 10)] and r.states["h"]["alarms"] == {"emergency": T0 + 10}
    assert [x.reason for x in r.rejections] == ["invalid_fix", "invalid_fix", "duplicate"]


def test_rejected_and_accepted_fixes_of_one_batch_take_event_time_order():
    r = Run(ZONES)
    r.feed(far("h", 40, 0, valid=False), far("h", 10, 0), far("h", 30, SOS), far("h", 20, SOS, valid=False),
           far("h", 50, SOS, valid=False), far("h", 30, 0, valid=False))   # (30: after the accepted one)
    assert view(r.alerts) == [("vehicle.emergency", 20), ("vehicle.emergency_cleared", 40),
                              ("vehicle.emergency", 50)]
    assert [a["position"] for a in r.alerts] == ["last_known"] * 3
    assert [a["position_ts"] for a in r.alerts] == [iso(10), iso(30), iso(30)]
    assert r.states["h"]["ts"] == T0 + 30 and r.alerts[1]["duration_s"] == 20.0


def test_an_alarm_inside_a_zone_raises_both_and_the_zone_does_not_hide_it():
    r = Run(ZONES)
    r.feed(fix("h", 0, 100, 100, alarm_flags=SOS))
    assert sorted(a["kind"] for a in r.alerts) == ["vehicle.emergency", "zone.enter"]
    assert r.states["h"]["zones"] and r.states["h"]["alarms"] == {"emergency": T0}


# --- idempotence and durability ----------------------------------------------------------------------------


def test_a_replayed_batch_gives_no_new_alert_and_a_worker_that_lost_the_state_gives_the_same_ids():
    batch = [far("a", 0, 0), far("a", 10, SOS), far("b", 0, OVERSPEED | FATIGUE), far("b", 10, FATIGUE)]
    positions = np.array([log_position(7, k) for k in range(len(batch))], dtype=np.int64)
    first, fleet = Run(ZONES), PartitionFleet()
    res = check_into(first, fleet, batch, positions)
    ids = sorted((a["kind"], a["alert_id"]) for a in res.alerts)
    assert [k for k, _ in ids] == ["vehicle.emergency", "vehicle.fatigue_alarm", "vehicle.overspeed_alarm",
                                   "vehicle.overspeed_alarm_cleared"]
    replay = check_into(first, fleet, batch, positions)               # the same records again (a rebalance)
    assert replay.alerts == [] and {x.reason for x in replay.rejections} == {"duplicate"}
    again = check_into(Run(ZONES), PartitionFleet(), batch, positions)   # killed before the state was written
    assert sorted((a["kind"], a["alert_id"]) for a in again.alerts) == ids


def feed_store(run: Run, store: FleetStore, batch: list[Fix]) -> list[dict]:
    """One batch through ``check_columns`` against partition 0 of ``store``, written back as the worker does."""
    cols = from_fixes(batch)
    res = run.checker.check_columns(cols, store.fleet(0))
    alerted = {a["vehicle_id"] for a in res.alerts}
    store.put_many(0, [(vid, s, is_durable(res.before.get(vid), s, vid in alerted)) for vid, s in res.states.items()])
    store.moved(0, res.moves.apply(store.fleet(0), cols))
    store.commit()
    return res.alerts


def test_open_episodes_survive_a_restart_from_the_journal_and_from_the_blocks():
    table: dict = {}
    store = FleetStore(table, partition_of=lambda key: 0)
    [opened] = feed_store(Run(ZONES), store, [far("h", 0, 0), far("h", 10, SOS), far("t", 0, None)])
    assert any(k.startswith("#dur/") for k in table)                  # durable at once: a journal record
    restarted = FleetStore(dict(table), partition_of=lambda key: 0)    # killed before any checkpoint
    assert restarted.get(0, "h")["alarms"] == {"emergency": T0 + 10}
    assert restarted.fleet(0).alarm[restarted.fleet(0).rows["h"]] == SOS
    assert feed_store(Run(ZONES), restarted, [far("h", 20, SOS)]) == []    # still open: no second alert
    restarted.flush()                                                  # the checkpoint: blocks only
    assert not any(k.startswith("#dur/") for k in restarted.table)
    moved = FleetStore(dict(restarted.table), partition_of=lambda key: 0)  # a rebalance: the next owner
    assert moved.fleet(0).alarm[moved.fleet(0).rows["h"]] == SOS
    [cleared] = feed_store(Run(ZONES), moved, [far("h", 40, 0)])
    assert cleared["kind"] == "vehicle.emergency_cleared" and cleared["incident_id"] == opened["alert_id"]
    assert cleared["duration_s"] == 30.0


def test_rejected_fixes_replayed_give_no_new_alert_and_a_worker_that_lost_the_state_gives_the_same_ids():
    batch = [far("a", 0, 0), far("a", 10, SOS, valid=False), far("a", 20, 0, accuracy_m=500),
             far("n", 0, FATIGUE, status_flags=0)]
    positions = np.array([log_position(7, k) for k in range(len(batch))], dtype=np.int64)
    first, fleet = Run(ZONES), PartitionFleet()
    res = check_into(first, fleet, batch, positions)
    ids = sorted((a["kind"], a["alert_id"], a["position"]) for a in res.alerts)
    assert [(k, where) for k, _, where in ids] == [("vehicle.emergency", "last_known"),
                                                   ("vehicle.emergency_cleared", "last_known"),
                                                   ("vehicle.fatigue_alarm", "none")]
    replay = check_into(first, fleet, batch, positions)
    assert replay.alerts == [] and replay.states == {}
    assert sorted(x.reason for x in replay.rejections) == ["duplicate", "invalid_fix", "invalid_fix", "poor_accuracy"]
    again = check_into(Run(ZONES), PartitionFleet(), batch, positions)
    assert sorted((a["kind"], a["alert_id"], a["position"]) for a in again.alerts) == ids


def test_an_episode_a_rejected_fix_opened_survives_a_restart_with_its_as_of():
    store = FleetStore({}, partition_of=lambda key: 0)
    feed_store(Run(ZONES), store, [far("h", 0, 0)])
    [opened] = feed_store(Run(ZONES), store, [far("h", 10, SOS, valid=False)])
    restarted = FleetStore(dict(store.table), partition_of=lambda key: 0)   # from the journal
    assert restarted.get(0, "h")["alarms"] == {"emergency": T0 + 10, "as_of": T0 + 10}
    assert restarted.get(0, "h")["ts"] == T0
    assert feed_store(Run(ZONES), restarted, [far("h", 5, 0, valid=False)]) == []   # older than the change
    restarted.flush()
    moved = FleetStore(dict(restarted.table), partition_of=lambda key: 0)  # from the blocks
    [cleared] = feed_store(Run(ZONES), moved, [far("h", 20, 0, status_flags=0)])
    assert cleared["kind"] == "vehicle.emergency_cleared" and cleared["incident_id"] == opened["alert_id"]
    assert cleared["position"] == "last_known" and cleared["duration_s"] == 10.0


def test_a_change_of_alarm_state_is_durable_at_once():
    moving = {"ts": 1.0, "lat": 24.5, "lon": 118.1, "x": 0.0, "y": 0.0, "class": "taxi", "speed": 30.0,
              "zones": {}}
    sos = {**moving, "ts": 2.0, "alarms": {"emergency": 2.0}}
    assert is_durable(moving, sos, alerted=False) and is_durable(None, sos, alerted=False)
    assert is_durable(sos, {**moving, "ts": 3.0}, alerted=False)                    # cleared
    assert not is_durable(sos, {**sos, "ts": 3.0}, alerted=False)                   # still open: a move only


def test_the_worker_alerts_once_keeps_a_replay_out_and_journals_the_episode(worker):  # noqa: F811 - the fixture
    """The agent itself (test_agents_in_process's worker): a replayed record is dropped, the episode durable."""
    def sos(minute: int, flags: int) -> Fix:
        return Fix(vehicle_id="h9", ts=T0 + 60 * minute, lat=24.47, lon=118.2 + minute * 0.002, vclass="hazmat",
                   alarm_flags=flags)

    async def body():
        async with worker.app.agents["check_zones"].test_context() as agent:
            await agent.put(key=b"h9", value=in_process.record(sos(0, 0), sos(1, SOS)), partition=0)
            await in_process.until(lambda: worker.out.on("alerts"))
            opened = dict(worker.zw.tracks.items())
            await agent.put(key=b"h9", value=in_process.record(sos(0, 0), sos(1, SOS)), partition=0)   # replayed
            await agent.put(key=b"h9", value=in_process.record(sos(2, SOS), sos(3, 0)), partition=0)
            await in_process.until(lambda: len(worker.out.on("alerts")) >= 2)
        return opened

    opened = asyncio.run(body())
    alerts = worker.out.on("alerts")
    assert [a["kind"] for a in alerts] == ["vehicle.emergency", "vehicle.emergency_cleared"]
    assert alerts[0]["alert_id"] == episode_id("h9", "vehicle.emergency", T0 + 60)
    assert alerts[1]["incident_id"] == alerts[0]["alert_id"] and alerts[1]["duration_s"] == 120.0
    assert {x["reason"] for x in worker.out.on("fixes.rejected")} == {"duplicate"}
    partition_of = worker.zw.owned.partition_of
    assert any(k.startswith("#dur/") for k in opened)          # the open episode was journaled with its batch
    assert FleetStore(opened, partition_of).get(0, "h9")["alarms"] == {"emergency": T0 + 60}
    assert "alarms" not in FleetStore(dict(worker.zw.tracks.items()), partition_of).get(0, "h9")


# --- the checkpoint record ---------------------------------------------------------------------------------

#: A block written by the version before alarms (``PartitionFleet.pack`` of the two states below).
OLD_BLOCK = base64.b64decode(
    "Q1dTAgAAAAACAAAADwAAAOgAAADpl71ESDAwMDEAYnVzLTd7ImNsYXNzZXMiOlsiaGF6bWF0IiwicG9saWNlIiwiZmlyZSIsImFt"
    "YnVsYW5jZSIsInRheGkiLCJidXMiLCJyaWRlX2hhaWxpbmciLCJvdGhlciJdLCJleHRyYSI6eyIxIjp7InpvbmVzIjp7ImhhaWNh"
    "bmctdHVubmVsIjp7InJ1bGUiOiJmb3JiaWQiLCJpbiI6dHJ1ZSwic2luY2UiOjE3ODkwMDAwMDEuMCwiaW5jIjoiYWJjIn19LCJv"
    "ZmYiOnsiYWxlcnQiOiJhMSIsInNpbmNlIjoxNzg5MDAwMDAxLjB9fX19AAAgUH6o2kEAAIBQfqjaQXsUrkfhejhAAAAAAACAOEDD"
    "9Shcj4JdQGZmZmZmhl1AAAAAAAAQWUAAAAAAAADwPwAAAAAAAAzAAAAAAAAAAECPwvUoXC9FQAAAAAAAAPh/AwAQAAAAAAD/////"
    "/////wAF")
OLD_STATES = {
    "闽DH0001": {"ts": 1789000000.5, "lat": 24.48, "lon": 118.04, "x": 100.25, "y": -3.5, "class": "hazmat",
                "speed": 42.37, "zones": {}, "pos": 1 << 20 | 3},
    "bus-7": {"ts": 1789000002.0, "lat": 24.5, "lon": 118.1, "x": 1.0, "y": 2.0, "class": "bus", "speed": None,
              "zones": {"haicang-tunnel": {"rule": "forbid", "in": True, "since": 1789000001.0, "inc": "abc"}},
              "off": {"alert": "a1", "since": 1789000001.0}},
}


def test_a_block_of_the_previous_version_still_unpacks_and_the_layout_is_the_same():
    old = PartitionFleet.unpack(OLD_BLOCK)
    assert dict(old.items()) == OLD_STATES and old.alarm[:2].tolist() == [0, 0]
    now = PartitionFleet(capacity=1)
    for vid, s in OLD_STATES.items():
        now.put_state(vid, s)
    assert now.pack() == OLD_BLOCK           # no alarm open: byte for byte what the previous version wrote
    store = FleetStore({"#fleet/0/0/0": OLD_BLOCK}, partition_of=lambda key: 0)
    assert store.get(0, "bus-7") == OLD_STATES["bus-7"]
    sos = {**OLD_STATES["闽DH0001"], "ts": 1789000010.0, "alarms": {"emergency": 1789000010.0,
                                                                   "fatigue": 1789000005.0}}
    store.put(0, "闽DH0001", sos, durable=True)
    block = store.fleet(0).pack()
    assert block[:4] == OLD_BLOCK[:4]        # the same version: a worker of the previous version reads it
    back = PartitionFleet.unpack(block)
    assert back.state("闽DH0001") == sos and back.alarm[:2].tolist() == [SOS | FATIGUE, 0]
    joined = PartitionFleet()
    joined.put_state("other", OLD_STATES["bus-7"])
    joined.extend(back)                      # how FleetStore lays blocks end to end
    assert joined.alarm[:3].tolist() == [0, SOS | FATIGUE, 0]


def test_a_block_with_malformed_alarms_is_refused():
    f = PartitionFleet()
    f.put_state("v", {**OLD_STATES["bus-7"], "alarms": {"emergency": 1.0}})
    good = b'"alarms":{"emergency":1.0}'
    bad = f.pack().replace(good, b'"alarms":["emergency"]'.ljust(len(good)))   # the same length: a valid record
    assert len(bad) == len(f.pack()) and bad != f.pack()
    with pytest.raises(ValueError, match="alarms"):
        PartitionFleet.unpack(bad)


# --- the fast lane -----------------------------------------------------------------------------------------


def test_only_fixes_whose_alarm_bits_differ_from_the_stored_ones_leave_the_fast_lane():
    r, fleet = Run(ZONES), PartitionFleet()
    res = check_into(r, fleet, [far("none", 0, None), far("clear", 0, 0), far("other", 0, 1 << 3 | 1 << 20),
                                far("sos", 0, SOS)])
    assert sorted(res.moves.vehicles) == ["clear", "none", "other"] and list(res.states) == ["sos"]
    assert view(res.alerts) == [("vehicle.emergency", 0)] and fleet.alarm[fleet.rows["sos"]] == SOS
    res = check_into(r, fleet, [far("sos", 10, SOS), far("sos", 20, None), far("sos", 30, SOS | 1 << 9)])
    assert res.moves.vehicles == ["sos"] and not res.states and not res.alerts    # repeats: columns only
    assert fleet.state("sos")["ts"] == T0 + 30 and fleet.state("sos")["alarms"] == {"emergency": T0}
    res = check_into(r, fleet, [far("sos", 40, 0), far("clear", 40, 0)])
    assert list(res.states) == ["sos"] and res.moves.vehicles == ["clear"]
    assert view(res.alerts) == [("vehicle.emergency_cleared", 40)] and fleet.alarm[fleet.rows["sos"]] == 0
    res = check_into(r, fleet, [far("sos", 50, 1 << 3)])
    assert res.moves.vehicles == ["sos"] and not res.alerts


@pytest.mark.parametrize("invalid_fix", [True, False])
def test_a_valid_status_word_stays_on_the_fast_lane_and_an_invalid_one_is_decided_as_before(invalid_fix):
    tuning = Settings().replace(filters={"invalid_fix": invalid_fix})
    batch = [far("valid", 0, None, status_flags=0b10), far("valid2", 0, None, status_flags=0x8000_0003),
             far("invalid", 0, None, status_flags=0b01), far("zero", 0, None, status_flags=0)]
    lanes, per_fix = Run(ZONES, settings=tuning), Run(ZONES, settings=tuning)
    res = check_into(lanes, PartitionFleet(), batch)
    ref = per_fix.feed(*batch)
    expect_invalid = {"invalid", "zero"} if invalid_fix else set()
    assert {x.vehicle_id for x in res.rejections} == {x.vehicle_id for x in ref.rejections} == expect_invalid
    assert {x.reason for x in res.rejections} <= {"invalid_fix"}
    assert sorted(res.moves.vehicles) == sorted({"valid", "valid2", "invalid", "zero"} - expect_invalid)
    assert res.states == {} and (res.checked, res.late) == (ref.checked, ref.late)


# --- properties --------------------------------------------------------------------------------------------

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FLAGS = st.sampled_from([None, None, 0, 0, SOS, SOS, OVERSPEED, FATIGUE, SOS | FATIGUE, 7, 1 << 8, SOS | 1 << 31])


QUALITY = [{}] * 6 + [{"status_flags": 2}, {"status_flags": 0}, {"valid": False}, {"accuracy_m": 80},
                      {"jump": 50_000.0}]


@st.composite
def alarm_stream(draw, *, disorder: bool, rejected: bool = True):
    """Vehicles reporting alarm bits, far from the zone or driving through it; with GPS-quality flags and
    teleports (fixes the filters reject) when ``rejected``, and late fixes and repeats when ``disorder``."""
    fixes: list[Fix] = []
    for v in range(draw(st.integers(1, 3))):
        through = draw(st.booleans())     # along a road through the zone, or 5 km away
        t = 0.0
        for _ in range(draw(st.integers(1, 25))):
            t += draw(st.sampled_from([1, 5, 10, 30]))
            kw = dict(draw(st.sampled_from(QUALITY))) if rejected else {}
            east = (-400 + 8 * t if through else FAR + 8 * t) + kw.pop("jump", 0.0)
            fixes.append(fix(f"v{v}", t, east, 100, alarm_flags=draw(FLAGS), **kw))
    arrival = sorted(fixes, key=lambda f: f.ts) if draw(st.booleans()) else fixes
    if disorder:
        arrival = list(arrival)
        for _ in range(draw(st.integers(0, 6))):
            i = draw(st.integers(0, len(arrival) - 1))
            arrival.append(arrival.pop(i) if draw(st.booleans()) else arrival[i])
    cuts = sorted(draw(st.lists(st.integers(0, len(arrival)), max_size=8)))
    return [b for b in (arrival[a:b] for a, b in zip([0, *cuts], [*cuts, len(arrival)])) if b]


def reference(fixes: list[Fix]) -> list[tuple]:
    """The episodes of an in-order stream of fixes (accepted or rejected by a GPS filter: all live), by brute
    force: (vehicle, kind, ts, ids, duration)."""
    out = []
    opened: dict[tuple[str, str], float] = {}
    for f in sorted(fixes, key=lambda f: (f.vehicle_id, f.ts)):
        if f.alarm_flags is None:
            continue
        for bit, kind in ((0, "vehicle.emergency"), (1, "vehicle.overspeed_alarm"), (2, "vehicle.fatigue_alarm")):
            key = (f.vehicle_id, kind)
            if f.alarm_flags >> bit & 1 and key not in opened:
                opened[key] = f.ts
                aid = episode_id(f.vehicle_id, kind, f.ts)
                out.append((f.vehicle_id, kind, round(f.ts - T0, 3), aid, aid, None))
            elif not f.alarm_flags >> bit & 1 and key in opened:
                since = opened.pop(key)
                aid = episode_id(f.vehicle_id, kind, since)
                out.append((f.vehicle_id, f"{kind}_cleared", round(f.ts - T0, 3), None, aid, f.ts - since))
    return sorted(out, key=str)


def episodes(alerts: list[dict]) -> list[tuple]:
    out = []
    for a in alerts:
        if a["kind"].startswith("vehicle."):
            opening = not a["kind"].endswith("_cleared")
            out.append((a["vehicle_id"], a["kind"], round(at(a), 3), a["alert_id"] if opening else None,
                        a["incident_id"], a.get("duration_s")))
    return sorted(out, key=str)


@PROPERTY
@given(alarm_stream(disorder=False, rejected=False) | alarm_stream(disorder=False))
def test_episodes_of_an_in_order_stream_equal_the_brute_force_reference(batches):
    r = Run(ZONES)
    for b in batches:
        r.feed(*b)
    fixes = [f for b in batches for f in b]
    assert {x.reason for x in r.rejections} <= {"invalid_fix", "poor_accuracy", "implausible_jump"}
    assert episodes(r.alerts) == reference(fixes)
    # Where each alert places the vehicle: its fix, else its newest accepted fix before, else nowhere.
    refused = {(x.vehicle_id, orjson.loads(x.raw)["ts"]) for x in r.rejections}
    for a in r.alerts:
        if a["kind"].startswith("vehicle."):
            ts = T0 + at(a)
            placed = [f for f in fixes if f.vehicle_id == a["vehicle_id"] and (f.vehicle_id, f.ts) not in refused
                      and f.ts <= ts + 1e-3]
            if placed and abs(placed[-1].ts - ts) < 1e-3:
                assert a["position"] == "fix" and (a["lat"], a["lon"]) == (placed[-1].lat, placed[-1].lon)
            elif placed:
                assert a["position"] == "last_known" and a["position_ts"] == to_iso(placed[-1].ts, ZoneInfo(TZ))
                assert (a["lat"], a["lon"]) == (placed[-1].lat, placed[-1].lon) and a["speed_kmh"] is None
            else:
                assert a["position"] == "none" and a["lat"] is None and "position_ts" not in a


def comparable(states: dict[str, dict]) -> dict:
    """States as JSON reads them back (NaN: null), so a state without a position compares equal."""
    return orjson.loads(orjson.dumps(states))


def fleet_states(fleet: PartitionFleet) -> dict[str, dict]:
    """Every vehicle of ``fleet`` as the per-fix path reads it, those without a position included."""
    view = FleetStates(fleet)
    return {vid: s for vid in fleet.ids if (s := view.get(vid)) is not None}


@PROPERTY
@given(alarm_stream(disorder=True), st.booleans())
def test_the_columns_give_what_the_per_fix_path_gives_and_episodes_alternate(batches, with_positions):
    per_fix, columns, fleet = Run(ZONES), Run(ZONES), PartitionFleet(capacity=1)
    for i, batch in enumerate(batches):
        positions = [log_position(i, k) for k in range(len(batch))] if with_positions else None
        a = per_fix.checker.check(batch, per_fix.states, positions)
        b = check_into(columns, fleet, batch, None if positions is None else np.array(positions, dtype=np.int64))
        per_fix.states.update(a.states)
        per_fix.alerts += a.alerts
        assert comparable(fleet_states(fleet)) == comparable(per_fix.states)
        assert sorted(map(repr, b.alerts)) == sorted(map(repr, a.alerts))
        assert rejected(b.rejections) == rejected(a.rejections)
        for vid, s in per_fix.states.items():       # the column is the bits of the stored episodes
            assert fleet.alarm[fleet.rows[vid]] == alarms_module.open_bits(s.get("alarms"))
    seq: dict[tuple[str, str], list[dict]] = {}
    for a in per_fix.alerts:
        if a["kind"].startswith("vehicle."):
            seq.setdefault((a["vehicle_id"], a["kind"].removesuffix("_cleared")), []).append(a)
    for (_, kind), alerts in seq.items():
        kinds = [a["kind"] for a in alerts]
        assert kinds == [kind, f"{kind}_cleared"] * (len(kinds) // 2) + [kind] * (len(kinds) % 2), kinds
        for opened, cleared in zip(alerts[::2], alerts[1::2]):
            assert cleared["incident_id"] == opened["alert_id"] and cleared["duration_s"] > 0
    ids = Counter(a["alert_id"] for a in per_fix.alerts if a["kind"].startswith("vehicle."))
    assert not [k for k, n in ids.items() if n > 1]   # (late zone alerts repeat their window's id by design)


def test_the_modules_examples_run():
    for module in (alarms_module, fleet_module):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__



def test_an_episode_of_a_vehicle_without_a_position_survives_a_restart_from_the_journal():
    store = FleetStore({}, partition_of=lambda key: 0)
    [opened] = feed_store(Run(ZONES), store, [far("g", 0, SOS, status_flags=0)])   # no lock since it started
    assert opened["position"] == "none"
    restarted = FleetStore(dict(store.table), partition_of=lambda key: 0)          # killed before a checkpoint
    assert feed_store(Run(ZONES), restarted, [far("g", 10, SOS, status_flags=0)]) == []   # the same episode
    [cleared] = feed_store(Run(ZONES), restarted, [far("g", 20, 0)])
    assert cleared["kind"] == "vehicle.emergency_cleared" and cleared["incident_id"] == opened["alert_id"]
