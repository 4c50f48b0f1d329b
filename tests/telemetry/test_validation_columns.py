"""The columnar ``parse_payload`` (msgspec decode, vectorised checks) against the per-element path alone.

For every payload both must accept the same fixes and reject the same elements with the same reason,
detail, index and raw text (``tests.fuzz.inputs.check_mqtt_paths``). The payloads come from the fuzz
generators (``tests/fuzz/inputs.py``): the broken ones of the fuzz suite, and mostly good ones with one
field at an edge, which the columnar path handles itself; tests below make sure it does.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from engine.telemetry.validation import parse_payload, parse_payload_columns, parse_payload_slow
from tests.fuzz.inputs import FIXES, GOOD_FIX, NOW, Mutator, Payload, S, check_mqtt_paths, mqtt_payloads

GATEWAYS = S.replace(mqtt={"auth": {"gateways": {"gw_a": {"password": "p" * 10, "vehicles": "闽DA,V-"}}}})
TIGHT = S.replace(bridge={"max_field_chars": 10, "max_vehicle_id_chars": 8, "max_json_depth": 3},
                  city={"bounds": {"lat_min": 0.0, "lat_max": 25.0, "lon_min": 0.0, "lon_max": 119.0}},
                  worker={"max_speed_kmh": 120.0, "future_tolerance_s": 0.0})
FLAT = S.replace(bridge={"max_json_depth": 1})  # an array of objects is already 2 deep
SETTINGS = {"default": S, "gateways": GATEWAYS, "tight": TIGHT, "flat": FLAT}
FAST = hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def columnar(p: Payload, settings=S):
    return parse_payload_columns(p.payload, topic=p.topic, settings=settings, now=NOW)


@FAST
@given(st.integers(0, 2**32), st.sampled_from(sorted(SETTINGS)))
def test_near_good_payloads_give_what_the_per_element_path_gives(seed, name):
    check_mqtt_paths(Mutator(seed).mqtt_near_good(), SETTINGS[name])


@FAST
@given(mqtt_payloads(), st.sampled_from(sorted(SETTINGS)))
def test_fuzz_payloads_give_what_the_per_element_path_gives(p, name):
    check_mqtt_paths(p, SETTINGS[name])


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_many_seeded_payloads_and_most_take_the_columnar_path(name):
    settings, m = SETTINGS[name], Mutator(7)
    near_good = [m.mqtt_near_good() for _ in range(1500)]
    for p in near_good + [m.mqtt() for _ in range(1500)]:
        check_mqtt_paths(p, settings)
    answered = [a for a in (columnar(p, settings) for p in near_good) if a is not None]
    assert len(answered) > len(near_good) // 2, "the columnar path handed most payloads over"
    assert sum(1 for a in answered if len(a.fixes) and a.rejections) > 20, "few mixed arrays kept by the columnar path"
    assert sum(1 for a in answered if not len(a.fixes)) > 20, "few arrays wholly rejected by the columnar path"


def test_good_payloads_take_the_columnar_path():
    single = orjson.dumps(GOOD_FIX)
    many = [{**GOOD_FIX, "ts": NOW - i, "vehicle_id": f"闽D{i:05d}"} for i in range(1000)]
    extra = [{**f, "satellites": 9, "hdop": [0.9]} for f in many[:5]]
    indented = json.dumps(GOOD_FIX, indent=2).encode()  # \u-escaped plate, whitespace
    for topic, raw in ((f"{FIXES}/闽D12345", single), (FIXES, orjson.dumps(many)), (FIXES, orjson.dumps(extra)),
                       (FIXES, json.dumps(many[:3]).encode()), (f"{FIXES}/闽D12345", indented)):
        got = parse_payload_columns(raw, topic=topic, settings=S, now=NOW)
        assert got is not None and not got.rejections
        assert got.fixes.fixes() == parse_payload_slow(raw, topic=topic, settings=S, now=NOW).fixes.fixes()


def test_rows_that_fail_a_check_are_rejected_by_validate_fix_with_their_index_and_raw():
    items = [GOOD_FIX, {**GOOD_FIX, "lat": 0, "lon": 0}, {**GOOD_FIX, "ts": NOW + 301}, {**GOOD_FIX, "class": "tank"},
             {**GOOD_FIX, "vehicle_id": "闽D/1"}, {**GOOD_FIX, "heading": 400, "ts": NOW - 1}]
    raw = orjson.dumps(items)
    got = parse_payload_columns(raw, topic=FIXES, settings=S, now=NOW)
    assert got is not None
    assert [(r.index, r.reason) for r in got.rejections] == [
        (1, "null_island"), (2, "future_timestamp"), (3, "bad_class"), (4, "bad_vehicle_id"), (5, "bad_heading")]
    assert [orjson.loads(r.raw) for r in got.rejections] == items[1:]
    [f] = got.fixes.fixes()
    assert (f.vehicle_id, f.vclass, f.ts, f.lat, f.alarm_flags, f.valid, f.source) == (
        "闽D12345", "hazmat", NOW, 24.4798, 0, None, "mqtt")
    assert got.rejections == parse_payload_slow(raw, topic=FIXES, settings=S, now=NOW).rejections


@pytest.mark.parametrize("raw, reason", [
    (b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 24.5, "lon": 118.1, "x": 1e999}', "bad_json"),
    (b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 24.5, "lon": 118.1, "x": 1' + b"0" * 400 + b"}", "bad_json"),
    (b'{"vehicle_id": "V1", "ts": 1' + b"0" * 400 + b', "lat": 24.5, "lon": 118.1}', "bad_json"),
    (b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 24.5, "lon": 118.1, "x": "\xff"}', "bad_json"),
    (b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 24.5, "lon": 118.1, "\xed\xa0\x80": 1}', "bad_json"),
    (b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 24.5, "lon": 118.1, "x": "\\ud800"}', "bad_json"),
    (b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 24.5, "lon": 118.1, "l\\u0061t": 91}', "bad_coordinates"),
    (b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 91, "lon": 118.1, "lat": 24.5}', None),
    (b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 24.5, "lon": 118.1, "alarm_flags": 1.0}', "bad_type"),
    (b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 24.5, "lon": 118.1, "alarm_flags": 1' + b"0" * 400 + b"}",
     "bad_json"),
    (b'[{"vehicle_id": "V1", "ts": 1788832800, "lat": 24.5, "lon": 118.1, "status_flags": 1' + b"0" * 40 + b"}]",
     "bad_type"),
    (b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 24.5, "lon": 118.1, "alarm_flags": 18446744073709551615}',
     "bad_type"),
    (b'{"vehicle_id": "V1", "ts": 1788832800000, "lat": 24.5, "lon": 118.1}', "bad_timestamp"),
    (b'{"vehicle_id": "V1", "ts": "2026-09-08T10:00:00", "lat": 24.5, "lon": 118.1}', "bad_timestamp"),
    (b'{"vehicle_id": "V1", "ts": null, "lat": 24.5, "lon": 118.1}', "bad_timestamp"),
    (b'{"vehicle_id": "V1", "lat": 24.5, "lon": 118.1}', "missing_field"),
    (b'{"vehicle_id": " ", "ts": 1788832800, "lat": 24.5, "lon": 118.1}', "bad_vehicle_id"),
    (b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 24.5, "lon": 118.1, "extra": {"a": [[[[[[[1]]]]]]]}}', "too_deep"),
    (b'[{"vehicle_id": "V1", "ts": 1788832800, "lat": 24.5, "lon": 118.1}, 7]', "bad_shape"),
    (b"[]", "bad_shape"),
])
def test_where_msgspec_and_orjson_differ_the_per_element_answer_stands(raw, reason):
    topic = f"{FIXES}/V1" if raw.startswith(b"{") else FIXES
    got = parse_payload(raw, topic=topic, settings=S, now=NOW)
    assert [r.reason for r in got.rejections] == ([reason] if reason else [])
    check_mqtt_paths(Payload(topic, raw, [], raw.startswith(b"[")))


def test_gateway_vehicle_prefixes_and_topic_vehicle_are_checked_per_row():
    fixes = [{**GOOD_FIX, "vehicle_id": v} for v in ("闽DA0001", "闽DZ0001", "V-7", "闽DA0001")]
    got = parse_payload_columns(orjson.dumps(fixes), topic=f"{FIXES}/gw_a", settings=GATEWAYS, now=NOW)
    assert got is not None and [(r.index, r.reason) for r in got.rejections] == [(1, "foreign_vehicle")]
    assert got.fixes.vehicle_id == ["闽DA0001", "V-7", "闽DA0001"]
    assert all(r.extra == {"gateway": "gw_a"} for r in got.rejections)
    got = parse_payload_columns(orjson.dumps(fixes), topic=f"{FIXES}/gw_a/闽DA0001", settings=GATEWAYS, now=NOW)
    assert got is not None and [(r.index, r.reason) for r in got.rejections] == [(1, "vehicle_mismatch"),
                                                                                (2, "vehicle_mismatch")]
    assert all(r.vehicle_id == "闽DA0001" for r in got.rejections)


def test_columns_hold_missing_values_as_the_contract_says():
    raw = orjson.dumps([{**GOOD_FIX, "valid": False, "status_flags": 3}, {k: GOOD_FIX[k] for k in ("vehicle_id", "ts",
                                                                                                   "lat", "lon")}])
    cols = parse_payload(raw, topic=FIXES, settings=S, now=NOW).fixes
    assert cols.alarm_flags.tolist() == [0, -1] and cols.status_flags.tolist() == [3, -1]
    assert cols.valid.tolist() == [0, -1] and cols.vclass.tolist() == ["hazmat", "other"]
    assert cols.speed_kmh[0] == 42.5 and cols.speed_kmh[1] != cols.speed_kmh[1]  # NaN: not sent
    assert cols.received_at.tolist() == [NOW, NOW] and {cols.sources[c] for c in cols.source_code} == {"mqtt"}


def test_a_limit_rejection_is_the_per_element_one():
    many = orjson.dumps([GOOD_FIX] * (S.bridge.max_fixes_per_message + 1))
    assert parse_payload_columns(many, topic=FIXES, settings=S, now=NOW) is None
    assert [r.reason for r in parse_payload(many, topic=FIXES, settings=S, now=NOW).rejections] == ["too_many_fixes"]
    check_mqtt_paths(Payload(FIXES, many, [], True))
    check_mqtt_paths(Payload(f"{FIXES}/a/b", orjson.dumps(GOOD_FIX), [], False))
