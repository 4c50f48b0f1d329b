"""Property-based fuzzing of every entry point (a sample; ``benchmarks/bench_fuzz.py`` runs >= 100,000 inputs).

Each check runs the real code path (the bridge's ``parse_payload``, the worker's ``decode_fixes``, the zone
loader, the vetting intake the HTTP API and Kafka agents call, ``load_settings``) and asserts: nothing but the
project's own error escapes, every rejection carries a reason from the known set, nothing is lost, good
elements of a mixed array are kept, and no raw ID number is echoed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.fuzz.inputs import (
    FIXES,
    GOOD_FIX,
    Payload,
    check_config,
    check_fixes_record,
    check_mqtt,
    check_vetting,
    check_zone_file,
    check_zones,
    configs,
    deep,
    feature_collections,
    mqtt_payloads,
    to_bytes,
    vetting_bodies,
)
from tests.fuzz.open311_inputs import check as check_open311
from tests.fuzz.open311_inputs import open311_bodies

FAST = hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCRATCH = Path(tempfile.mkdtemp(prefix="citywatch-fuzz-"))


@FAST
@given(mqtt_payloads())
def test_mqtt_payloads(p):
    check_mqtt(p)


@FAST
@given(st.binary(max_size=600), st.sampled_from([FIXES, f"{FIXES}/闽D12345", f"{FIXES}/gw_demo", "elsewhere"]))
def test_mqtt_raw_bytes(raw, topic):
    check_mqtt(Payload(topic, raw, [], False))


@FAST
@given(st.binary(max_size=300) | st.binary(max_size=300).map(lambda b: b"CWF\x01" + b)
       | mqtt_payloads().map(lambda p: p.payload))
def test_fixes_records_a_foreign_producer_might_write(raw):
    check_fixes_record(raw)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feature_collections())
def test_zone_documents(obj):
    check_zones(obj)


@hsettings(max_examples=150, deadline=None)
@given(st.binary(max_size=400) | feature_collections().map(to_bytes))
def test_zone_files(raw):
    check_zone_file(raw, SCRATCH / "zones.geojson")


@FAST
@given(vetting_bodies())
def test_vetting_bodies(kind_body):
    check_vetting(*kind_body)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_config_files_and_environment(text_env):
    check_config(*text_env, SCRATCH / "config.yaml")


# -- the edges, named ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload, reason", [
    (to_bytes([GOOD_FIX, deep(9)]), "too_deep"),
    (to_bytes({**GOOD_FIX, "extra": deep(7)}), None),                      # 8 levels: within bridge.max_json_depth
    (to_bytes({**GOOD_FIX, "extra": deep(8)}), "too_deep"),
    (to_bytes({**GOOD_FIX, "vehicle_id": "V" * 65}), "bad_vehicle_id"),
    (to_bytes({**GOOD_FIX, "ts": " " * 60 + "2026-09-08T10:00:00+08:00"}), "field_too_long"),
    (to_bytes({**GOOD_FIX, "class": "x" * 65}), "field_too_long"),
    (to_bytes({**GOOD_FIX, "ts": "1999-12-31T23:59:59+00:00"}), "bad_timestamp"),
    (b'{"vehicle_id": "V1", "ts": NaN, "lat": 24.5, "lon": 118.1}', "bad_json"),
    (b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 1e999, "lon": 118.1}', "bad_json"),
    (to_bytes({**GOOD_FIX, "lat": 2**64}), "bad_coordinates"),
    ("[" + ",".join(['{"vehicle_id":"闽D12345","ts":1788832800,"lat":24.5,"lon":118.1}'] * 3 + ["1"] * 6 + ["[[[[[[[[[]]]]]]]]]"])
     + "]", "too_deep"),                                                   # brackets counted right past scalars
])
def test_limits_name_their_setting(payload, reason):
    from engine.telemetry.validation import parse_payload
    from tests.fuzz.inputs import NOW, S

    raw = payload.encode() if isinstance(payload, str) else payload
    p = parse_payload(raw, topic=f"{FIXES}/闽D12345" if raw.startswith(b"{") else FIXES, settings=S, now=NOW)
    got = [r.reason for r in p.rejections]
    assert got == ([reason] if reason else []), [r.detail for r in p.rejections]
    if reason in ("too_deep", "bad_vehicle_id", "field_too_long"):
        assert "limit bridge.max_" in p.rejections[0].detail


def test_gateway_topics_and_their_vehicles():
    from engine.telemetry.validation import parse_payload
    from tests.fuzz.inputs import NOW, S

    s = S.replace(mqtt={"auth": {"gateways": {"gw_a": {"password": "p" * 10, "vehicles": "闽DA,闽DB"},
                                              "gw_c": {"password": "p" * 10, "prefix": "citywatch/fixes/fleet/c"}}}})
    fix = {**GOOD_FIX, "vehicle_id": "闽DA0001"}

    def reasons(topic: str, obj) -> list[str]:
        p = parse_payload(to_bytes(obj), topic=topic, settings=s, now=NOW)
        return [r.reason for r in p.rejections]

    assert reasons("citywatch/fixes/gw_a/闽DA0001", fix) == []
    assert reasons("citywatch/fixes/gw_a", [fix, {**fix, "vehicle_id": "闽DZ0001"}]) == ["foreign_vehicle"]
    assert reasons("citywatch/fixes/gw_a/闽DA0002", fix) == ["vehicle_mismatch"]
    assert reasons("citywatch/fixes/fleet/c/闽DA0001", fix) == [] and reasons("citywatch/fixes/fleet/c", [fix]) == []
    assert reasons("citywatch/fixes/闽DA0001", fix) == []                   # the original form still works
    assert reasons("citywatch/fixes/fleet/x/闽DA0001", fix) == ["bad_topic"]
    assert reasons("citywatch/fixesX", fix) == ["bad_topic"]


def test_zone_limits_name_their_setting(tmp_path):
    from engine.geofence.settings import ZonesSettings
    from tests.fuzz.inputs import GOOD_FEATURE, RING

    limits = ZonesSettings(max_file_bytes=2000, max_features=2, max_vertices=5)
    fc = {"type": "FeatureCollection", "features": [GOOD_FEATURE]}
    assert check_zones(fc, limits) is None
    assert check_zones({**fc, "features": [GOOD_FEATURE] * 3}, limits) == "zone:features"
    six = {**GOOD_FEATURE, "geometry": {"type": "Polygon", "coordinates": [RING[:4] + [[118.105, 24.605]] + RING[:1]]}}
    assert check_zones({**fc, "features": [six]}, limits) == "zone:geometry.coordinates"
    f = tmp_path / "big.geojson"
    assert check_zone_file(to_bytes(fc) + b" " * 2000, f, limits) == "zone:file"
    from engine.core.errors import ZoneFileError
    from engine.geofence.zone_models import load_zone_file

    with pytest.raises(ZoneFileError, match=r"limit zones.max_file_bytes \(2000\)"):
        load_zone_file(f, limits=limits)
    f.write_bytes(b"[" * 100000)
    with pytest.raises(ZoneFileError, match="nested too deeply|invalid JSON"):
        load_zone_file(f)


def test_an_id_number_as_a_json_key_is_not_echoed_into_the_rejected_topic():
    assert check_vetting("record", to_bytes({"35020319900101123X": 1, "id": "R1"})) is not None


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(open311_bodies())
def test_open311_bodies(case):
    check_open311(case)
