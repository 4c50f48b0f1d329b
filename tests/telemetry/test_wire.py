"""The ``fixes`` record: binary columns round-trip exactly, the old JSON form still reads, anything else is a
ValueError naming the problem (never another exception, never a huge allocation)."""

from __future__ import annotations

import math
import struct

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from engine.telemetry import wire
from engine.telemetry.columns import FixColumns, from_fixes
from engine.telemetry.models import CLASSES, Fix
from engine.telemetry.wire import decode_columns, decode_fixes

T0 = 1_788_832_800.0
FULL = Fix("闽DH0001", T0, 24.4798, 118.0894, "hazmat", speed_kmh=42.5, heading=270.0, accuracy_m=5.0,
           alarm_flags=2**32 - 1, received_at=T0 + 0.25, source="jt808", valid=True, status_flags=2)
BARE = Fix("V2", T0 + 1.5, -33.9, 151.2)  # every optional value missing
MIXED = [FULL, BARE, Fix("🚚-x", T0 + 2, 24.5, 118.1, "taxi", valid=False, alarm_flags=0, status_flags=0),
         Fix("闽DH0001", T0 + 3, 24.5, 118.1, "bus", source="mqtt", speed_kmh=0.0)]


def record(fixes: list[Fix]) -> bytes:
    return wire.encode(from_fixes(fixes))


def header(value: bytes) -> tuple:
    return struct.unpack_from("<3sBIIBBII", value)


def with_header(value: bytes, **fields: int) -> bytes:
    names = ("magic", "version", "n", "ids", "n_classes", "n_sources", "classes", "sources")
    h = dict(zip(names, header(value))) | fields
    return struct.pack("<3sBIIBBII", *(h[k] for k in names)) + value[struct.calcsize("<3sBIIBBII"):]


def columns_offset(value: bytes) -> int:
    _, _, _, ids, _, _, cls, src = header(value)
    end = struct.calcsize("<3sBIIBBII") + ids + cls + src
    return end + (-end % 8)


# -- round trip --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fixes", [[FULL], [BARE], MIXED, [FULL] * 1000, []],
                         ids=["full", "bare", "mixed", "1000", "0"])
def test_round_trip_keeps_every_value(fixes):
    value = record(fixes)
    assert value[:4] == b"CWF\x01"
    assert decode_fixes(value) == fixes
    cols = decode_columns(value)
    assert len(cols) == len(fixes) and isinstance(cols, FixColumns)
    assert len(value) == columns_offset(value) + wire.ROW_BYTES * len(fixes)


def test_missing_values_are_nan_and_minus_one_and_arrays_are_writable_with_explicit_dtypes():
    cols = wire.decode(record([BARE, FULL]))
    assert math.isnan(cols.speed_kmh[0]) and math.isnan(cols.received_at[0])
    assert cols.alarm_flags[0] == -1 and cols.status_flags[0] == -1 and cols.valid[0] == -1
    assert cols.alarm_flags[1] == 2**32 - 1 and cols.valid[1] == 1
    assert cols.sources[cols.source_code[1]] == "jt808" and list(cols.vclass) == ["other", "hazmat"]
    for name, dtype in [("ts", np.float64), ("alarm_flags", np.int64), ("valid", np.int8), ("class_code", np.uint8)]:
        arr = getattr(cols, name)
        assert arr.dtype == dtype and arr.flags.writeable and arr.flags.aligned, name
    cols.lat[0] = 0.0  # a copy: the record's bytes are not pinned nor written through


def test_mixed_classes_and_sources_and_unicode_plates():
    fixes = [Fix(f"闽D{c[:2]}{i:04d}", T0 + i, 24.5, 118.1, c, source=("mqtt", "jt808", "sim")[i % 3])
             for i, c in enumerate(CLASSES * 3)]
    cols = wire.decode(record(fixes))
    assert set(cols.classes) == set(CLASSES) and set(cols.sources) == {"mqtt", "jt808", "sim"}
    assert cols.vehicle_id == [f.vehicle_id for f in fixes] and cols.fixes() == fixes


def test_accepts_bytes_like_values():
    value = record(MIXED)
    assert wire.decode(memoryview(value)).fixes() == wire.decode(bytearray(value)).fixes() == MIXED


# -- the old JSON form (mixed-version rollout) ---------------------------------------------------------------

def test_old_json_object_and_array_decode_to_the_same_fixes():
    assert decode_fixes(FULL.to_json()) == [FULL]
    assert decode_fixes(b"[" + b",".join(f.to_json() for f in MIXED) + b"]") == MIXED == decode_fixes(record(MIXED))
    assert decode_fixes(b"[]") == []


def test_old_json_defaults_and_int_numbers():
    [f] = decode_fixes(b'{"vehicle_id": "V1", "ts": 1788832800, "lat": 24, "lon": 118, "class": null, "source": null}')
    assert f == Fix("V1", T0, 24.0, 118.0, "other", source="mqtt")


@pytest.mark.parametrize("value, reason", [
    (b"", "nor JSON"),
    (b"{not json", "nor JSON"),
    (b"1", "not an object"),
    (b'[{"vehicle_id": "V1", "ts": 1, "lat": 2, "lon": 3}, 7]', "fix #1: not an object"),
    (b'{"vehicle_id": "", "ts": 1, "lat": 2, "lon": 3}', "vehicle_id must be a non-empty string"),
    (b'{"vehicle_id": 5, "ts": 1, "lat": 2, "lon": 3}', "vehicle_id must be a non-empty string"),
    (b'{"vehicle_id": "V1", "ts": "x", "lat": 2, "lon": 3}', "ts must be a number"),
    (b'{"vehicle_id": "V1", "ts": true, "lat": 2, "lon": 3}', "ts must be a number"),
    (b'{"vehicle_id": "V1", "ts": 1, "lat": 2}', "lon must be a number"),
    (b'{"vehicle_id": "V1", "ts": 1, "lat": 2, "lon": 3, "valid": 1}', "valid has the wrong type"),
    (b'{"vehicle_id": "V1", "ts": 1, "lat": 2, "lon": 3, "alarm_flags": 1.5}', "alarm_flags has the wrong type"),
    (b'{"vehicle_id": "V1", "ts": 1, "lat": 2, "lon": 3, "alarm_flags": -2}', "alarm_flags -2 is outside"),
    (b'{"vehicle_id": "V1", "ts": 1, "lat": 2, "lon": 3, "status_flags": 18446744073709551615}', "status_flags"),
])
def test_bad_json_records_name_the_problem(value, reason):
    with pytest.raises(ValueError, match=reason):
        wire.decode(value)


# -- malformed binary records ----------------------------------------------------------------------------------

GOOD = record(MIXED)


def at(value: bytes, offset: int, data: bytes) -> bytes:
    return value[:offset] + data + value[offset + len(data):]


def column(value: bytes, index: int, itemsize: int = 8) -> int:
    """Byte offset of column ``index`` (0..6 floats, 7..8 flags; itemsize 8) of ``value``."""
    return columns_offset(value) + index * header(value)[2] * itemsize


def small(value: bytes, index: int) -> int:
    """Byte offset of the one-byte column ``index`` (0 valid, 1 class_code, 2 source_code)."""
    n = header(value)[2]
    return columns_offset(value) + 9 * 8 * n + index * n


@pytest.mark.parametrize("value, reason", [
    (None, "tombstone"),
    (b"CWF", "truncated"),
    (b"CWX" + GOOD[3:], "nor JSON"),
    (at(GOOD, 3, b"\x02"), "unknown fixes record version 2"),
    (GOOD[:-1], "lengths do not add up.*truncated"),
    (GOOD + b"\x00" * 8, "lengths do not add up"),
    (with_header(GOOD, n=5), "lengths do not add up"),
    (with_header(GOOD, n=2**32 - 1), "lengths do not add up"),        # no 300 GB allocation first
    (with_header(GOOD, ids=2**32 - 1), "lengths do not add up"),
    (at(GOOD, 22, b"\xff"), "vehicle ids are not UTF-8"),
    (at(GOOD, 22 + len("闽DH0001".encode()), b"X"), "vehicle id strings where the header says 4"),
    (with_header(GOOD, n_classes=9), "class strings where the header says 9"),
    (at(GOOD, column(GOOD, 0), struct.pack("<d", math.nan)), "fix #0: ts is NaN or infinite"),
    (at(GOOD, column(GOOD, 1) + 8, struct.pack("<d", math.inf)), "fix #1: lat is NaN or infinite"),
    (at(GOOD, column(GOOD, 2) + 16, struct.pack("<d", -math.inf)), "fix #2: lon is NaN or infinite"),
    (at(GOOD, column(GOOD, 3), struct.pack("<d", math.inf)), "fix #0: speed_kmh is infinite"),
    (at(GOOD, column(GOOD, 7) + 8, struct.pack("<q", -2)), "alarm_flags -2 is negative"),
    (at(GOOD, small(GOOD, 0) + 1, b"\x05"), "valid must be -1"),
    (at(GOOD, small(GOOD, 1) + 3, b"\x09"), "fix #3: class code 9 is outside its table of 4"),
    (at(GOOD, small(GOOD, 2), b"\xff"), "fix #0: source code 255 is outside its table of 2"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_malformed_binary_records_name_the_problem(value, reason):
    with pytest.raises(ValueError, match=reason):
        wire.decode(value)


def test_an_empty_vehicle_id_and_non_zero_padding_are_refused():
    eight = record([Fix("12345678", T0, 24.5, 118.1)])
    # Without its 8 id bytes the columns stay 8-byte aligned: only the id is wrong.
    empty = with_header(eight[:22] + eight[30:], ids=0)
    with pytest.raises(ValueError, match="an empty vehicle id"):
        wire.decode(empty)
    one = record([BARE])
    _, _, _, id_len, _, _, cls_len, src_len = header(one)
    pad_at = 22 + id_len + cls_len + src_len
    assert pad_at < columns_offset(one)
    with pytest.raises(ValueError, match="non-zero padding"):
        wire.decode(at(one, pad_at, b"\x01"))


def test_every_truncation_of_a_record_is_a_value_error():
    for cut in range(len(GOOD)):
        with pytest.raises(ValueError):
            wire.decode(GOOD[:cut])


@pytest.mark.parametrize("fix, reason", [
    (Fix("V\x001", T0, 24.5, 118.1), "vehicle id contains NUL"),
    (Fix("", T0, 24.5, 118.1), "empty vehicle id"),
    (Fix("V\ud800", T0, 24.5, 118.1), "lone surrogate"),
    (Fix("V1", math.nan, 24.5, 118.1), "ts is NaN"),
    (Fix("V1", T0, 24.5, math.inf), "lon is NaN or infinite"),
    (Fix("V1", T0, 24.5, 118.1, "a\x00b"), "class contains NUL"),
])
def test_encode_refuses_what_decode_would(fix, reason):
    with pytest.raises(ValueError, match=reason):
        record([fix])


# -- properties ------------------------------------------------------------------------------------------------

ids = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), min_size=1, max_size=12)
opt_float = st.none() | st.floats(allow_nan=False, allow_infinity=False)
opt_flags = st.none() | st.integers(0, 2**32 - 1)
fix_strategy = st.builds(
    Fix, ids, st.floats(allow_nan=False, allow_infinity=False), st.floats(-90, 90), st.floats(-180, 180),
    st.sampled_from(CLASSES), opt_float, opt_float, opt_float, opt_flags, opt_float,
    st.sampled_from(["mqtt", "jt808", "闽-gw"]), st.none() | st.booleans(), opt_flags)
PROPS = hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(st.lists(fix_strategy, max_size=40))
def test_any_fixes_round_trip(fixes):
    assert wire.decode(record(fixes)).fixes() == fixes
    assert wire.decode(b"[" + b",".join(f.to_json() for f in fixes) + b"]").fixes() == fixes


@PROPS
@given(st.binary(max_size=400) | st.binary(max_size=200).map(lambda b: b"CWF\x01" + b))
def test_random_bytes_only_ever_raise_value_error(raw):
    try:
        cols = wire.decode(raw)
    except ValueError:
        return
    assert all(isinstance(f.vehicle_id, str) and math.isfinite(f.ts) for f in cols.fixes())


@PROPS
@given(st.lists(fix_strategy, min_size=1, max_size=5), st.data())
def test_corrupted_records_decode_to_valid_columns_or_raise_value_error(fixes, data):
    value = bytearray(record(fixes))
    for _ in range(data.draw(st.integers(1, 4))):
        value[data.draw(st.integers(0, len(value) - 1))] = data.draw(st.integers(0, 255))
    try:
        cols = wire.decode(bytes(value))
    except ValueError:
        return
    for f in cols.fixes():  # what decodes is something every reader can use
        assert f.vehicle_id and math.isfinite(f.ts) and math.isfinite(f.lat) and math.isfinite(f.lon)
    assert wire.decode(wire.encode(cols)).fixes() == cols.fixes()


def test_json_of_the_old_bridge_and_binary_agree_on_a_large_batch():
    fixes = [Fix(f"闽D{i:05d}", T0 + i, 24.4 + i * 1e-6, 118.0, CLASSES[i % 8], speed_kmh=float(i % 90),
                 received_at=T0 + i + 0.5, alarm_flags=i % 3) for i in range(5000)]
    old = orjson.dumps([orjson.loads(f.to_json()) for f in fixes])
    assert wire.decode(old).fixes() == wire.decode(record(fixes)).fixes() == fixes


# -- through a real worker ---------------------------------------------------------------------------------------

def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(run())


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_a_worker_reads_both_forms_and_rejects_a_truncated_binary_record_as_bad_record(make_settings, spawn):
    import base64
    import time

    from engine.topology import ensure_all_topics
    from tests.conftest import metric_value, read_topic, scrape, wait_for

    settings = make_settings()
    ensure_all_topics(settings)
    t = time.time() - 120
    new = [Fix("闽DW0001", t + i, 24.5, 118.1 + i * 1e-4, "taxi", received_at=t + i) for i in range(5)]
    old = [Fix("闽DW0002", t + i, 24.5, 118.1 + i * 1e-4, "bus", received_at=t + i) for i in range(3)]
    truncated = record(new)[:-5]
    produce(settings.kafka.bootstrap, settings.kafka.topics.fixes, [
        ("闽DW0001".encode(), record(new)), ("闽DW0002".encode(), b"[" + b",".join(f.to_json() for f in old) + b"]"),
        ("闽DW0001".encode(), truncated)])
    worker = spawn("worker", ["worker"], settings)
    [(_, value)] = read_topic(settings.kafka.bootstrap, settings.kafka.topics.fixes_rejected, min_count=1, timeout=120)
    r = orjson.loads(value)
    assert r["reason"] == "bad_record" and r["source"] == "kafka", r
    assert "lengths do not add up" in r["detail"] and settings.kafka.topics.fixes in r["detail"]
    raw = base64.b64decode(r["raw"]) if r["raw_encoding"] == "base64" else r["raw"].encode()
    assert raw == truncated

    def checked() -> float:
        assert worker.proc.poll() is None, worker.log()
        try:
            return metric_value(scrape(settings.web.port), "citywatch_zone_checks_total")
        except OSError:  # its web server not up yet
            return -1.0

    wait_for(lambda: checked() == len(new) + len(old), 60, "the worker to check the fixes of both good records")
