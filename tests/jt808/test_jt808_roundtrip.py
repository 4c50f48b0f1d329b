"""Round trips: a terminal's encoders -> FrameReader (cut anywhere) -> decode_frame give back the fields;
and engine.jt808 imports only the standard library and engine.core, its doctests run, its modules stay small."""

from __future__ import annotations

import ast
import doctest
import sys
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.jt808 import codec, framing, header, location, messages, reassembly
from engine.jt808.codec import decode_frame, encode_authentication, encode_batch, encode_location, encode_registration
from engine.jt808.framing import FrameReader
from engine.jt808.location import STATUS_SOUTH, STATUS_VALID, STATUS_WEST, Location, LocationBatch
from engine.jt808.messages import Authentication, Registration
from tests.conftest import ROOT

PROPERTY = settings(max_examples=200, deadline=None)
# 2000-01-01 .. 2099-12-31 in GMT+8, whole seconds
TS = st.integers(946_656_000, 4_102_415_999).map(float)
VERSION = st.sampled_from([None, 1])
PHONE = st.from_regex(r"[0-9]{1,12}", fullmatch=True)
TEXT = st.text(alphabet=st.sampled_from("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-闽粤京沪学警"), max_size=8)


@st.composite
def locations(draw: st.DrawFn) -> Location:
    lat = draw(st.integers(-90_000_000, 90_000_000)) / 1e6
    lon = draw(st.integers(-180_000_000, 180_000_000)) / 1e6
    valid = draw(st.booleans())
    # bits 1-3 follow valid and the signs of lat/lon; the rest is sent as it is
    status = draw(st.integers(0, 0xFFFFFFFF)) & ~0b1110
    status |= (STATUS_VALID if valid else 0) | (STATUS_SOUTH if lat < 0 else 0) | (STATUS_WEST if lon < 0 else 0)
    return Location(
        alarm=draw(st.integers(0, 0xFFFFFFFF)), status=status, lat=lat, lon=lon,
        altitude_m=draw(st.integers(0, 0xFFFF)), speed_kmh=draw(st.integers(0, 0xFFFF)) / 10,
        heading=draw(st.integers(0, 359)), ts=draw(TS), valid=valid,
        mileage_km=draw(st.none() | st.integers(0, 0xFFFFFFFF).map(lambda n: n / 10)),
        signal=draw(st.none() | st.integers(0, 255)), satellites=draw(st.none() | st.integers(0, 255)))


def _through_reader(frame: bytes, cuts: list[int]) -> bytes:
    points = sorted({0, len(frame), *(c % (len(frame) + 1) for c in cuts)})
    reader = FrameReader()
    out = [o for a, b in zip(points, points[1:]) for o in reader.feed(frame[a:b])]
    assert len(out) == 1 and isinstance(out[0], bytes)
    return out[0]


@given(locations(), PHONE, st.integers(0, 0xFFFF), VERSION, st.lists(st.integers(0, 10_000), max_size=8),
       st.lists(st.tuples(st.integers(0x02, 0x2F), st.binary(max_size=6)), max_size=3))
@PROPERTY
def test_location_round_trip(loc, phone, serial, version, cuts, extra):
    frame = encode_location(phone, serial, loc, version=version, extra=extra)
    got_header, got = decode_frame(_through_reader(frame, cuts))
    assert got == loc
    assert (got_header.msg_id, got_header.serial, got_header.version) == (0x0200, serial, version)
    assert got_header.phone_normalised == (phone.lstrip("0") or "0")
    assert len(got_header.phone) == (12 if version is None else 20)


@given(st.lists(locations(), max_size=15), st.sampled_from([0, 1]), VERSION)
@PROPERTY
def test_batch_round_trip(locs, kind, version):
    _, got = decode_frame(encode_batch("13912345678", 1, locs, kind=kind, version=version))
    assert got == LocationBatch(kind, tuple(locs))


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), TEXT, TEXT, TEXT, st.integers(0, 255), TEXT, VERSION)
@PROPERTY
def test_registration_round_trip(province, city, manufacturer, model, terminal_id, colour, plate, version):
    reg = Registration(province, city, manufacturer[:2], model, terminal_id[:3], colour, plate)
    _, got = decode_frame(encode_registration("13912345678", 1, reg, version=version))
    assert got == reg


@given(TEXT, st.from_regex(r"[0-9]{15}", fullmatch=True), TEXT, VERSION)
@PROPERTY
def test_authentication_round_trip(code, imei, software, version):
    auth = Authentication(code) if version is None else Authentication(code, imei, software)
    _, got = decode_frame(encode_authentication("13912345678", 1, auth, version=version))
    assert got == auth


def test_encoders_refuse_what_the_layout_cannot_carry():
    loc = Location(0, 0, 24.0, 118.0, 0, 0.0, 0, 1_788_832_800.0, True)
    for bad in ({"lat": 90.5}, {"lon": -181.0}, {"heading": 360}, {"speed_kmh": 6553.6}, {"ts": 0.0},
                {"altitude_m": -1}, {"signal": 256}):
        with pytest.raises(ValueError):
            encode_location("13912345678", 1, replace(loc, **bad))
    with pytest.raises(ValueError):
        encode_location("1391234567890", 1, loc)  # 13 digits: more than BCD[6] holds
    with pytest.raises(ValueError):
        encode_location("139-1234", 1, loc)
    with pytest.raises(ValueError):
        encode_registration("1", 1, Registration(1, 1, "TOO-LONG-ID", "m", "t", 1, "p"))  # BYTE[5] in 2013


MODULES = [codec, framing, header, location, messages, reassembly]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_imports_only_the_standard_library_and_core_and_modules_stay_small():
    bad, long = [], []
    for path in sorted((ROOT / "engine" / "jt808").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 300:
            long.append(path.name)
        for node in ast.walk(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top == "asyncio" or not (top in sys.stdlib_module_names or name == "__future__" or any(
                        name == a or name.startswith(a + ".") for a in ("engine.core", "engine.jt808"))):
                    bad.append(f"{path.name}: {name}")
    assert not bad and not long, (bad, long)
