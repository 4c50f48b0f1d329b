"""Fleet simulator: fix contract, report intervals, the scripted violation, MQTT publishing.

Everything but the last section runs on a fake clock, without a broker.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from shapely.geometry import LineString, Point, Polygon

from simulators.fleet import SCRIPTED_PLATE, Fleet, FleetConfig
from simulators.mqtt_publisher import MqttPublisher
from simulators.routes import ALL_ROUTES, HAZMAT_ROUTES, PLACES, XIAMEN_BOUNDS, Route

START = datetime(2026, 9, 8, 2, 0, tzinfo=UTC)  # 10:00 in Xiamen
TUNNEL = Polygon([[118.0400, 24.4800], [118.0800, 24.4815], [118.0800, 24.4830],
                  [118.0400, 24.4815], [118.0400, 24.4800]])
ISLAND = Polygon([[118.077, 24.443], [118.078, 24.458], [118.080, 24.470], [118.076, 24.480],
                  [118.070, 24.490], [118.073, 24.503], [118.083, 24.520], [118.092, 24.540],
                  [118.103, 24.553], [118.118, 24.559], [118.135, 24.562], [118.155, 24.556],
                  [118.172, 24.545], [118.185, 24.537], [118.196, 24.525], [118.198, 24.505],
                  [118.192, 24.485], [118.180, 24.462], [118.165, 24.446], [118.145, 24.433],
                  [118.125, 24.427], [118.105, 24.431], [118.090, 24.436], [118.077, 24.443]])
REQUIRED = {"vehicle_id": str, "class": str, "ts": str, "lat": float, "lon": float,
            "speed_kmh": (int, float), "heading": int, "accuracy_m": (int, float),
            "alarm_flags": int}
PLATE = re.compile(r"^闽D([A-Z0-9]{5}|\d{4}警)$")


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FakeStop:
    """Stands in for threading.Event in Fleet.run: waiting advances the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.waits = clock, 0

    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        self.clock.now += timedelta(seconds=timeout or 0.0)
        return False


def simulate(config: FleetConfig, seconds: float, step_s: float = 1.0) -> list[tuple[str, bytes]]:
    """Every (topic, payload) the fleet produces over ``seconds`` of clock time."""
    clock = FakeClock()
    fleet = Fleet(config, clock, publish=lambda *a: None)
    out = []
    for k in range(int(round(seconds / step_s))):
        clock.now = START + timedelta(milliseconds=round(k * step_s * 1000))
        out += fleet.tick(clock.now)
    return out


def fixes_by_vehicle(produced: list[tuple[str, bytes]]) -> dict[str, list[dict]]:
    by = defaultdict(list)
    for _, payload in produced:
        fix = json.loads(payload.decode("utf-8"))
        by[fix["vehicle_id"]].append(fix)
    return by


# -- the fix contract -------------------------------------------------------------------

@pytest.mark.parametrize("speedup", [1.0, 3.0])
def test_every_fix_matches_the_contract(speedup: float) -> None:
    config = FleetConfig(seed=7, speedup=speedup)
    produced = simulate(config, 120, step_s=0.7)  # fractional seconds in ts too
    assert len(produced) > 300
    min_lon, min_lat, max_lon, max_lat = XIAMEN_BOUNDS
    for topic, payload in produced:
        fix = json.loads(payload.decode("utf-8"))
        for key, types in REQUIRED.items():
            assert isinstance(fix[key], types), (key, fix)
        assert not isinstance(fix["heading"], bool)
        assert topic == f"citywatch/fixes/{fix['vehicle_id']}"
        assert not set("/+#") & set(fix["vehicle_id"])
        assert PLATE.match(fix["vehicle_id"]), fix["vehicle_id"]
        assert fix["class"] in config.counts
        ts = datetime.fromisoformat(fix["ts"])
        assert ts.utcoffset() == timedelta(hours=8) and fix["ts"][-6:] == "+08:00"
        assert START <= ts < START + timedelta(seconds=120)
        assert min_lat <= fix["lat"] <= max_lat and min_lon <= fix["lon"] <= max_lon
        assert 0 <= fix["heading"] <= 359
        assert fix["speed_kmh"] >= 0 and 0 < fix["accuracy_m"] <= 15


def test_fleet_size_and_unique_plates() -> None:
    fleet = Fleet(FleetConfig(seed=3), FakeClock(), publish=lambda *a: None)
    assert len(fleet.vehicles) == sum(FleetConfig().counts.values())
    assert len({v.vehicle_id for v in fleet.vehicles}) == len(fleet.vehicles)
    police = [v.vehicle_id for v in fleet.vehicles if v.vclass == "police"]
    assert police and all(p.endswith("警") for p in police)
    assert sum(FleetConfig().with_total(100).counts.values()) == 100
    assert sum(FleetConfig().with_total(7).counts.values()) == 7


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Fleet(FleetConfig(), lambda: datetime(2026, 9, 8, 10), publish=lambda *a: None)


@pytest.mark.parametrize("bad", [{"qos": 3}, {"speedup": 0}, {"topic_prefix": "a/#"},
                                 {"counts": {"tram": 2}}])
def test_bad_config_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="bad FleetConfig"):
        FleetConfig(**bad)


# -- report intervals -------------------------------------------------------------------

@pytest.mark.parametrize("speedup", [1.0, 2.0])
def test_reports_follow_the_per_class_intervals(speedup: float) -> None:
    config = FleetConfig(seed=11, speedup=speedup)
    clock_s = 60.0 / speedup  # 60 simulated seconds
    fleet = Fleet(config, FakeClock(), publish=lambda *a: None)
    phases = {v.vehicle_id: v.phase_s for v in fleet.vehicles}
    by = fixes_by_vehicle(simulate(config, clock_s, step_s=0.1 / speedup))
    assert set(by) == set(phases)
    for vid, fixes in by.items():
        interval = config.intervals_s[fixes[0]["class"]]
        expected = sum(1 for k in range(100) if phases[vid] + k * interval < 60.0 - 1e-9)
        assert len(fixes) == expected, vid
        times = [datetime.fromisoformat(f["ts"]) for f in fixes]
        gaps = {round((b - a).total_seconds() * speedup, 3) for a, b in zip(times, times[1:])}
        assert gaps == {interval}, (vid, gaps)


def test_phases_spread_reports_over_time() -> None:
    fleet = Fleet(FleetConfig(seed=5), FakeClock(), publish=lambda *a: None)
    assert len({v.phase_s for v in fleet.vehicles}) > len(fleet.vehicles) // 2


def test_run_publishes_what_tick_produces_without_sleeping() -> None:
    config = FleetConfig(seed=2)
    clock = FakeClock()
    sent: list[tuple[str, bytes, int]] = []
    fleet = Fleet(config, clock, publish=lambda t, p, q: sent.append((t, p, q)))
    stop = FakeStop(clock)
    count = fleet.run(stop, duration=60)
    assert count == len(sent) == len(simulate(config, 60, step_s=0.1))
    assert {q for _, _, q in sent} == {1}
    assert clock.now - START >= timedelta(seconds=60)


# -- the scripted violation -------------------------------------------------------------

def test_scripted_truck_drives_through_the_haicang_tunnel(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simulators.fleet")
    track = fixes_by_vehicle(simulate(FleetConfig(seed=1), 90))[SCRIPTED_PLATE]
    assert {f["class"] for f in track} == {"hazmat"}
    assert (track[0]["lon"], track[0]["lat"], track[0]["heading"]) == (118.035, 24.4815, 90)
    assert len(track) == 18  # every 5 s
    points = [(f["lon"], f["lat"]) for f in track]
    inside = [TUNNEL.intersects(Point(p)) for p in points]
    crossing = [TUNNEL.intersects(LineString([a, b])) for a, b in zip(points, points[1:])]
    assert any(inside) or any(crossing)
    assert not inside[0]  # it starts outside, so this is an entry
    assert "scripted: hazmat truck 闽DH0001 heading into Haicang Tunnel" in caplog.text


def test_scripted_truck_goes_on_to_the_island_and_stays_out_of_the_tunnel() -> None:
    track = fixes_by_vehicle(simulate(FleetConfig(seed=1), 3600, step_s=5))[SCRIPTED_PLATE]
    after = [f for f in track if datetime.fromisoformat(f["ts"]) >= START + timedelta(minutes=7)]
    assert after and all(ISLAND.contains(Point(f["lon"], f["lat"])) for f in after)


def test_scripted_truck_can_be_left_out() -> None:
    fleet = Fleet(FleetConfig(scripted_violation=False), FakeClock(), publish=lambda *a: None)
    assert SCRIPTED_PLATE not in {v.vehicle_id for v in fleet.vehicles}


# -- determinism ------------------------------------------------------------------------

def test_same_seed_same_fixes_other_seed_other_fixes() -> None:
    a = simulate(FleetConfig(seed=42), 120)
    assert a == simulate(FleetConfig(seed=42), 120)
    assert a != simulate(FleetConfig(seed=43), 120)


# -- routes -----------------------------------------------------------------------------

def test_routes_stay_in_xiamen_and_hazmat_routes_avoid_the_tunnel() -> None:
    min_lon, min_lat, max_lon, max_lat = XIAMEN_BOUNDS
    for route in ALL_ROUTES:
        for lon, lat in route.waypoints:
            assert min_lon <= lon <= max_lon and min_lat <= lat <= max_lat, route.name
    for route in HAZMAT_ROUTES:
        assert not LineString(route.waypoints).intersects(TUNNEL), route.name
    for name in ("railway_station", "lianqian", "huli", "zhongshan_road", "xiamen_university"):
        assert ISLAND.contains(Point(PLACES[name])), name


def test_route_interpolation_and_heading() -> None:
    r = Route("L", ((118.0, 24.5), (118.01, 24.5), (118.01, 24.51)))
    east = r.at(0.0)
    assert east == (118.0, 24.5, 90)
    lon, lat, heading = r.at(r.length_m)
    assert (round(lon, 9), round(lat, 9), heading) == (118.01, 24.51, 0)
    assert 2000 < r.length_m < 2200  # ~1013 m east + ~1112 m north
    assert r.bounce(r.length_m + 1.0)[2] == 180  # turned round: driving south
    assert r.bounce(2 * r.length_m + 1.0)[2] == 90  # and round again
    with pytest.raises(ValueError):
        Route("dot", ((118.0, 24.5), (118.0, 24.5)))


# -- MqttPublisher: retry logic on a fake client ----------------------------------------

class FakeClient:
    """Enough of paho's Client for MqttPublisher; publish answers with scripted rcs."""

    def __init__(self, rcs: list[int]) -> None:
        self.rcs, self.published = list(rcs), []
        self.on_publish = self.on_connect = self.on_disconnect = None

    def __getattr__(self, name: str):  # setup calls: max_*_set, reconnect_delay_set, ...
        return lambda *a, **k: None

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> mqtt.MQTTMessageInfo:
        info = mqtt.MQTTMessageInfo(len(self.published) + 1)
        info.rc = self.rcs.pop(0) if self.rcs else mqtt.MQTT_ERR_SUCCESS
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.published.append(topic)
            self.on_publish(self, None, info.mid, None, None)
        return info


def test_publisher_retries_while_paho_refuses() -> None:
    client = FakeClient([mqtt.MQTT_ERR_QUEUE_SIZE] * 3)
    pub = MqttPublisher("h", 1, "t", client=client)
    assert pub.publish("citywatch/fixes/x", b"{}", 1) is True
    assert (pub.accepted, pub.sent, pub.refused, pub.failed) == (1, 1, 3, 0)
    assert client.published == ["citywatch/fixes/x"]


def test_publisher_counts_what_it_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    client = FakeClient([mqtt.MQTT_ERR_QUEUE_SIZE] * 10_000)
    pub = MqttPublisher("h", 1, "t", client=client, retry_timeout_s=0.05)
    assert pub.publish("citywatch/fixes/x", b"{}", 1) is False
    assert pub.failed == 1 and pub.accepted == 0 and pub.refused >= 1
    assert "given up" in caplog.text


def test_publisher_treats_qos1_no_conn_as_queued_but_retries_qos0() -> None:
    client = FakeClient([mqtt.MQTT_ERR_NO_CONN, mqtt.MQTT_ERR_NO_CONN])
    pub = MqttPublisher("h", 1, "t", client=client)
    assert pub.publish("a", b"1", 1) and (pub.accepted, pub.refused) == (1, 0)
    assert pub.publish("b", b"2", 0) and (pub.accepted, pub.refused) == (2, 1)


# -- MqttPublisher against a real mosquitto ---------------------------------------------

MOSQUITTO = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mosquitto(tmp_path):
    """A function starting mosquitto on a free loopback port; killed after the test."""
    port, procs, logs = _free_port(), [], []

    def start() -> int:
        conf = tmp_path / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        logs.append((tmp_path / "mosquitto.log").open("w"))
        procs.append(subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                      stderr=logs[-1]))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {port}: {(tmp_path / 'mosquitto.log').read_text()}")

    start.port = port
    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)
    for f in logs:
        f.close()


def _wait_for(predicate, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.mark.integration
@pytest.mark.skipif(MOSQUITTO is None, reason="no mosquitto binary on this machine")
def test_publisher_holds_and_retries_until_the_broker_comes_up(mosquitto) -> None:
    pub = MqttPublisher("127.0.0.1", mosquitto.port, "sim-test-late", max_inflight=2,
                        max_queued=5, reconnect_min_s=1, reconnect_max_s=1)
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.extend(
        pub.publish(f"citywatch/fixes/t{i}", b"{}", 1) for i in range(20)))
    worker.start()
    try:
        _wait_for(lambda: pub.refused > 0, "paho to refuse past max_queued")
        assert pub.accepted == 5 and pub.sent == 0  # queue full, nothing lost, nothing sent
        mosquitto()
        worker.join(timeout=30)
        assert results == [True] * 20
    finally:
        pub.close(timeout_s=10)
    assert (pub.accepted, pub.sent, pub.failed) == (20, 20, 0)


@pytest.mark.integration
@pytest.mark.skipif(MOSQUITTO is None, reason="no mosquitto binary on this machine")
def test_fleet_fixes_arrive_through_mosquitto(mosquitto) -> None:
    port = mosquitto()
    received: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sim-test-sub",
                      protocol=mqtt.MQTTv311)
    sub.on_message = lambda c, u, m: received.append((m.topic, m.payload))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    sub.subscribe("citywatch/fixes/#", qos=1)
    assert subscribed.wait(10)
    pub = MqttPublisher("127.0.0.1", port, "sim-test-pub", max_inflight=5, max_queued=10)
    try:
        clock = FakeClock()
        fleet = Fleet(FleetConfig(seed=9), clock, publish=pub.publish)
        fleet.run(FakeStop(clock), duration=120)
        pub.close(timeout_s=10)
        produced = simulate(FleetConfig(seed=9), 120, step_s=0.1)
        _wait_for(lambda: len(received) >= len(produced), "all fixes at the subscriber")
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert pub.failed == 0 and pub.sent == len(produced)
    assert Counter(received) == Counter(produced)
    assert any(t == f"citywatch/fixes/{SCRIPTED_PLATE}" for t, _ in received)
