"""The benchmark's raw-socket MQTT publisher (benchmarks/_mqtt_wire.py) against the real broker.

Packets encoded in bulk must arrive at a paho subscriber exactly, in order, with every PUBACK counted;
the raw load generator's fixes must be byte for byte what the paho one sends.
"""

from __future__ import annotations

import sys
import uuid
from collections import defaultdict

import orjson
import pytest

from engine.brokers.ports import free_port
from tests.conftest import ROOT, wait_for

sys.path.insert(0, str(ROOT / "benchmarks"))

from _mqtt_wire import (  # noqa: E402
    PINGREQ,
    AckReader,
    WirePublisher,
    next_packet_id,
    publish_batch,
    remaining_length,
    utf8_field,
)
from _workload import FIXES_TOPIC, FixBytes, Fleet, Grid, Publishers, PublisherSpec, _Blocks, _fix_dict  # noqa: E402


def test_remaining_length_is_base_128_least_significant_first():
    # The spec's boundary values (MQTT 3.1.1, table 2.4).
    assert [remaining_length(n) for n in (0, 127, 128, 16_383, 16_384, 268_435_455)] == [
        b"\x00", b"\x7f", b"\x80\x01", b"\xff\x7f", b"\x80\x80\x01", b"\xff\xff\xff\x7f"]
    with pytest.raises(ValueError, match="268,435,455"):
        remaining_length(268_435_456)


def test_bulk_publishes_arrive_exactly_and_in_order_with_every_puback_counted(mqtt_broker, mqtt_probe):
    prefix = f"wire{uuid.uuid4().hex[:8]}"
    probe = mqtt_probe([f"{prefix}/#"])
    n = 3000
    # Topics with multi-byte UTF-8, payloads from 1 byte to past 16 KiB (a 3-byte remaining length), and
    # identifiers starting near the top so they wrap from 65535 to 1 (never 0).
    topics = [utf8_field(f"{prefix}/闽D{i % 7:05d}") for i in range(n)]
    payloads = [b"%d:" % i + b"x" * (i % 300) for i in range(n)]
    payloads[1234] = b"big" + b"y" * 20_000
    first = 65_000
    data, after = publish_batch(topics, payloads, first)
    assert after == next_packet_id(first, n) == (first - 1 + n) % 65535 + 1

    wire = WirePublisher(mqtt_broker.host, mqtt_broker.port, f"test-wire-{uuid.uuid4().hex[:8]}")
    try:
        cut = len(data) // 3 + 1            # mid-packet: the broker reassembles the stream
        wire.send(data[:cut])
        wire.send(data[cut:])
        wire.send(PINGREQ)                  # its PINGRESP lands among the PUBACKs
        assert wire.wait_acked(n, 30), f"{wire.acked} of {n} PUBACKs within 30 s"
        wait_for(lambda: wire.read_acks(0.05) or wire.acks.pingresps, 10, "the PINGRESP")
        assert wire.acked == n and wire.acks.last_id == next_packet_id(first, n - 1) == 2464
    finally:
        wire.close()
    wait_for(lambda: len(probe.received()) >= n, 30, f"{n} messages at the subscriber")
    got = probe.received()
    assert [p for _, p in got] == payloads
    assert [t for t, _ in got] == [t[2:].decode() for t in topics]


def test_ack_reader_counts_pubacks_split_anywhere_and_around_pingresps():
    stream = b"".join(b"\x40\x02" + i.to_bytes(2, "big") for i in (0x4002, 2, 0x4040, 65535, 1))
    stream = stream[:8] + b"\xd0\x00" + stream[8:]      # a PINGRESP after the second PUBACK
    ends = [4, 8, 10, 14, 18, 22]                             # where each packet ends
    for cut in range(1, len(stream)):
        r = AckReader()
        first = r.feed(stream[:cut])
        assert first + r.pingresps == sum(e <= cut for e in ends), cut   # complete packets counted at once
        assert first + r.feed(stream[cut:]) == 5, cut
        assert (r.acked, r.last_id, r.pingresps) == (5, 1, 1)
    with pytest.raises(ValueError, match="0x30"):
        AckReader().feed(b"\x30\x03\x00\x01a")             # a PUBLISH: a publisher subscribes to nothing


def test_connecting_to_a_closed_port_names_the_address():
    port = free_port()
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        WirePublisher("127.0.0.1", port, "nobody", timeout=2)


def test_raw_fix_payloads_are_byte_for_byte_the_paho_publishers():
    for parked, speed in ((False, 40.0), (True, 0.0)):
        fleet = Fleet(Grid(400), 300, parked=parked)
        blocks = _Blocks(PublisherSpec(1, 3, fleet, 0, "single", 1, 1.0, None))
        idx, lon, lat, heading, _ = blocks.take(100)
        ts = [f"2026-09-08T10:00:00.{j:03d}+08:00" for j in range(len(idx))]
        raw = FixBytes(blocks, speed).encode(idx, [t.encode() for t in ts], lat, lon, heading)
        want = [orjson.dumps(_fix_dict(blocks, i, ts[j], lat[j], lon[j], heading[j], speed))
                for j, i in enumerate(idx)]
        assert raw == want and len(set(heading)) == (1 if parked else 2)


def test_raw_load_generator_sends_each_fix_once_stamped_strictly_increasing_per_vehicle(mqtt_broker, mqtt_probe):
    probe = mqtt_probe([f"{FIXES_TOPIC}/#"])
    fleet = Fleet(Grid(400), 250, prefix=f"闽T{uuid.uuid4().hex[:3].upper()}")
    total = 1000   # 4 fixes per vehicle, in batches of many messages per send
    pub = Publishers(fleet, mqtt_broker.port, "raw").run(n=1, shape="single", per_message=1, duration_s=60,
                                                          limit=total)
    assert pub["errors"] == [] and pub["sent_msgs"] == pub["acked_msgs"] == total

    def mine() -> list[tuple[str, bytes]]:
        return [(t, p) for t, p in probe.received() if t.startswith(f"{FIXES_TOPIC}/{fleet.prefix}")]

    wait_for(lambda: len(mine()) >= total, 30, f"{total} fixes at the subscriber")
    per_vehicle: dict[str, list[str]] = defaultdict(list)
    for topic, payload in mine():
        fix = orjson.loads(payload)
        assert topic == f"{FIXES_TOPIC}/{fix['vehicle_id']}"
        per_vehicle[fix["vehicle_id"]].append(fix["ts"])
    assert sorted(per_vehicle) == [fleet.vehicle_id(v) for v in range(250)]
    assert all(len(ts) == 4 and ts == sorted(set(ts)) for ts in per_vehicle.values())   # ISO, same offset
