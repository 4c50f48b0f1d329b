"""The real gateway on a free port against the session's Kafka broker: terminals over TCP, fixes read back.

One gateway (registry mode) serves the module from a thread of its own; each test is a client on its own event
loop. No timing is asserted: every wait is bounded by a timeout only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from engine.brokers.ports import free_port
from engine.jt808.codec import (
    encode_batch,
    encode_heartbeat,
    encode_location,
    encode_logout,
)
from engine.jt808.framing import check_code, escape
from engine.jt808.gateway.server import Gateway
from engine.jt808.header import Header, encode_header
from engine.jt808.location import Location
from engine.jt808.messages import GeneralResponse
from engine.kafka.metadata import wait_partitions
from engine.telemetry.models import Fix
from engine.telemetry.wire import decode_fixes
from simulators import jt808 as sim
from tests.conftest import isolated_settings, metric_value
from tests.jt808.terminal import Client
from tests.jt808.test_jt808_session import gateway_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WAIT_S = 20.0
TERMINALS = {  # phone: (plate, class, 2019 version or None)
    "13912340001": ("闽DH0001", "hazmat", None),
    "13912340002": ("闽DT0002", "taxi", 1),
    "13912340003": ("闽DB0003", "bus", None),
    "13912340004": ("闽DH0004", "hazmat", None),
    "13912340005": ("闽DT0005", "taxi", 1),
    "13912340006": ("闽DH0006", "hazmat", None),
}
SIM = sim.Options(terminals=4, phone_base=13800000000, interval_s=0.2, heartbeat_s=0.5, duration_s=2.0, ramp_s=0.2,
                  sos=True, reupload=True)


@dataclass
class Running:
    gateway: Gateway
    config: Any
    stop: Callable[[], None]

    @property
    def port(self) -> int:
        return self.config.jt808.port


def start_gateway(tmp_path, kafka_broker, mqtt_broker, *, bridge: dict[str, Any] | None = None,
                  **jt808: Any) -> Running:
    """A gateway on its own loop in a thread, listening once this returns."""
    registry = tmp_path / "terminals.csv"
    rows = [f"{p},{plate},{c}" for p, (plate, c, _) in TERMINALS.items()]
    rows += [",".join(sim.identity(i, SIM)) for i in range(SIM.terminals)]
    registry.write_text("phone,plate,class\n" + "\n".join(rows) + "\n", encoding="utf-8")
    settings = isolated_settings(tmp_path, kafka_broker, mqtt_broker, **({"bridge": bridge} if bridge else {}))
    config = gateway_config(settings, **{"port": free_port(), "metrics_port": free_port(), "terminals": str(registry),
                                         **jt808})
    t = config.kafka.topics
    gateway = Gateway(config, topic_specs={t.fixes: (config.kafka.partitions, {}),
                                           t.fixes_rejected: (config.kafka.partitions, {})})
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(gateway.run(stop)), daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while gateway.readiness()[0] != "ready":
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.05)

    def halt() -> None:
        loop.call_soon_threadsafe(stop.set)
        thread.join(WAIT_S)
        assert not thread.is_alive(), "the gateway did not stop"
        loop.close()

    return Running(gateway, config, halt)


@pytest.fixture(scope="module")
def gw(kafka_broker, mqtt_broker, tmp_path_factory) -> Iterator[Running]:
    running = start_gateway(tmp_path_factory.mktemp("jt808"), kafka_broker, mqtt_broker, max_bad_frames=3,
                            write_buffer_bytes=4096)
    yield running
    running.stop()


def bad_check_code(header: Header, body: bytes) -> bytes:
    """The frame of ``header`` and ``body`` with its check code one bit off."""
    payload = encode_header(header, len(body)) + body
    return b"\x7e" + escape(payload + bytes([check_code(payload) ^ 0x01])) + b"\x7e"


def location(ts: float, *, alarm: int = 0, status: int = 0b11, lat: float = 24.4815) -> Location:
    return Location(alarm, status, lat, 118.0894, 12, 42.5, 90, float(int(ts)), bool(status & 0b10))


class Topic:
    """A consumer assigned to every partition of a topic, from the start."""

    def __init__(self, bootstrap: str, name: str):
        self.bootstrap, self.name = bootstrap, name

    async def __aenter__(self) -> Topic:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                         auto_offset_reset="earliest")
        await self.consumer.start()
        async with asyncio.timeout(WAIT_S):   # from a fresh metadata request: Kafka's client view lacks the topic
            self.tps = await wait_partitions(self.consumer, self.name, 0.1)
        self.consumer.assign(self.tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def upto_now(self) -> list[bytes]:
        """Every record in the topic at the moment of the call (its end offsets then), no later one."""
        ends = await self.consumer.end_offsets(self.tps)
        await self.consumer.seek_to_beginning(*self.tps)
        out: list[bytes] = []
        async with asyncio.timeout(WAIT_S):
            while [tp for tp in self.tps if await self.consumer.position(tp) < ends[tp]]:
                for tp, records in (await self.consumer.getmany(*self.tps, timeout_ms=200)).items():
                    out += [r.value for r in records if r.offset < ends[tp]]
        return out

    async def until(self, found: Callable[[list[bytes]], bool]) -> list[bytes]:
        async with asyncio.timeout(WAIT_S):
            while not found(values := await self.upto_now()):
                await asyncio.sleep(0.1)
        return values


def fixes_of(values: list[bytes], plate: str) -> list[Fix]:
    return [f for v in values for f in decode_fixes(v) if f.vehicle_id == plate]


def test_2013_and_2019_terminals_are_answered_only_once_kafka_has_their_fixes(gw: Running):
    async def run() -> None:
        async with Topic(gw.config.kafka.bootstrap, gw.config.kafka.topics.fixes) as fixes:
            for phone in ("13912340001", "13912340002"):
                plate, vclass, version = TERMINALS[phone]
                ts = time.time() - 5
                async with Client(gw.port, phone, version) as c:
                    await c.login(TERMINALS[c.phone][0])
                    answer = await c.report(location(ts, alarm=0b1, status=0x403))
                    in_kafka = fixes_of(await fixes.upto_now(), plate)  # right when the answer came
                    assert answer == GeneralResponse(c.serial, 0x0200, 0)
                [fix] = [f for f in in_kafka if f.ts == int(ts)]
                assert (fix.source, fix.vclass, fix.alarm_flags, fix.status_flags, fix.valid) == (
                    "jt808", vclass, 0b1, 0x403, True)
                assert (fix.lat, fix.lon, fix.speed_kmh, fix.heading) == (24.4815, 118.0894, 42.5, 90.0)

    asyncio.run(run())


def test_a_location_before_authentication_gets_result_1(gw: Running):
    async def run() -> None:
        async with Client(gw.port, "13912340003") as c:
            answer = await c.report(location(time.time()))
            assert answer.result == 1
            await c.login(TERMINALS[c.phone][0])  # and the connection goes on
            assert (await c.report(location(time.time()))).result == 0

    asyncio.run(run())


def test_a_bad_check_code_is_answered_2_recorded_as_hex_and_the_connection_stays(gw: Running):
    async def run() -> None:
        async with Client(gw.port, "13912340004") as c:
            await c.login(TERMINALS[c.phone][0])
            bad = bad_check_code(Header(0x0002, c.phone, c.next()), b"")
            assert (await c.ask(bad)).result == 2
            assert (await c.ask(encode_heartbeat(c.phone, c.next()))).result == 0
        async with Topic(gw.config.kafka.bootstrap, gw.config.kafka.topics.fixes_rejected) as rejected:
            docs = await rejected.until(lambda vs: any(orjson.loads(v)["raw"] == bad.hex() for v in vs))
        [doc] = [d for v in docs if (d := orjson.loads(v))["raw"] == bad.hex()]
        assert (doc["reason"], doc["source"], doc["topic"], doc["vehicle_id"]) == (
            "jt808_bad_check_code", "jt808", "jt808", "闽DH0004")

    asyncio.run(run())


def test_max_bad_frames_in_a_row_close_the_connection(gw: Running):
    async def run() -> None:
        async with Client(gw.port, "13912340005", 1) as c:
            def bad() -> bytes:
                return bad_check_code(Header(0x0002, c.phone, c.next(), 1), b"")

            for _ in range(2):
                assert (await c.ask(bad())).result == 2
            assert (await c.ask(bad())).result == 2  # the third in a row is answered, then the connection closed
            assert await c.closed()

    asyncio.run(run())


def test_a_client_that_never_reads_is_cut_off_and_does_not_delay_another(gw: Running):
    async def flood() -> None:
        loop = asyncio.get_running_loop()
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # its replies pile up at the gateway
        stalled.setblocking(False)
        beats = b"".join(encode_heartbeat("13912340006", n) for n in range(500))
        try:
            await loop.sock_connect(stalled, ("127.0.0.1", gw.port))
            async with asyncio.timeout(WAIT_S):
                while True:  # never reads a reply
                    await loop.sock_sendall(stalled, beats)
        except OSError:  # reset: the gateway cut it off
            pass
        finally:
            stalled.close()

    async def other() -> None:
        async with Client(gw.port, "13912340002", 1) as c:
            await c.login(TERMINALS[c.phone][0])
            for k in range(20):
                assert (await c.report(location(time.time() - 20 + k))).result == 0

    async def run() -> None:
        await asyncio.gather(flood(), other())

    asyncio.run(run())
    _, text = scrape(gw.config.jt808.metrics_port)
    assert metric_value(text, "citywatch_jt808_connections_total", result="closed_slow") >= 1


def test_a_blind_area_re_upload_reaches_kafka(gw: Running):
    async def run() -> None:
        old = [location(time.time() - 3600 + 60 * k) for k in range(3)]
        async with Client(gw.port, "13912340003") as c:
            await c.login(TERMINALS[c.phone][0])
            answer = await c.ask(encode_batch(c.phone, c.next(), old, kind=1))
            assert answer == GeneralResponse(c.serial, 0x0704, 0)
            assert (await c.ask(encode_logout(c.phone, c.next()))).result == 0
            assert await c.closed()  # a logout closes
        async with Topic(gw.config.kafka.bootstrap, gw.config.kafka.topics.fixes) as fixes:
            got = fixes_of(await fixes.upto_now(), "闽DB0003")
        assert {loc.ts for loc in old} <= {f.ts for f in got} and all(f.source == "jt808" for f in got)

    asyncio.run(run())


def test_the_simulator_holds_its_connections_and_is_answered(gw: Running):
    summary = asyncio.run(sim.run(dataclasses.replace(SIM, port=gw.port)))
    assert summary["connections_held"] == SIM.terminals and summary["authenticated"] == SIM.terminals
    assert summary["replies_ok"] == summary["frames_sent"] and summary["replies_missing"] == 0

    async def read() -> list[Fix]:
        async with Topic(gw.config.kafka.bootstrap, gw.config.kafka.topics.fixes) as fixes:
            return [f for v in await fixes.upto_now() for f in decode_fixes(v)]

    plates = {sim.identity(i, SIM)[1] for i in range(SIM.terminals)}
    got = [f for f in asyncio.run(read()) if f.vehicle_id in plates]
    assert {f.vehicle_id for f in got} == plates and any(f.alarm_flags == 1 for f in got)  # the SOS
    assert len(got) == summary["fixes_sent"]


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_metrics_and_health(gw: Running):
    async def run() -> None:
        async with Client(gw.port, "13912340003") as c:
            assert (await c.ask(encode_heartbeat(c.phone, c.next()))).result == 0

    asyncio.run(run())  # this test may be the first on its gateway (xdist spreads the module's tests)
    status, body = scrape(gw.config.jt808.metrics_port, "/health")
    assert (status, orjson.loads(body)) == (200, {"status": "ready"})
    _, text = scrape(gw.config.jt808.metrics_port)
    assert metric_value(text, "citywatch_jt808_connections_total", result="accepted") >= 1
    assert metric_value(text, "citywatch_jt808_frames_total", msg_id="0x0002") >= 1
    assert metric_value(text, "citywatch_jt808_kafka_up") == 1


def test_connections_beyond_the_limit_are_refused_and_idle_ones_closed(kafka_broker, mqtt_broker, tmp_path):
    small = start_gateway(tmp_path, kafka_broker, mqtt_broker, max_connections=1, heartbeat_s=0.2)
    try:
        async def run() -> None:
            async with Client(small.port, "13912340001") as first:
                await first.ask(encode_heartbeat(first.phone, first.next()))
                async with Client(small.port, "13912340002") as second:
                    assert await second.closed()  # refused at once
                assert await first.closed()  # then silent for 3 heartbeats: closed

        asyncio.run(run())
        _, text = scrape(small.config.jt808.metrics_port)
        assert metric_value(text, "citywatch_jt808_connections_total", result="refused") == 1
        assert metric_value(text, "citywatch_jt808_connections_total", result="closed_idle") == 1
    finally:
        small.stop()


def test_max_pending_replies_stop_reading_and_a_stop_answers_what_is_held(kafka_broker, mqtt_broker, tmp_path):
    lingering = start_gateway(tmp_path, kafka_broker, mqtt_broker, max_pending_replies=1,
                              bridge={"batch_linger_ms": 1000})  # each fix waits for its batch to linger
    stopped = False
    try:
        async def run() -> None:
            nonlocal stopped
            async with Client(lingering.port, "13912340001") as c:
                await c.login(TERMINALS[c.phone][0])
                serials = [c.next() for _ in range(2)]
                c.writer.write(b"".join(encode_location(c.phone, n, location(time.time() - 9 + n)) for n in serials))
                for n in serials:  # read one at a time, every one answered
                    assert (await c.ask(b"", n)).result == 0
                _, text = scrape(lingering.config.jt808.metrics_port)
                assert metric_value(text, "citywatch_jt808_backpressure_total") >= 1  # the 2nd waited for the 1st
                # SIGTERM with a fix in its batch: flushed to Kafka, answered, then the connection closed
                c.writer.write(encode_location(c.phone, c.next(), location(time.time())))
                async with asyncio.timeout(WAIT_S):
                    while lingering.gateway.ingest.pending < 1:  # read by the gateway, in its batch
                        await asyncio.sleep(0.001)
                stopping = asyncio.create_task(asyncio.to_thread(lingering.stop))
                assert (await c.ask(b"")).result == 0
                assert await c.closed()
                await stopping
                stopped = True

        asyncio.run(run())
    finally:
        if not stopped:
            lingering.stop()
