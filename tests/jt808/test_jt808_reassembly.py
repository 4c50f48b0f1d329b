"""Reassembler: packets in any order, timeouts on a FakeClock, the bound on pending messages."""

from __future__ import annotations

import random

import pytest

from engine.core.clock import FakeClock
from engine.jt808.codec import decode_frame, encode_packets
from engine.jt808.header import FrameError, Header
from engine.jt808.location import LocationBatch, decode_location
from engine.jt808.messages import decode_body, encode_body
from engine.jt808.reassembly import Reassembler
from tests.jt808.helpers import PHONE_2013, header_2013, location_body, on_wire, word


def _packet(serial: int, total: int, index: int, data: bytes, msg_id: int = 0x0704,
            phone: str = PHONE_2013) -> tuple[Header, bytes]:
    """One sub-packaged frame built by hand, decoded: (header, body bytes)."""
    header, body = decode_frame(on_wire(header_2013(msg_id, len(data), phone, serial, packet=(total, index)) + data))
    assert isinstance(body, bytes)
    return header, body


def _reassembler(**kw) -> tuple[Reassembler, FakeClock]:
    clock = FakeClock()
    return Reassembler(clock=clock, **{"max_packets": 16, "timeout_s": 30.0, **kw}), clock


def test_out_of_order_packets_join_in_index_order():
    r, _ = _reassembler()
    parts = [b"AAA", b"BBBB", b"C"]
    packets = [_packet(100 + i, 3, i + 1, p) for i, p in enumerate(parts)]
    assert r.add(*packets[2]) is None and r.add(*packets[0]) is None and r.pending == 1
    header, body = r.add(*packets[1])
    assert body == b"AAABBBBC" and header.packet_index == 1 and header.serial == 100 and r.pending == 0


def test_a_large_batch_sub_packaged_and_shuffled():
    locations = tuple(decode_location(location_body(speed=10 * n, time_bcd=f"2609081000{n:02d}")) for n in range(40))
    msg_id, body = encode_body(LocationBatch(1, locations))
    assert len(body) > 1023  # too long for one packet
    frames = encode_packets(Header(msg_id, PHONE_2013, 0xFFF0), body, packet_size=200)
    assert len(frames) == 7
    random.Random(1).shuffle(frames)
    r, _ = _reassembler()
    done = [out for f in frames if (out := r.add(*decode_frame(f))) is not None]
    assert len(done) == 1
    header, joined = done[0]
    assert header.first_serial == 0xFFF0 and joined == body
    assert decode_body(header, joined) == LocationBatch(1, locations)


def test_serials_wrap_around():
    r, _ = _reassembler()
    assert r.add(*_packet(0xFFFF, 2, 1, b"x")) is None
    assert r.add(*_packet(0x0000, 2, 2, b"y")) == (_packet(0xFFFF, 2, 1, b"x")[0], b"xy")


def test_messages_are_kept_apart_by_phone_id_and_first_serial():
    r, _ = _reassembler()
    assert r.add(*_packet(10, 2, 1, b"a")) is None
    assert r.add(*_packet(10, 2, 1, b"b", phone="013900000000")) is None
    assert r.add(*_packet(10, 2, 1, b"c", msg_id=0x0801)) is None
    assert r.add(*_packet(20, 2, 1, b"d")) is None
    assert r.pending == 4
    assert r.add(*_packet(11, 2, 2, b"A", phone="013900000000"))[1] == b"bA"
    assert r.add(*_packet(21, 2, 2, b"D"))[1] == b"dD"


def test_timeout_drops_an_incomplete_message():
    r, clock = _reassembler(timeout_s=30.0)
    assert r.add(*_packet(1, 2, 1, b"a")) is None
    clock.advance(29.0)
    assert r.expire() == 0 and r.pending == 1
    clock.advance(1.0)
    assert r.add(*_packet(2, 2, 2, b"b")) is None  # packet 1 expired first: this one starts a new message
    assert r.dropped_timeout == 1 and r.pending == 1
    clock.advance(30.0)
    assert r.expire() == 1 and r.pending == 0 and r.dropped_timeout == 2


def test_a_message_completed_in_time_is_not_dropped():
    r, clock = _reassembler(timeout_s=30.0)
    r.add(*_packet(1, 2, 1, b"a"))
    clock.advance(29.9)
    assert r.add(*_packet(2, 2, 2, b"b"))[1] == b"ab" and r.dropped_timeout == 0


def test_pending_messages_are_bounded_oldest_dropped():
    r, _ = _reassembler(max_pending=2)
    for serial in (10, 20, 30):
        assert r.add(*_packet(serial, 2, 1, bytes([serial]))) is None
    assert r.pending == 2 and r.dropped_overflow == 1
    assert r.add(*_packet(11, 2, 2, b"x")) is None  # message 10 was dropped: a new one, evicting 20
    assert r.dropped_overflow == 2
    assert r.add(*_packet(31, 2, 2, b"y")) == (_packet(30, 2, 1, b"\x1e")[0], b"\x1ey")


def test_duplicates_keep_the_first_copy():
    r, _ = _reassembler()
    r.add(*_packet(1, 2, 1, b"a"))
    assert r.add(*_packet(1, 2, 1, b"z")) is None and r.duplicates == 1
    assert r.add(*_packet(2, 2, 2, b"b"))[1] == b"ab"


def test_totals_that_disagree():
    r, _ = _reassembler()
    r.add(*_packet(1, 3, 1, b"a"))
    with pytest.raises(FrameError) as caught:
        r.add(*_packet(2, 4, 2, b"b"))
    assert caught.value.reason == "bad_header" and caught.value.header.serial == 2


def test_not_sub_packaged_comes_straight_back():
    r, _ = _reassembler()
    header = Header(0x0200, PHONE_2013, 5)
    assert r.add(header, b"body") == (header, b"body") and r.pending == 0


def test_bad_index_from_a_hand_made_header():
    r, _ = _reassembler()
    with pytest.raises(FrameError) as caught:
        r.add(Header(0x0704, PHONE_2013, 5, packet_total=2, packet_index=0), b"")
    assert caught.value.reason == "bad_header"


def test_encode_packets_headers_by_hand():
    frames = encode_packets(Header(0x0704, PHONE_2013, 7), word(0) + b"\x00", packet_size=2)
    assert frames == [on_wire(header_2013(0x0704, 2, PHONE_2013, 7, packet=(2, 1)) + b"\x00\x00"),
                      on_wire(header_2013(0x0704, 1, PHONE_2013, 8, packet=(2, 2)) + b"\x00")]


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        Reassembler(max_packets=0, timeout_s=1, clock=FakeClock())
    with pytest.raises(ValueError):
        Reassembler(max_packets=1, timeout_s=0, clock=FakeClock())
