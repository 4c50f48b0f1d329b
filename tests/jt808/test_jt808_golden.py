"""Golden JT/T 808 frames assembled by hand from the field tables, decoded and re-encoded by engine.jt808.

Each frame is built field by field (tests/jt808/helpers.py: int.to_bytes, a plain XOR loop, byte-wise escaping)
and also written out as the hex literal it must come to, so neither the codec nor the helpers grade themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine.jt808.codec import (
    build_general_response,
    build_registration_response,
    decode_frame,
    encode_authentication,
    encode_batch,
    encode_frame,
    encode_heartbeat,
    encode_location,
    encode_logout,
    encode_registration,
)
from engine.jt808.framing import FrameReader
from engine.jt808.header import Header
from engine.jt808.location import Location, LocationBatch
from engine.jt808.messages import (
    Authentication,
    GeneralResponse,
    GeneralResult,
    Heartbeat,
    Logout,
    Registration,
    RegistrationResponse,
    RegistrationResult,
)
from tests.jt808.helpers import (
    PHONE_2013,
    PHONE_2019,
    dword,
    header_2013,
    header_2019,
    location_body,
    on_wire,
    word,
    xor_all,
)

# ---- 2013 0x0200 location report -----------------------------------------------------------------------------
# Additional items (id BYTE, length BYTE, value):
MILEAGE = bytes([0x01, 4]) + dword(12345)          # 0x01 mileage DWORD 1/10 km: 1234.5 km
SIGNAL = bytes([0x30, 1, 31])                      # 0x30 wireless signal strength: 31
SATELLITES = bytes([0x31, 1, 12])                  # 0x31 GNSS satellites: 12
UNKNOWN = bytes([0xE1, 3, 0x7E, 0x7D, 0x00])       # 0xE1, 3 bytes a decoder must skip (and 7e 7d to escape)
ITEMS = MILEAGE + SIGNAL + SATELLITES + UNKNOWN    # 6 + 3 + 3 + 5 = 17 bytes

LAT_RAW = 24_481_500                               # 24.4815 N x 10^6
LON_RAW = 118_089_400                              # 118.0894 E x 10^6
LOCATION_BODY = (
    dword(0x00000001)                              # alarm: bit 0 emergency
    + dword(0x00000002)                            # status: bit 1 positioning valid; ACC off, north, east
    + dword(LAT_RAW)                               # 0x01758edc
    + dword(LON_RAW)                               # 0x0709e6b8
    + word(125)                                    # altitude 125 m = 0x007d: escaped on the wire
    + word(600)                                    # speed 60.0 km/h in 1/10 km/h
    + word(90)                                     # direction 90 (east)
    + bytes.fromhex("260908100000")                # BCD 2026-09-08 10:00:00 GMT+8
    + ITEMS
)
LOCATION_PAYLOAD = (
    word(0x0200)                                   # message id
    + word(28 + 17)                                # properties: body length 45 = 0x002d; 2013, whole, plain
    + bytes.fromhex(PHONE_2013)                    # BCD[6] 013912345678
    + word(0x007E)                                 # serial 126 = 0x007e: escaped on the wire
    + LOCATION_BODY
)
LOCATION_WIRE = bytes.fromhex(
    "7e" "0200" "002d" "013912345678" "007d02"
    "00000001" "00000002" "01758edc" "0709e6b8" "007d01" "0258" "005a" "260908100000"
    "0104" "00003039" "3001" "1f" "3101" "0c" "e103" "7d02" "7d01" "00"
    "a1" "7e")
#: 2026-09-08 10:00:00 at +08:00 is 02:00:00 UTC.
EPOCH = datetime(2026, 9, 8, 2, 0, 0, tzinfo=UTC).timestamp()
EXPECTED_LOCATION = Location(alarm=1, status=2, lat=24.4815, lon=118.0894, altitude_m=125, speed_kmh=60.0,
                             heading=90, ts=EPOCH, valid=True, mileage_km=1234.5, signal=31, satellites=12)


def test_hand_built_location_frame_is_the_literal():
    assert dword(LAT_RAW) == bytes.fromhex("01758edc") and dword(LON_RAW) == bytes.fromhex("0709e6b8")
    assert len(LOCATION_BODY) == 45
    assert xor_all(LOCATION_PAYLOAD) == 0xA1
    assert on_wire(LOCATION_PAYLOAD) == LOCATION_WIRE
    assert EPOCH == 1_788_832_800 == datetime(2026, 9, 8, 10, tzinfo=timezone(timedelta(hours=8))).timestamp()


def test_decode_2013_location():
    header, loc = decode_frame(LOCATION_WIRE)
    assert header == Header(msg_id=0x0200, phone="013912345678", serial=0x7E)
    assert header.edition == 2013 and header.phone_normalised == "13912345678" and not header.subpackaged
    assert loc == EXPECTED_LOCATION


def test_decode_takes_the_frame_without_delimiters_or_unescaped():
    assert decode_frame(LOCATION_WIRE[1:-1])[1] == EXPECTED_LOCATION
    assert decode_frame(LOCATION_PAYLOAD + bytes([0xA1]), escaped=False)[1] == EXPECTED_LOCATION


def test_encode_2013_location_gives_the_golden_frame():
    frame = encode_location("13912345678", 0x7E, EXPECTED_LOCATION, extra=[(0xE1, b"\x7e\x7d\x00")])
    assert frame.hex() == LOCATION_WIRE.hex()


def test_south_west_and_acc():
    body = location_body(status=0b1111, lat=33_868_800, lon=151_209_300)  # ACC, valid, south, west
    _, loc = decode_frame(on_wire(header_2013(0x0200, len(body), PHONE_2013, 9) + body))
    assert (loc.lat, loc.lon, loc.valid, loc.status) == (-33.8688, -151.2093, True, 0b1111)
    assert loc.mileage_km is None and loc.signal is None and loc.satellites is None
    body = location_body(status=0b0001)  # ACC on, positioning not valid
    _, loc = decode_frame(on_wire(header_2013(0x0200, len(body), PHONE_2013, 9) + body))
    assert loc.valid is False and loc.lat > 0


# ---- 2019 0x0100 registration --------------------------------------------------------------------------------
PLATE_GBK = bytes.fromhex("c3f6") + b"DH1234"      # 闽 = GBK c3 f6, then ASCII
REGISTRATION_BODY = (
    word(35)                                       # province: Fujian (GB/T 2260 35xxxx)
    + word(200)                                    # city: Xiamen (350200 -> 0200)
    + b"70111" + bytes(6)                          # manufacturer BYTE[11], NUL-padded
    + b"CW-T100" + bytes(23)                       # terminal model BYTE[30]
    + b"CW00001" + bytes(23)                       # terminal id BYTE[30]
    + bytes([1])                                   # plate colour 1 (blue)
    + PLATE_GBK                                    # plate, GBK, to the end
)
REGISTRATION_PAYLOAD = (
    word(0x0100)
    + word(0x4000 | 84)                            # properties: bit 14 (2019), body length 84 = 0x54
    + bytes([0x01])                                # protocol version 1
    + bytes.fromhex(PHONE_2019)                    # BCD[10] 00000000013912345678
    + word(0x0001)                                 # serial
    + REGISTRATION_BODY
)
REGISTRATION_WIRE = bytes.fromhex(
    "7e" "0100" "4054" "01" "00000000013912345678" "0001" "0023" "00c8" "3730313131" + "00" * 6
    + "43572d54313030" + "00" * 23 + "43573030303031" + "00" * 23 + "01" "c3f6444831323334" "bd" "7e")
REGISTRATION = Registration(province=35, city=200, manufacturer="70111", model="CW-T100", terminal_id="CW00001",
                            plate_colour=1, plate="闽DH1234")


def test_hand_built_registration_frame_is_the_literal():
    assert "闽DH1234".encode("gbk") == PLATE_GBK and len(REGISTRATION_BODY) == 84
    assert on_wire(REGISTRATION_PAYLOAD) == REGISTRATION_WIRE


def test_decode_2019_registration():
    header, reg = decode_frame(REGISTRATION_WIRE)
    assert header == Header(msg_id=0x0100, phone=PHONE_2019, serial=1, version=1)
    assert header.edition == 2019 and header.phone_normalised == "13912345678"
    assert reg == REGISTRATION


def test_encode_2019_registration():
    assert encode_registration("13912345678", 1, REGISTRATION, version=1).hex() == REGISTRATION_WIRE.hex()


def test_2013_registration_layout():
    body = (word(35) + word(200) + b"70111" + b"CW-T100" + bytes(13) + b"CW00001" + bytes([2])
            + "闽D12345".encode("gbk"))                                   # 2+2+5+20+7+1 + plate
    wire = on_wire(header_2013(0x0100, len(body), PHONE_2013, 5) + body)
    header, reg = decode_frame(wire)
    assert header.version is None
    assert reg == Registration(35, 200, "70111", "CW-T100", "CW00001", 2, "闽D12345")
    assert encode_registration(PHONE_2013, 5, reg) == wire


# ---- platform answers ----------------------------------------------------------------------------------------
REGISTRATION_RESPONSE_WIRE = bytes.fromhex(
    "7e" "8100" "400d" "01" "00000000013912345678" "0010"   # 2019 header, body 13 bytes, platform serial 0x10
    "0001" "00" "43574155544830303031"                        # reply serial 1, result 0, auth code CWAUTH0001
    "f1" "7e")
GENERAL_RESPONSE_WIRE = bytes.fromhex(
    "7e" "8001" "0005" "013912345678" "0002"                  # 2013 header, body 5 bytes, platform serial 2
    "007d02" "0200" "00"                                      # reply serial 0x007e (escaped), reply id, result 0
    "ca" "7e")


def test_hand_built_answers_are_the_literals():
    body = word(1) + bytes([0]) + b"CWAUTH0001"
    assert on_wire(header_2019(0x8100, len(body), PHONE_2019, 0x10) + body) == REGISTRATION_RESPONSE_WIRE
    body = word(0x7E) + word(0x0200) + bytes([0])
    assert on_wire(header_2013(0x8001, len(body), PHONE_2013, 2) + body) == GENERAL_RESPONSE_WIRE


def test_build_registration_response():
    header, _ = decode_frame(REGISTRATION_WIRE)
    frame = build_registration_response(header, 0x10, 0, "CWAUTH0001")
    assert frame.hex() == REGISTRATION_RESPONSE_WIRE.hex()
    assert decode_frame(frame)[1] == RegistrationResponse(1, RegistrationResult.OK, "CWAUTH0001")


@pytest.mark.parametrize("result", [1, 2, 3, 4])
def test_registration_refused_carries_no_auth_code(result):
    header, _ = decode_frame(REGISTRATION_WIRE)
    frame = build_registration_response(header, 7, result)
    body = word(1) + bytes([result])
    assert frame == on_wire(header_2019(0x8100, 3, PHONE_2019, 7) + body)
    assert decode_frame(frame)[1] == RegistrationResponse(1, RegistrationResult(result), None)
    with pytest.raises(ValueError):
        build_registration_response(header, 7, result, "CODE")


def test_build_general_response():
    header, _ = decode_frame(LOCATION_WIRE)
    frame = build_general_response(header, 2, 0)
    assert frame.hex() == GENERAL_RESPONSE_WIRE.hex()
    assert decode_frame(frame)[1] == GeneralResponse(0x7E, 0x0200, GeneralResult.OK)
    assert build_general_response(header, 2, 3) == on_wire(
        header_2013(0x8001, 5, PHONE_2013, 2) + word(0x7E) + word(0x0200) + bytes([3]))


# ---- authentication, heartbeat, logout, batch ----------------------------------------------------------------
def test_2013_authentication_is_the_whole_body():
    wire = bytes.fromhex("7e" "0102" "0008" "013912345678" "0003" "4155544830303031" "31" "7e")  # AUTH0001
    assert wire == on_wire(header_2013(0x0102, 8, PHONE_2013, 3) + b"AUTH0001")
    assert decode_frame(wire)[1] == Authentication("AUTH0001")
    assert encode_authentication(PHONE_2013, 3, "AUTH0001") == wire


def test_2019_authentication():
    body = (bytes([10]) + b"CWAUTH0001"           # code length BYTE, code
            + b"860000000000001"                  # IMEI BYTE[15]
            + b"1.0.0" + bytes(15))               # software version BYTE[20], NUL-padded
    wire = on_wire(header_2019(0x0102, len(body), PHONE_2019, 2) + body)
    assert wire.hex().endswith("312e302e30" + "00" * 15 + "47" "7e")
    auth = Authentication("CWAUTH0001", "860000000000001", "1.0.0")
    assert decode_frame(wire)[1] == auth
    assert encode_authentication(PHONE_2019, 2, auth, version=1) == wire


def test_heartbeat_and_logout():
    heartbeat = on_wire(header_2013(0x0002, 0, PHONE_2013, 4))
    assert heartbeat == bytes.fromhex("7e" "0002" "0000" "013912345678" "0004" "36" "7e")  # 02^01^39^12^34^56^78^04 = 0x36
    assert decode_frame(heartbeat)[1] == Heartbeat() and encode_heartbeat(PHONE_2013, 4) == heartbeat
    logout = on_wire(header_2019(0x0003, 0, PHONE_2019, 4))
    assert decode_frame(logout)[1] == Logout() and encode_logout(PHONE_2019, 4, version=1) == logout


def test_batch_upload():
    second = location_body(alarm=0, status=0x3, speed=0, heading=0, time_bcd="260908100030")
    body = (word(2)                                # count
            + bytes([1])                           # type 1: blind-area re-upload
            + word(len(LOCATION_BODY)) + LOCATION_BODY
            + word(len(second)) + second)
    wire = on_wire(header_2013(0x0704, len(body), PHONE_2013, 8) + body)
    header, batch = decode_frame(wire)
    assert header.msg_id == 0x0704 and isinstance(batch, LocationBatch) and batch.kind == 1
    assert batch.locations[0] == EXPECTED_LOCATION
    assert batch.locations[1].ts == EPOCH + 30 and batch.locations[1].speed_kmh == 0.0
    # The encoder writes only the kept items, so re-encoding drops the unknown 0xE1 item: compare without it.
    plain = LOCATION_BODY[:-len(UNKNOWN)]
    again = word(2) + bytes([1]) + word(len(plain)) + plain + word(len(second)) + second
    assert encode_batch(PHONE_2013, 8, batch.locations, kind=1) == on_wire(
        header_2013(0x0704, len(again), PHONE_2013, 8) + again)


def test_golden_frames_through_the_reader():
    stream = LOCATION_WIRE + REGISTRATION_WIRE + GENERAL_RESPONSE_WIRE
    frames = FrameReader().feed(stream)
    assert [decode_frame(f)[0].msg_id for f in frames if isinstance(f, bytes)] == [0x0200, 0x0100, 0x8001]


def test_encode_frame_sub_packaged_header():
    frame = encode_frame(Header(0x0704, PHONE_2013, 0x20, packet_total=3, packet_index=2), b"\x01\x02")
    assert frame == on_wire(header_2013(0x0704, 2, PHONE_2013, 0x20, packet=(3, 2)) + b"\x01\x02")
    assert frame.hex().startswith("7e" "0704" "2002" "013912345678" "0020" "0003" "0002")  # bit 13 set
    header, body = decode_frame(frame)
    assert (header.packet_total, header.packet_index, header.first_serial, body) == (3, 2, 0x1F, b"\x01\x02")
