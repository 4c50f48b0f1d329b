"""Every FrameError reason from a crafted frame, with the header carried whenever it could be read."""

from __future__ import annotations

import pytest

from engine.core.clock import FakeClock
from engine.core.errors import CitywatchError
from engine.jt808.codec import build_general_response, decode_frame
from engine.jt808.framing import FrameReader, unescape
from engine.jt808.header import REASONS, FrameError, Header
from engine.jt808.reassembly import Reassembler
from tests.jt808.helpers import (
    PHONE_2013,
    PHONE_2019,
    dword,
    header_2013,
    header_2019,
    location_body,
    location_frame,
    on_wire,
    stuff,
    word,
    xor_all,
)

HEARTBEAT = header_2013(0x0002, 0, PHONE_2013, 5)  # unescaped, no check code


def _location_item(items: bytes) -> bytes:
    return location_frame(location_body(items=items))


def _registration_2019(body: bytes) -> bytes:
    return on_wire(header_2019(0x0100, len(body), PHONE_2019, 1) + body)


# (id, frame on the wire, reason, message id of the carried header or None when it cannot be read)
CASES = [
    ("check code off by one bit", on_wire(HEARTBEAT, check=xor_all(HEARTBEAT) ^ 0x01), "bad_check_code", 0x0002),
    ("check code bad and phone not BCD", on_wire(header_2013(0x0002, 0, "01391234567f", 5), check=0),
     "bad_check_code", 0x0002),
    ("7d 03 in the body", b"\x7e" + stuff(HEARTBEAT) + b"\x7d\x03\x00\x7e", "bad_escape", 0x0002),
    ("7d 00 in the header", b"\x7e\x00\x02\x7d\x00" + stuff(HEARTBEAT[4:]) + b"\x7e", "bad_escape", None),
    ("trailing 7d", b"\x7e" + stuff(HEARTBEAT) + b"\x7d\x7e", "bad_escape", 0x0002),
    ("bare 7e inside", b"\x7e" + stuff(HEARTBEAT) + b"\x7e\x36\x7e", "bad_escape", 0x0002),
    ("three bytes", on_wire(b"\x00\x02"), "truncated", None),
    ("2013 header one byte short", on_wire(HEARTBEAT[:-1]), "truncated", None),
    ("2019 flag on a 2013-sized header", on_wire(word(0x0002) + word(0x4000) + bytes.fromhex(PHONE_2013)
                                                 + word(5)), "truncated", None),
    ("sub-packaged flag without packet fields", on_wire(word(0x0200) + word(0x2000) + bytes.fromhex(PHONE_2013)
                                                        + word(5)), "truncated", None),
    ("only the check code", on_wire(b""), "truncated", None),
    ("declared 5, present 3", on_wire(header_2013(0x8001, 5, PHONE_2013, 1) + b"\x00\x01\x02"),
     "length_mismatch", 0x8001),
    ("declared 0, present 2", on_wire(HEARTBEAT + b"\x00\x00"), "length_mismatch", 0x0002),
    ("0x0900 pass-through", on_wire(header_2013(0x0900, 2, PHONE_2013, 6) + b"\xf0\x01"), "unknown_message", 0x0900),
    ("0x0001 terminal general response", on_wire(header_2013(0x0001, 5, PHONE_2013, 6) + bytes(5)),
     "unknown_message", 0x0001),
    ("RSA-encrypted location", on_wire(header_2013(0x0200, 28, PHONE_2013, 6, encryption=1) + location_body()),
     "unknown_message", 0x0200),
    ("latitude 90.000001", location_frame(location_body(lat=90_000_001)), "bad_coordinates", 0x0200),
    ("longitude 180.000001", location_frame(location_body(lon=180_000_001)), "bad_coordinates", 0x0200),
    ("month 13", location_frame(location_body(time_bcd="261308100000")), "bad_time", 0x0200),
    ("30 February", location_frame(location_body(time_bcd="260230100000")), "bad_time", 0x0200),
    ("hour 24", location_frame(location_body(time_bcd="260908240000")), "bad_time", 0x0200),
    ("BCD nibble 0xa", location_frame(location_body(time_bcd="2609081000a0")), "bad_time", 0x0200),
    ("phone BCD nibble 0xf", on_wire(header_2013(0x0002, 0, "01391234567f", 5)), "bad_header", 0x0002),
    ("packet index 0", on_wire(header_2013(0x0704, 0, PHONE_2013, 5, packet=(2, 0))), "bad_header", 0x0704),
    ("packet index above total", on_wire(header_2013(0x0704, 0, PHONE_2013, 5, packet=(2, 3))), "bad_header",
     0x0704),
    ("location body 27 bytes", location_frame(location_body()[:27]), "bad_body", 0x0200),
    ("item length byte missing", _location_item(b"\x30"), "bad_body", 0x0200),
    ("item value truncated", _location_item(b"\x01\x04\x00\x00"), "bad_body", 0x0200),
    ("unknown item value truncated", _location_item(b"\x30\x01\x10\xe1\x05\x00"), "bad_body", 0x0200),
    ("mileage of 3 bytes", _location_item(b"\x01\x03\x00\x00\x01"), "bad_body", 0x0200),
    ("direction 360", location_frame(location_body(heading=360)), "bad_body", 0x0200),
    ("registration fixed part short", _registration_2019(bytes(75)), "bad_body", 0x0100),
    ("plate not GBK", _registration_2019(bytes(75) + b"\x01\xff\xff"), "bad_body", 0x0100),
    ("2019 auth code longer than the body", on_wire(header_2019(0x0102, 5, PHONE_2019, 1) + b"\x09abcd"),
     "bad_body", 0x0102),
    ("heartbeat with a body", on_wire(header_2013(0x0002, 1, PHONE_2013, 5) + b"\x00"), "bad_body", 0x0002),
    ("batch says 2, holds 1", on_wire(header_2013(0x0704, 33, PHONE_2013, 5) + word(2) + b"\x00" + word(28)
                                      + location_body()), "bad_body", 0x0704),
    ("batch type 2", on_wire(header_2013(0x0704, 3, PHONE_2013, 5) + word(0) + b"\x02"), "bad_body", 0x0704),
    ("batch item bad time", on_wire(header_2013(0x0704, 33, PHONE_2013, 5) + word(1) + b"\x00" + word(28)
                                    + location_body(time_bcd="000000000000")), "bad_time", 0x0704),
    ("general response result 9", on_wire(header_2013(0x8001, 5, PHONE_2013, 5) + dword(0x00010200) + b"\x09"),
     "bad_body", 0x8001),
    ("registration response refused with a code", on_wire(header_2013(0x8100, 4, PHONE_2013, 5) + b"\x00\x01\x02X"),
     "bad_body", 0x8100),
]


@pytest.mark.parametrize(("frame", "reason", "msg_id"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_reason(frame, reason, msg_id):
    with pytest.raises(FrameError) as caught:
        decode_frame(frame)
    e = caught.value
    assert e.reason == reason, e
    assert e.reason in REASONS and e.detail and str(e).startswith(reason)
    assert isinstance(e, CitywatchError)
    if msg_id is None:
        assert e.header is None
    else:
        assert e.header is not None and e.header.msg_id == msg_id


def test_every_reason_is_exercised():
    covered = {c[2] for c in CASES} | {"oversize"}  # oversize: by the reader and the reassembler, below
    assert covered == REASONS


def test_a_server_can_answer_a_bad_message_from_the_carried_header():
    with pytest.raises(FrameError) as caught:
        decode_frame(on_wire(header_2013(0x0900, 2, PHONE_2013, 6) + b"\xf0\x01"))
    header = caught.value.header
    assert header == Header(0x0900, PHONE_2013, 6)
    answer = build_general_response(header, 40, 3)  # 3: unsupported
    assert answer == on_wire(header_2013(0x8001, 5, PHONE_2013, 40) + word(6) + word(0x0900) + b"\x03")


def test_oversize_from_the_reader():
    big = b"\x7e" + b"\x01" * 200 + b"\x7e"
    good = on_wire(HEARTBEAT)
    out = FrameReader(max_frame_bytes=64).feed(big + good)
    assert isinstance(out[0], FrameError) and out[0].reason == "oversize" and out[0].header is None
    assert out[1:] == [good[1:-1]]


def test_oversize_from_the_reassembler():
    r = Reassembler(max_packets=4, timeout_s=10, clock=FakeClock())
    header = Header(0x0704, PHONE_2013, 1, packet_total=5, packet_index=1)
    with pytest.raises(FrameError) as caught:
        r.add(header, b"x")
    assert caught.value.reason == "oversize" and caught.value.header == header


def test_unescape_reports_bad_escape():
    with pytest.raises(FrameError) as caught:
        unescape(b"\x01\x7d")
    assert caught.value.reason == "bad_escape"
