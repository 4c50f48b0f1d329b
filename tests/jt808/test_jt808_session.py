"""One connection's protocol logic against frames built by hand (tests/jt808/helpers.py), no sockets or Kafka."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from engine.core.clock import FakeClock
from engine.core.config import build
from engine.core.metrics import Jt808Metrics
from engine.jt808.gateway.registry import Admission, parse_registry
from engine.jt808.gateway.session import Outcome, Session
from engine.jt808.header import REASONS
from engine.jt808.settings import Jt808Settings
from engine.settings import load_settings
from engine.telemetry.settings import BridgeSettings, FilterSettings
from tests.conftest import ROOT
from tests.jt808.helpers import PHONE_2013, PHONE_2019, header_2013, header_2019, location_body, on_wire, word

REGISTRY = "phone,plate,class\n13912345678,闽DH1234,hazmat\n13800000001,闽D00001,taxi\n"
PLATE = "闽DH1234"
KEY = "session-test-key-0123456789"


@dataclasses.dataclass(frozen=True)
class GatewayConfig:
    """The sections the gateway reads (engine.jt808.gateway.config.Jt808Config), until the composed settings
    carry ``jt808``."""

    jt808: Jt808Settings
    bridge: BridgeSettings
    city: Any
    filters: FilterSettings
    kafka: Any
    mqtt: Any
    web: Any
    worker: Any


@functools.cache
def _defaults() -> Any:
    return load_settings(ROOT / "config.yaml", env={})


def gateway_config(settings: Any = None, **jt808: Any) -> Any:
    """``settings`` (default: config.yaml) with a ``jt808`` section of ``jt808`` (checked as the loader does)."""
    settings = settings or _defaults()
    if hasattr(settings, "jt808"):
        return settings.replace(jt808={"hmac_key": KEY, **jt808})
    section = build(Jt808Settings, {"hmac_key": KEY, **jt808}, "jt808.")
    return GatewayConfig(section, *(getattr(settings, f.name) for f in dataclasses.fields(GatewayConfig)[1:]))


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


class Terminal:
    """A session and the frames a hand-built terminal sends it (2013 unless ``v2019``)."""

    def __init__(self, *, phone: str = PHONE_2013, v2019: bool = False, open_registration: bool = False, **jt808):
        self.registry = CollectorRegistry()
        self.clock = FakeClock()
        self.config = gateway_config(open_registration=open_registration, terminals="t.csv", **jt808)
        self.admission = Admission(hmac_key=KEY, open_registration=open_registration,
                                   terminals=parse_registry(REGISTRY))
        self.session = Session(self.config, self.admission, Jt808Metrics(self.registry), self.clock)
        self.phone, self.v2019, self.serial = phone, v2019, 0

    def frame(self, msg_id: int, body: bytes, **kw) -> bytes:
        self.serial += 1
        head = (header_2019(msg_id, len(body), self.phone, self.serial) if self.v2019
                else header_2013(msg_id, len(body), self.phone, self.serial, **kw))
        return on_wire(head + body)

    def send(self, msg_id: int, body: bytes = b"", **kw) -> Outcome:
        return self.session.handle(self.frame(msg_id, body, **kw))

    def register(self, plate: str = PLATE) -> Outcome:
        if self.v2019:  # province, city, manufacturer[11], model[30], terminal id[30], colour, plate
            body = word(35) + word(200) + b"70111".ljust(11, b"\0") + b"CW-T100".ljust(30, b"\0") + \
                b"CW1".ljust(30, b"\0") + b"\x01" + plate.encode("gbk")
        else:  # ... manufacturer[5], model[20], terminal id[7] ...
            body = word(35) + word(200) + b"70111" + b"CW-T100".ljust(20, b"\0") + b"CW1".ljust(7, b"\0") + \
                b"\x01" + plate.encode("gbk")
        return self.send(0x0100, body)

    def authenticate(self, code: str) -> Outcome:
        raw = code.encode("gbk")
        body = bytes([len(raw)]) + raw + b"123456789012345" + b"1.0".ljust(20, b"\0") if self.v2019 else raw
        return self.send(0x0102, body)

    def login(self) -> str:
        code = self.admission.issue("13912345678", PLATE)
        assert self.authenticate(code).reply == self.general(0x0102, self.serial, 0)
        return code

    def general(self, msg_id: int, serial: int, result: int, *, platform_serial: int | None = None) -> bytes:
        """The 0x8001 the platform must answer with, by hand."""
        ps = self.session._serial - 1 if platform_serial is None else platform_serial
        body = word(serial) + word(msg_id) + bytes([result])
        head = header_2019(0x8001, 5, self.phone, ps) if self.v2019 else header_2013(0x8001, 5, self.phone, ps)
        return on_wire(head + body)

    def sample(self, name: str, **labels: str) -> float:
        return sample(self.registry, name, **labels)


def test_2013_registration_answers_0x8100_with_the_code_by_hand():
    t = Terminal()
    out = t.register()
    code = t.admission.issue("13912345678", PLATE).encode()
    assert out.reply == on_wire(header_2013(0x8100, 3 + len(code), PHONE_2013, 0) + word(1) + b"\x00" + code)
    assert not out.fixes and not out.rejections and out.durable_reply is None and not out.close
    assert t.sample("citywatch_jt808_registrations_total", result="ok") == 1
    assert not t.session.authenticated  # registering is not authenticating


def test_registration_refusals_carry_no_code():
    t = Terminal()
    assert t.register("闽DH9999").reply == on_wire(header_2013(0x8100, 3, PHONE_2013, 0) + word(1) + b"\x02")
    stranger = Terminal(phone="013700000000")
    assert stranger.register().reply == on_wire(header_2013(0x8100, 3, "013700000000", 0) + word(1) + b"\x04")
    assert t.sample("citywatch_jt808_registrations_total", result="no_such_vehicle") == 1
    assert stranger.sample("citywatch_jt808_registrations_total", result="no_such_terminal") == 1


def test_authentication_ok_wrong_code_and_another_phones_code():
    t = Terminal()
    assert t.authenticate("nonsense").reply == t.general(0x0102, 1, 1)
    other = t.admission.issue("13800000001", "闽D00001")
    assert t.authenticate(other).reply == t.general(0x0102, 2, 1)
    assert not t.session.authenticated
    t.login()
    assert (t.session.phone, t.session.plate, t.session.vclass) == ("13912345678", PLATE, "hazmat")
    assert t.sample("citywatch_jt808_authentications_total", result="failed") == 2
    assert t.sample("citywatch_jt808_authentications_total", result="ok") == 1


def test_locations_before_authentication_get_result_1_and_are_counted():
    t = Terminal()
    out = t.send(0x0200, location_body())
    assert out.reply == t.general(0x0200, 1, 1) and not out.fixes and out.durable_reply is None
    assert t.sample("citywatch_jt808_unauthenticated_total") == 1
    t.login()
    intruder = t.session.handle(on_wire(header_2013(0x0200, 28, "013800000001", 9) + location_body()))
    assert not intruder.fixes and t.sample("citywatch_jt808_unauthenticated_total") == 2  # not the phone logged in


def test_a_location_becomes_a_fix_answered_once_durable():
    t = Terminal()
    t.login()
    out = t.send(0x0200, location_body(alarm=0x1, status=0x3, speed=605, heading=271))
    assert out.reply is None and out.durable_reply == t.general(0x0200, 2, 0) and not out.rejections
    [fix] = out.fixes
    assert (fix.vehicle_id, fix.source, fix.vclass, fix.ts, fix.lat, fix.lon) == (
        PLATE, "jt808", "hazmat", 1_788_832_800.0, 24.4815, 118.0894)
    assert (fix.alarm_flags, fix.status_flags, fix.valid, fix.speed_kmh, fix.heading) == (1, 3, True, 60.5, 271)
    assert fix.received_at == t.clock.now()
    assert t.sample("citywatch_jt808_frames_total", msg_id="0x0200") == 1


def test_2019_terminal_registers_authenticates_and_reports():
    t = Terminal(phone=PHONE_2019, v2019=True)
    code = t.admission.issue("13912345678", PLATE).encode()
    reg = t.register()
    assert reg.reply == on_wire(header_2019(0x8100, 3 + len(code), PHONE_2019, 0) + word(1) + b"\x00" + code)
    assert t.authenticate(code.decode()).reply == t.general(0x0102, 2, 0)
    out = t.send(0x0200, location_body(status=0x0))
    assert out.durable_reply == t.general(0x0200, 3, 0) and out.fixes[0].valid is False
    assert t.session.version == 1


def test_heartbeat_before_and_after_authentication_and_logout_closes():
    t = Terminal()
    assert t.send(0x0002).reply == t.general(0x0002, 1, 0)
    t.login()
    assert t.send(0x0002).reply == t.general(0x0002, 3, 0)
    out = t.send(0x0003)
    assert out.reply == t.general(0x0003, 4, 0) and out.close == "logout"


def test_platform_serials_count_up_per_message():
    t = Terminal()
    for n in range(3):
        assert t.send(0x0002).reply == t.general(0x0002, n + 1, 0, platform_serial=n)


def batch(items: list[bytes], kind: int = 1) -> bytes:
    return word(len(items)) + bytes([kind]) + b"".join(word(len(i)) + i for i in items)


def test_a_blind_area_re_upload_keeps_old_fixes_and_rejects_one_out_of_the_city():
    t = Terminal()
    t.login()
    items = [location_body(time_bcd="260908080000"), location_body(lat=39_904_200, lon=116_407_400,
                                                                   time_bcd="260908080100"),
             location_body(time_bcd="260908080200")]
    out = t.send(0x0704, batch(items))
    assert [f.ts for f in out.fixes] == [1_788_825_600.0, 1_788_825_720.0]  # two hours old: kept
    [r] = out.rejections
    assert (r.reason, r.source, r.topic, r.vehicle_id, r.index) == ("out_of_area", "jt808", "jt808", PLATE, 1)
    doc = orjson.loads(r.to_json())
    assert doc["source"] == "jt808" and orjson.loads(doc["raw"])["lat"] == 39.9042 and doc["msg_id"] == "0x0704"
    assert out.durable_reply == t.general(0x0704, 2, 0) and out.reply is None
    assert t.sample("citywatch_jt808_fixes_rejected_total", reason="out_of_area") == 1


def test_a_future_fix_is_rejected_without_failing_the_frame():
    t = Terminal()
    t.login()
    out = t.send(0x0200, location_body(time_bcd="260908120000"))  # two hours ahead of the clock
    assert not out.fixes and out.rejections[0].reason == "future_timestamp"
    assert out.durable_reply == t.general(0x0200, 2, 0)  # answered once the rejection is in Kafka


def test_a_sub_packaged_batch_is_answered_per_packet_and_joined():
    t = Terminal()
    t.login()
    body = batch([location_body(time_bcd=f"2609080800{n:02d}") for n in range(3)], kind=0)
    first = t.send(0x0704, body[:40], packet=(2, 1))
    assert first.reply == t.general(0x0704, 2, 0) and not first.fixes and first.durable_reply is None
    second = t.send(0x0704, body[40:], packet=(2, 2))
    assert len(second.fixes) == 3 and second.durable_reply == t.general(0x0704, 3, 0)


HEARTBEAT = header_2013(0x0002, 0, PHONE_2013, 5)


def hb(extra: bytes = b"", check: int | None = None) -> bytes:
    return on_wire(HEARTBEAT + extra, check)


# (reason, frame, the 0x8001 result it is answered with or None when the header cannot be read)
BAD = [
    ("bad_check_code", on_wire(HEARTBEAT, check=0x55), 2),
    ("bad_escape", b"\x7e" + HEARTBEAT + b"\x7d\x03\x7e", 2),
    ("truncated", on_wire(b"\x00\x02"), None),
    ("length_mismatch", hb(b"\x00\x00"), 2),
    ("unknown_message", on_wire(header_2013(0x0900, 2, PHONE_2013, 5) + b"\xf0\x01"), 3),
    ("bad_coordinates", on_wire(header_2013(0x0200, 28, PHONE_2013, 5) + location_body(lat=90_000_001)), 2),
    ("bad_time", on_wire(header_2013(0x0200, 28, PHONE_2013, 5) + location_body(time_bcd="261308100000")), 2),
    ("bad_header", on_wire(header_2013(0x0704, 0, PHONE_2013, 5, packet=(2, 0))), 2),
    ("bad_body", on_wire(header_2013(0x0200, 27, PHONE_2013, 5) + location_body()[:27]), 2),
]


@pytest.mark.parametrize(("reason", "frame", "result"), BAD, ids=[b[0] for b in BAD])
def test_every_bad_frame_is_answered_counted_and_recorded_as_hex(reason, frame, result):
    t = Terminal()
    out = t.session.handle(frame)
    if result is None:
        assert out.reply is None
    else:
        msg_id = int.from_bytes(frame[1:3], "big")
        assert out.reply == on_wire(header_2013(0x8001, 5, PHONE_2013, 0) + word(5) + word(msg_id) + bytes([result]))
    assert t.sample("citywatch_jt808_frames_rejected_total", reason=reason) == 1
    [r] = out.rejections
    assert (r.reason, r.source, r.topic) == (f"jt808_{reason}", "jt808", "jt808") and r.detail
    assert r.raw.decode() == frame.hex() and not out.fixes and not out.close
    assert t.session.bad_in_row == (0 if reason == "unknown_message" else 1)


def test_oversize_comes_from_the_reader_and_the_stream_goes_on():
    t = Terminal(max_frame_bytes=64)
    outs = t.session.receive(b"\x7e" + b"\x01" * 100 + b"\x7e" + hb())
    assert outs[0].reply is None and outs[0].rejections[0].reason == "jt808_oversize"
    assert outs[0].rejections[0].raw == b""  # dropped by the reader, never held
    assert outs[1].reply is not None and t.sample("citywatch_jt808_frames_rejected_total", reason="oversize") == 1


def test_every_reason_has_a_case():
    assert {b[0] for b in BAD} | {"oversize"} == REASONS


def test_a_header_that_cannot_be_answered_is_still_recorded():
    out = Terminal().session.handle(on_wire(header_2013(0x0002, 0, "01391234567f", 5)))  # phone not BCD
    assert out.reply is None and out.rejections[0].reason == "jt808_bad_header"


def test_a_bad_authentication_frame_never_puts_its_code_on_the_rejected_topic():
    t = Terminal()
    code = t.admission.issue("13912345678", PLATE).encode("gbk")
    frame = on_wire(header_2013(0x0102, len(code), PHONE_2013, 1) + code, check=0)
    out = t.session.handle(frame)
    [r] = out.rejections
    assert r.reason == "jt808_bad_check_code" and code.hex() not in r.raw.decode() and code not in r.to_json()
    assert r.raw.decode() == frame[:5].hex() and "first 4 bytes" in orjson.loads(r.to_json())["raw_withheld"]
    # a code that is not GBK: the codec's detail quotes it; the rejection does not
    bad_text = b"\xff\xfe" + code
    out = t.session.handle(on_wire(header_2013(0x0102, len(bad_text), PHONE_2013, 2) + bad_text))
    [r] = out.rejections
    assert r.reason == "jt808_bad_body" and code.hex() not in r.to_json().decode() and code not in r.to_json()


def test_max_bad_frames_in_a_row_close_and_a_good_frame_resets_the_count():
    t = Terminal(max_bad_frames=3)
    bad = on_wire(HEARTBEAT, check=0x55)
    assert [t.session.handle(bad).close for _ in range(2)] == ["", ""]
    assert t.session.handle(hb()).reply is not None and t.session.bad_in_row == 0
    assert [t.session.handle(bad).close for _ in range(3)] == ["", "", "bad_frames"]


def test_receive_splits_the_stream_anywhere_and_stops_at_a_logout():
    t = Terminal()
    stream = b"garbage" + hb() + on_wire(header_2013(0x0003, 0, PHONE_2013, 6)) + hb()
    outs = [o for i in range(0, len(stream), 5) for o in t.session.receive(stream[i:i + 5])]
    assert [o.close for o in outs] == ["", "logout"]  # the heartbeat after the logout is not handled
