"""Bridge-side validation of gateway payloads."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from engine.settings import load_settings
from engine.telemetry.fix_rules import parse_ts
from engine.telemetry.validation import parse_payload

S = load_settings(env={})
NOW = 1_788_832_800.0  # 2026-09-08T10:00:00+08:00
TOPIC = "citywatch/fixes/闽D12345"
GOOD = {"vehicle_id": "闽D12345", "class": "hazmat", "ts": "2026-09-08T10:00:00+08:00", "lat": 24.4798,
        "lon": 118.0894, "speed_kmh": 42.5, "heading": 270, "accuracy_m": 5, "alarm_flags": 0}


def parse(obj, topic=TOPIC):
    raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    return parse_payload(raw, topic=topic, settings=S, now=NOW)


def reasons(p):
    return [r.reason for r in p.rejections]


def test_contract_example_is_accepted_and_normalised():
    p = parse(GOOD)
    assert reasons(p) == []
    [f] = p.fixes.fixes()
    assert (f.vehicle_id, f.vclass, f.ts, f.lat, f.lon, f.speed_kmh, f.heading) == (
        "闽D12345", "hazmat", NOW, 24.4798, 118.0894, 42.5, 270.0)


def test_epoch_seconds_and_utc_iso_are_the_same_instant():
    assert parse_ts(NOW) == parse_ts("2026-09-08T02:00:00Z") == parse_ts("2026-09-08T10:00:00+08:00")


@pytest.mark.parametrize("ts, reason", [
    ("2026-09-08T10:00:00", "bad_timestamp"),        # no offset: ambiguous
    ("yesterday", "bad_timestamp"),
    (NOW * 1000, "bad_timestamp"),                  # milliseconds
    (True, "bad_timestamp"),
    (NOW + 3600, "future_timestamp"),
])
def test_bad_timestamps(ts, reason):
    assert reasons(parse({**GOOD, "ts": ts})) == [reason]


@pytest.mark.parametrize("change, reason", [
    ({"lat": 91}, "bad_coordinates"),
    ({"lon": "118.1"}, "bad_type"),
    ({"lat": 0, "lon": 0}, "null_island"),
    ({"lat": 31.23, "lon": 121.47}, "out_of_area"),   # Shanghai
    ({"speed_kmh": -1}, "bad_speed"),
    ({"speed_kmh": 900}, "bad_speed"),
    ({"heading": 400}, "bad_heading"),
    ({"class": "tank"}, "bad_class"),
    ({"alarm_flags": -1}, "bad_type"),
    ({"vehicle_id": "闽D99999"}, "vehicle_mismatch"),
    ({"vehicle_id": 12345}, "bad_vehicle_id"),
])
def test_bad_fields_are_named(change, reason):
    assert reasons(parse({**GOOD, **change})) == [reason]


@pytest.mark.parametrize("field", ["vehicle_id", "ts", "lat", "lon"])
def test_required_fields(field):
    p = parse({k: v for k, v in GOOD.items() if k != field})
    assert reasons(p) == ["missing_field"] and field in p.rejections[0].detail


def test_class_may_be_absent():
    [f] = parse({k: v for k, v in GOOD.items() if k != "class"}).fixes.fixes()
    assert f.vclass == "other"


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "bad_json"), (b"\xff\xfe", "bad_json"), (b"[NaN]", "bad_json"), (b'"a string"', "bad_shape"),
    (b"[]", "bad_shape"), (b"[" * 5000 + b"]" * 5000, "bad_json"),
])
def test_malformed_payloads(raw, reason):
    p = parse(raw)
    assert reasons(p) == [reason] and len(p.fixes) == 0
    assert p.rejections[0].raw == raw


def test_mixed_array_keeps_the_good_elements():
    p = parse([GOOD, {**GOOD, "lat": "x"}, 7, {**GOOD, "ts": NOW + 1}])
    assert p.fixes.ts.tolist() == [NOW, NOW + 1]
    assert [(r.index, r.reason) for r in p.rejections] == [(1, "bad_type"), (2, "bad_shape")]
    assert orjson.loads(p.rejections[0].raw)["lat"] == "x"


def test_limits():
    big = {**GOOD, "pad": "x" * S.bridge.max_payload_bytes}
    assert reasons(parse(big)) == ["payload_too_large"]
    many = [{**GOOD, "ts": NOW - i} for i in range(S.bridge.max_fixes_per_message + 1)]
    assert reasons(parse(many)) == ["too_many_fixes"]


def test_topics():
    assert reasons(parse(GOOD, topic="citywatch/fixes/a/b")) == ["bad_topic"]
    assert reasons(parse([GOOD], topic="citywatch/fixes")) == []  # a gateway's mixed batch on the bare prefix


def test_rejection_record_keeps_non_utf8_raw_as_base64():
    rec = orjson.loads(parse(b"\xff\x00garbage").rejections[0].to_json())
    assert rec["raw_encoding"] == "base64" and rec["reason"] == "bad_json" and rec["vehicle_id"] == "闽D12345"


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(list(GOOD) + ["x"]), c, max_size=9),
    max_leaves=20).map(lambda o: json.dumps(o).encode()))  # stdlib json writes NaN and big ints too
def test_any_payload_is_either_accepted_or_rejected_with_a_reason(raw):
    p = parse(raw)
    assert len(p.fixes) + len(p.rejections) >= 1
    for r in p.rejections:
        assert r.reason and r.detail
        orjson.loads(r.to_json())
    assert ((p.fixes.lat >= S.city.bounds.lat_min) & (p.fixes.lat <= S.city.bounds.lat_max)).all()


def test_fix_json_round_trip_keeps_every_field():
    from dataclasses import fields

    from engine.telemetry.models import Fix
    from engine.telemetry.wire import decode_fixes

    [f] = parse(GOOD).fixes.fixes()
    d = orjson.loads(f.to_json())
    assert set(d) == {"class" if x.name == "vclass" else x.name for x in fields(Fix)}
    assert decode_fixes(f.to_json()) == [f]
