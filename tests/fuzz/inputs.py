"""Generated inputs for every entry point, and the checks every answer must pass.

Two generators over the same ideas: hypothesis strategies (the test suite, which
shrinks a failure to its smallest form) and a fast seeded mutator
(``benchmarks/bench_fuzz.py``, hundreds of thousands of inputs). Each entry
point has one ``check_*`` function: it runs the real code path on one input
and returns the rejection reason (``None`` when accepted), raising
``AssertionError`` when a property is broken. An exception of any other kind
escaping the code under test is a crash.
"""

from __future__ import annotations

import json
import math
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import yaml
from hypothesis import strategies as st

from engine.core.errors import ConfigError, ZoneFileError
from engine.geofence.zone_models import load_zone_file, parse_feature_collection
from engine.settings import Settings, load_settings
from engine.telemetry import wire
from engine.telemetry.fix_rules import MIN_TS
from engine.telemetry.rejection import REASONS
from engine.telemetry.validation import parse_payload, parse_payload_slow
from engine.telemetry.wire import decode_fixes
from engine.vetting.errors import InvalidInput
from engine.vetting.intake import Intake, rejection
from engine.vetting.privacy import PersonKeyer

S = load_settings(env={})
NOW = 1_788_832_800.0  # 2026-09-08T10:00:00+08:00
FIXES = S.mqtt.fixes_topic
GOOD_FIX = {"vehicle_id": "闽D12345", "class": "hazmat", "ts": "2026-09-08T10:00:00+08:00", "lat": 24.4798,
            "lon": 118.0894, "speed_kmh": 42.5, "heading": 270, "accuracy_m": 5, "alarm_flags": 0}
ID_NUMBERS = ("35020319900101123X", "11010519491231002X", "440524188001010014")

# -- values that break things ---------------------------------------------------------------------------------

NASTY_TEXT = ["", " ", "\x00", "\ud800", "闽D", "a" * 5000, "NaN", "Infinity", "-1e999", "1e400", "null", "[]",
              "{}", "\u202e", "🚚", "2026-09-08T10:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-23:59",
              "2026-02-30T10:00:00+08:00", "citywatch/fixes/#", "+", "/", *ID_NUMBERS]
NASTY_NUMBERS = [0, -1, 1, 2**31, 2**63 - 1, -(2**63), 2**64 - 1, 1e308, -1e308, 5e-324, 0.1, 24.5, 118.1,
                 1e11, 1e12, MIN_TS - 1, NOW * 1000, 90.0000001, 180.5, 360, 361]
JSON_TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"nan", b"undefined", b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]
#: One field of a good fix set to a value at or just past an edge of what the bridge accepts (DROP: left out).
DROP = object()
FIX_EDGES: list[tuple[str, Any]] = [
    *((k, DROP) for k in ("vehicle_id", "ts", "lat", "lon", "speed_kmh", "class")),
    ("lat", 0), ("lon", 0), ("lat", 91), ("lat", 31.23), ("lat", 24.38), ("lat", 24.9), ("lat", 24.9000001),
    ("lon", 200), ("lon", 117.88), ("lat", 24), ("lat", -0.0), ("lat", None), ("lon", 2**64),
    ("speed_kmh", -1), ("speed_kmh", -0.0), ("speed_kmh", 250), ("speed_kmh", 250.0001), ("speed_kmh", None),
    ("heading", 360), ("heading", 360.0001), ("heading", 0), ("accuracy_m", 1e6), ("accuracy_m", 1e6 + 1),
    ("alarm_flags", 2**32 - 1), ("alarm_flags", 2**32), ("alarm_flags", -1), ("alarm_flags", 2**64 - 1),
    ("status_flags", 2**31), ("status_flags", 2**32), ("status_flags", None), ("valid", True), ("valid", None),
    ("class", "tank"), ("class", "x" * 65), ("class", None), ("class", "other"), ("class", ""),
    ("class", "ride_hailing"),
    ("vehicle_id", "a/b"), ("vehicle_id", "a+"), ("vehicle_id", "#"), ("vehicle_id", " "), ("vehicle_id", ""),
    ("vehicle_id", "\u3000"), ("vehicle_id", " V-1 "), ("vehicle_id", "V" * 64), ("vehicle_id", "V" * 65),
    ("vehicle_id", "a\x00b"), ("vehicle_id", None), ("vehicle_id", "闽DA0001"), ("vehicle_id", "闽DZ0001"),
    ("ts", NOW * 1000), ("ts", NOW + 300), ("ts", NOW + 300.5), ("ts", MIN_TS), ("ts", MIN_TS - 1), ("ts", 1e11),
    ("ts", 0), ("ts", -5), ("ts", None), ("ts", int(NOW)), ("ts", "2026-09-08T10:00:00+08:00"),
    ("ts", "2026-09-08T10:05:00+08:00"), ("ts", "2026-09-08T10:05:01+08:00"), ("ts", "2026-09-08T10:00:00"),
    ("ts", "2026-09-08T02:00:00Z"), ("ts", " 2026-09-08T10:00:00+08:00 "), ("ts", "2026-09-08T10:00:00.123456+08:00"),
    ("ts", "x" * 65), ("ts", "yesterday"), ("ts", "9999-12-31T23:59:59-23:59"), ("ts", "1999-12-31T23:59:59+00:00"),
    ("ts", "0001-01-01T00:00:00+14:00"), ("ts", ""),
    ("extra", 1), ("extra", "x"), ("extra", [1, [2]]), ("extra", {"a": {"b": None}}), ("source", "kafka"),
    ("received_at", 5),
    # a JSON type the columnar decode does not take: the whole payload goes the per-element way
    ("lat", "24.5"), ("valid", 1), ("alarm_flags", 1.0), ("ts", True), ("class", 7), ("vehicle_id", 12345),
]
#: Raw text spliced into a fix object: values orjson refuses that a skipping decoder might not, repeated keys.
FIX_SPLICES = [b'"x": 1e999, ', b'"x": "\xff", ', b'"x": ' + b"1" * 400 + b", ", b'"x": "\\ud800", ', b'"x": -0, ',
               b'"x": 1E+2, ', b'"x": "\\u0041", ', b'"\xc3\x28": 1, ', b'"lat": 91, ', b'"l\\u0061t": 24.5, ',
               b'"ts": 1' + b"0" * 400 + b", ", b'"alarm_flags": 1' + b"0" * 400 + b", ",
               b'"alarm_flags": 1' + b"0" * 30 + b", ", b'"x": 12345678901234567890123, ', b'"x": [1,], ',
               b'"lat": 24.50000000000000088817841970012523233890533447265625, ', b'"lon": 118.1000000000000000000001, ']

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(NASTY_NUMBERS)
                | st.text(max_size=40) | st.sampled_from(NASTY_TEXT))
json_keys = st.text(max_size=8) | st.sampled_from(NASTY_TEXT)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(json_keys, c, max_size=4),
                           max_leaves=12)


def deep(depth: int, leaf: Any = 1) -> Any:
    v = leaf
    for i in range(depth):
        v = [v] if i % 2 else {"x": v}
    return v


# -- MQTT payloads --------------------------------------------------------------------------------------------

@st.composite
def good_fixes(draw: st.DrawFn, vehicle: str | None = None) -> dict[str, Any]:
    b = S.city.bounds
    fix = {"vehicle_id": vehicle or draw(st.sampled_from(["闽D12345", "闽DH0001", "V-1", "京A00001"])),
           "ts": draw(st.floats(NOW - 86400, NOW)),
           "lat": draw(st.floats(b.lat_min, b.lat_max)), "lon": draw(st.floats(b.lon_min, b.lon_max))}
    for key, strat in (("class", st.sampled_from(["hazmat", "taxi", "police"])), ("speed_kmh", st.floats(0, 120)),
                       ("heading", st.integers(0, 359)), ("accuracy_m", st.floats(0, 30)),
                       ("alarm_flags", st.integers(0, 2**32 - 1)), ("valid", st.booleans())):
        if draw(st.booleans()):
            fix[key] = draw(strat)
    return fix


@st.composite
def bad_fixes(draw: st.DrawFn) -> Any:
    """A fix with one to three fields broken (or not an object at all)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    fix = dict(draw(good_fixes()))
    keys = list(GOOD_FIX) + ["valid", "status_flags", "extra"]
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(keys))
        action = draw(st.integers(0, 3))
        if action == 0:
            fix.pop(key, None)
        elif action == 1:
            fix[key] = draw(json_values)
        elif action == 2:
            fix[key] = deep(draw(st.integers(2, 40)))
        else:
            fix[key] = draw(st.sampled_from(NASTY_TEXT + NASTY_NUMBERS))  # type: ignore[operator]
    return fix


@dataclass
class Payload:
    """An MQTT message and what is known about it: the indexes of elements that are certainly valid."""

    topic: str
    payload: bytes
    good: list[int]
    array: bool


@st.composite
def mqtt_payloads(draw: st.DrawFn) -> Payload:
    kind = draw(st.sampled_from(["single", "mixed", "mixed", "bytes", "tokens", "deep", "big"]))
    if kind == "single":
        obj = draw(good_fixes() | bad_fixes())
        return Payload(f"{FIXES}/{obj.get('vehicle_id') if isinstance(obj, dict) else 'x'}", to_bytes(obj), [], False)
    if kind == "mixed":
        n = draw(st.integers(1, 12))
        items, good = [], []
        for i in range(n):
            if draw(st.booleans()):
                items.append(draw(good_fixes()))
                good.append(i)
            else:
                items.append(draw(bad_fixes()))
        return Payload(FIXES, to_bytes(items), good, True)
    if kind == "bytes":
        return Payload(draw(st.sampled_from([FIXES, f"{FIXES}/闽D12345", f"{FIXES}/a/b", "other/topic", f"{FIXES}/"])),
                       draw(st.binary(max_size=400)), [], False)
    if kind == "tokens":
        raw = to_bytes(GOOD_FIX)
        cut = draw(st.integers(0, len(raw)))
        return Payload(f"{FIXES}/闽D12345", raw[:cut] + draw(st.sampled_from(JSON_TOKENS)) + raw[cut:], [], False)
    if kind == "deep":
        return Payload(FIXES, to_bytes([GOOD_FIX, deep(draw(st.integers(3, 1100)))]), [], True)
    n = draw(st.sampled_from([S.bridge.max_fixes_per_message, S.bridge.max_fixes_per_message + 1]))
    return Payload(FIXES, to_bytes([{**GOOD_FIX, "ts": NOW - i} for i in range(n)]), [], True)


def to_bytes(obj: Any) -> bytes:
    """JSON as a sloppy gateway might write it: Python's json, so NaN and huge ints appear too."""
    try:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError, RecursionError):  # e.g. a list as a key: not JSON at all
        return b"[]"


def check_mqtt(p: Payload, settings: Settings = S) -> str | None:
    """The bridge's own decode/validate path (``parse_payload``), then the worker's decode of what it produces."""
    parsed = parse_payload(p.payload, topic=p.topic, settings=settings, now=NOW)
    reasons = [r.reason for r in parsed.rejections]
    assert set(reasons) <= REASONS, f"unknown reason in {reasons}"
    assert parsed.fixes or parsed.rejections, "an input vanished: neither accepted nor rejected"
    for r in parsed.rejections:
        assert r.detail, r.reason
        orjson.loads(r.to_json())
    whole = len(parsed.rejections) == 1 and parsed.rejections[0].index is None
    if p.array and not whole:
        n = len(orjson.loads(p.payload))
        assert len(parsed.fixes) + len(parsed.rejections) == n, "elements lost or counted twice"
        rejected = {r.index for r in parsed.rejections}
        assert not rejected & set(p.good), f"good elements {sorted(rejected & set(p.good))} were rejected"
    b = settings.city.bounds
    for f in parsed.fixes.fixes():
        assert b.lat_min <= f.lat <= b.lat_max and b.lon_min <= f.lon <= b.lon_max
        assert MIN_TS <= f.ts <= NOW + settings.worker.future_tolerance_s and math.isfinite(f.ts)
    if len(parsed.fixes):  # what the bridge produces, and the JSON of older bridges, decode to the same fixes
        cols = parsed.fixes
        assert decode_fixes(wire.encode(cols)) == cols.fixes()
        assert decode_fixes(b"[" + b",".join(f.to_json() for f in cols.fixes()) + b"]") == cols.fixes()
    return ",".join(sorted(set(reasons))) or None


def check_mqtt_paths(p: Payload, settings: Settings = S) -> str | None:
    """The columnar ``parse_payload`` against the per-element path alone: the same fixes, the same rejections."""
    fast = parse_payload(p.payload, topic=p.topic, settings=settings, now=NOW)
    slow = parse_payload_slow(p.payload, topic=p.topic, settings=settings, now=NOW)
    assert fast.fixes.fixes() == slow.fixes.fixes(), "accepted fixes differ from the per-element path's"
    got = [(r.reason, r.detail, r.index, r.raw, r.vehicle_id, r.extra) for r in fast.rejections]
    want = [(r.reason, r.detail, r.index, r.raw, r.vehicle_id, r.extra) for r in slow.rejections]
    assert got == want, f"rejections differ from the per-element path's: {got[:3]} != {want[:3]}"
    return ",".join(sorted({r.reason for r in fast.rejections})) or None


def check_fixes_record(value: bytes) -> str | None:
    """The worker's decode of a ``fixes`` record (a foreign producer may write anything there)."""
    try:
        fixes = decode_fixes(value)
    except ValueError:
        return "bad_record"
    for f in fixes:
        assert isinstance(f.vehicle_id, str) and all(isinstance(v, (int, float)) for v in (f.ts, f.lat, f.lon))
    return None


# -- zone files -----------------------------------------------------------------------------------------------

RING = [[118.10, 24.60], [118.11, 24.60], [118.11, 24.61], [118.10, 24.61], [118.10, 24.60]]
GOOD_FEATURE = {"type": "Feature", "properties": {"id": "z1", "name": "Z", "rule": "forbid", "classes": ["hazmat"]},
                "geometry": {"type": "Polygon", "coordinates": [RING]}}
ZONE_KEYS = {"id": st.text(max_size=5), "rule": st.sampled_from(["forbid", "speed", "corridor", "watch", "x"]),
             "classes": json_values, "exempt": json_values, "severity": json_values, "radius_m": json_values,
             "width_m": json_values, "speed_limit_kmh": json_values, "approach_m": json_values,
             "dwell_s": json_values, "dwell_repeat_s": json_values, "vehicles": json_values,
             "schedule": json_values | st.lists(st.fixed_dictionaries(
                 {"days": st.lists(st.sampled_from(["mon", "tue", "xyz", 1]), max_size=3),
                  "from": st.sampled_from(["08:00", "25:00", "8", None]),
                  "to": st.sampled_from(["18:00", "00:00", "x"])}), max_size=2)}
GEOMETRIES = st.sampled_from([
    {"type": "Point", "coordinates": [118.1, 24.5]}, {"type": "LineString", "coordinates": RING[:3]},
    {"type": "MultiPolygon", "coordinates": [[RING]]}, {"type": "Polygon", "coordinates": [RING[:3]]},
    {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},  # bow-tie
    {"type": "Polygon", "coordinates": [[[float("nan"), 1]] * 4]}, {"type": "Circle"}, None,
    {"type": "Polygon", "coordinates": [[[118.1 + i * 1e-5, 24.5 + (i % 2) * 1e-5] for i in range(30)]]}])


@st.composite
def feature_collections(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    features = []
    for i in range(draw(st.integers(0, 4))):
        f = json.loads(json.dumps(GOOD_FEATURE))
        f["properties"]["id"] = f"z{i}"
        for key in draw(st.lists(st.sampled_from(sorted(ZONE_KEYS)), max_size=3)):
            f["properties"][key] = draw(ZONE_KEYS[key])
        if draw(st.booleans()):
            f["geometry"] = draw(GEOMETRIES | json_values)
        if draw(st.integers(0, 5)) == 0:
            f = draw(json_values)
        features.append(f)
    return as_json({"type": draw(st.sampled_from(["FeatureCollection", "FeatureCollection", "Feature"])),
                    "features": features})


def as_json(obj: Any) -> Any:
    """``obj`` as a JSON parser would hand it over (string keys, no NaN: what a file or the zones topic holds)."""
    try:
        return orjson.loads(to_bytes(obj))
    except orjson.JSONDecodeError:
        return None


def check_zones(obj: Any, limits: Any = None) -> str | None:
    """The zone loader on a decoded document: zones, or ZoneFileError naming the file."""
    try:
        zones = parse_feature_collection(obj, source="fuzz.geojson", limits=limits)
    except ZoneFileError as exc:
        assert str(exc).startswith("fuzz.geojson") and exc.reason
        return f"zone:{exc.field or 'file'}"
    assert all(z.geometry.is_valid for z in zones)
    return None


def check_zone_file(raw: bytes, path: Path, limits: Any = None) -> str | None:
    """The zone loader on raw file bytes."""
    path.write_bytes(raw)
    try:
        load_zone_file(path, limits=limits)
    except ZoneFileError as exc:
        assert str(exc).startswith(str(path))
        return f"zone:{exc.field or 'file'}"
    return None


# -- HTTP bodies (vetting) ------------------------------------------------------------------------------------

APPLICATION = {"name": "Chen Jianguo", "id_number": ID_NUMBERS[0], "licence_class": "C1",
               "licence_first_issued": "2012-05-01", "hukou_city": "厦门", "plate": "闽D8A123",
               "vehicle_registered": "2025-03-01"}
RECORD = {"id": "XMPSB-2006-0113", "id_number": ID_NUMBERS[1], "kind": "drug_use", "date": "2006-03-02"}
VETTING_CODES = frozenset({"bad_json", "bad_shape", "bad_type", "bad_value", "missing_field", "bad_id_number",
                           "too_deep"})


class FixedClock:
    def now(self) -> float:
        return NOW


def intake(settings: Settings = S) -> Intake:
    from zoneinfo import ZoneInfo

    return Intake(PersonKeyer("fuzz-hmac-key-0123456789"), settings.vetting, ZoneInfo(settings.city.tz), FixedClock())


@st.composite
def vetting_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["application", "record", "records"]))
    base = dict(APPLICATION if kind == "application" else RECORD)
    for key in draw(st.lists(st.sampled_from(sorted(base) + ["x", "offence", "points"]), max_size=3)):
        base[key] = draw(json_values | st.sampled_from(NASTY_TEXT))
    body: Any = base
    if kind == "records":
        body = draw(st.lists(st.just(base) | json_values, max_size=4))
    r = draw(st.integers(0, 9))
    if r == 0:
        return kind, draw(st.binary(max_size=200))
    if r == 1:
        return kind, to_bytes(deep(draw(st.integers(3, 1100)), base))
    return kind, to_bytes(body)


def check_vetting(kind: str, body: bytes, it: Intake | None = None) -> str | None:
    """What the vetting API and its Kafka intake run on a body; a rejection never echoes an ID number."""
    it = it or intake()
    try:
        if kind == "application":
            it.application(body, suffix="0" * 12, source="http")
        elif kind == "record":
            it.record(body)
        else:
            it.records(body)
    except InvalidInput as exc:
        assert exc.field and exc.reason and exc.code in VETTING_CODES, (exc.code, exc.field)
        out = rejection(kind, exc, source="kafka", where={}, body=body).decode()
        for n in ID_NUMBERS:
            assert n not in exc.reason and n not in out and n[:17] not in out, "a raw ID number was echoed"
        return f"vetting:{exc.code}"
    return None


# -- config ---------------------------------------------------------------------------------------------------

def _known_keys(prefix: str, d: dict[str, Any], out: list[str]) -> list[str]:
    for k, v in d.items():
        if isinstance(v, dict) and v:
            _known_keys(f"{prefix}{k}.", v, out)
        else:
            out.append(f"{prefix}{k}")
    return out


CONFIG_KEYS = _known_keys("", S.redacted(), [])


@st.composite
def configs(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """(YAML text, environment): a real config with a few keys broken, or junk."""
    r = draw(st.integers(0, 9))
    if r == 0:
        return draw(st.text(max_size=200)), {}
    if r == 1:
        return "[" * draw(st.integers(1, 3000)), {}
    doc: dict[str, Any] = {}
    env: dict[str, str] = {}
    for key in draw(st.lists(st.sampled_from(CONFIG_KEYS + ["mqtt.bogus", "zzz"]), max_size=4)):
        value = draw(json_values | st.sampled_from([".nan", ".inf", "-1", "0", "yes", "~"]))
        if draw(st.booleans()):
            node = doc
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
            node[leaf] = value
        else:
            env["CITYWATCH_" + "__".join(p.upper() for p in key.split("."))] = str(value)[:100]
    if draw(st.integers(0, 5)) == 0:
        env[draw(st.sampled_from(["CITYWATCH_", "CITYWATCH___X", "CITYWATCH_MQTT", "CITYWATCH_MQTT__PORT__X"]))] = "1"
    return yaml.safe_dump(doc, allow_unicode=True), env


def check_config(text: str, env: dict[str, str], path: Path) -> str | None:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_settings(path, env=env)
    except ConfigError as exc:
        msg = str(exc)
        assert msg.startswith(("setting ", "unknown setting ", "config file ", "environment variable ")), msg
        return "config:" + msg.split(":")[0].split(" ")[0]
    return None


# -- the fast mutator (benchmark) -----------------------------------------------------------------------------

class Mutator:
    """Seeded, fast random inputs in the same families as the strategies above."""

    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def value(self, depth: int = 0) -> Any:
        r = self.r
        k = r.randrange(10 if depth < 3 else 6)
        if k == 0:
            return None
        if k == 1:
            return r.choice([True, False])
        if k == 2:
            return r.choice(NASTY_NUMBERS)
        if k == 3:
            return r.uniform(-1e6, 1e6)
        if k == 4:
            return r.choice(NASTY_TEXT)
        if k == 5:
            return "".join(r.choice(string.printable + "闽厦\u00e9") for _ in range(r.randrange(12)))
        if k in (6, 7):
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        return {self.value(3) if r.random() < 0.1 else r.choice(list(GOOD_FIX) + ["x"]): self.value(depth + 1)
                for _ in range(r.randrange(4))} if r.random() < 0.9 else deep(r.randrange(3, 60))

    def good_fix(self) -> dict[str, Any]:
        r, b = self.r, S.city.bounds
        fix: dict[str, Any] = {"vehicle_id": f"闽D{r.randrange(100000):05d}", "ts": NOW - r.uniform(0, 86400),
                               "lat": r.uniform(b.lat_min, b.lat_max), "lon": r.uniform(b.lon_min, b.lon_max)}
        if r.random() < 0.5:
            fix.update(speed_kmh=r.uniform(0, 120), heading=r.randrange(360), **{"class": "taxi"})
        return fix

    def bad_fix(self) -> Any:
        r = self.r
        if r.random() < 0.1:
            return self.value()
        fix = self.good_fix()
        for _ in range(r.randrange(1, 4)):
            key = r.choice(list(GOOD_FIX) + ["valid", "status_flags"])
            if r.random() < 0.3:
                fix.pop(key, None)
            else:
                fix[key] = self.value()
        return fix

    def mqtt(self) -> Payload:
        r = self.r
        k = r.randrange(8)
        if k == 0:
            fix = self.good_fix() if r.random() < 0.5 else self.bad_fix()
            vid = fix.get("vehicle_id") if isinstance(fix, dict) else "x"
            return Payload(f"{FIXES}/{vid}", to_bytes(fix), [], False)
        if k in (1, 2, 3):
            items, good = [], []
            for i in range(r.randrange(1, 20)):
                if r.random() < 0.5:
                    items.append(self.good_fix())
                    good.append(i)
                else:
                    items.append(self.bad_fix())
            return Payload(FIXES, to_bytes(items), good, True)
        if k == 4:
            return Payload(r.choice([FIXES, f"{FIXES}/V1", "x/y", f"{FIXES}/a/b/c"]),
                           r.randbytes(r.randrange(300)), [], False)
        if k == 5:
            raw = to_bytes(self.good_fix())
            cut = r.randrange(len(raw) + 1)
            return Payload(f"{FIXES}/x", raw[:cut] + r.choice(JSON_TOKENS) + raw[cut + r.randrange(3):], [], False)
        if k == 6:
            raw = bytearray(to_bytes([self.good_fix() for _ in range(3)]))
            for _ in range(r.randrange(1, 4)):
                raw[r.randrange(len(raw))] = r.randrange(256)
            return Payload(FIXES, bytes(raw), [], False)
        return Payload(FIXES, to_bytes([self.good_fix(), deep(r.randrange(3, 1100))]), [], True)

    def mqtt_near_good(self) -> Payload:
        """Mostly good fixes (every field used), some with one field at an edge: what the columnar path decodes."""
        r, bounds = self.r, S.city.bounds
        items: list[dict[str, Any]] = []
        for _ in range(r.choice([1, 1, 1, 2, 3, 10, 40])):
            ts: Any = NOW - r.uniform(0, 86400)
            if r.random() < 0.3:
                ts = datetime.fromtimestamp(ts, timezone(timedelta(hours=8))).isoformat()
            fix: dict[str, Any] = {"vehicle_id": r.choice(["闽D12345", "闽DA0001", "V-1", "京E12345"]), "ts": ts,
                                   "lat": r.uniform(bounds.lat_min, bounds.lat_max),
                                   "lon": r.uniform(bounds.lon_min, bounds.lon_max)}
            for key, value in (("class", r.choice(["hazmat", "taxi", "other", None])), ("speed_kmh", r.uniform(0, 120)),
                               ("heading", r.randrange(360)), ("accuracy_m", r.uniform(0, 30)),
                               ("alarm_flags", r.randrange(2**32)), ("status_flags", r.randrange(4)),
                               ("valid", r.choice([True, False]))):
                if r.random() < 0.6:
                    fix[key] = value
            if r.random() < 0.25:
                key, value = r.choice(FIX_EDGES)
                if value is DROP:
                    fix.pop(key, None)
                else:
                    fix[key] = value
            items.append(fix)
        single = len(items) == 1 and r.random() < 0.7
        vid = items[0].get("vehicle_id")
        if single:
            topic = r.choice([f"{FIXES}/{vid}", f"{FIXES}/{vid}", f"{FIXES}/gw_a/{vid}", f"{FIXES}/V-1"])
        else:
            topic = r.choice([FIXES, FIXES, f"{FIXES}/gw_a", f"{FIXES}/{vid}"])
        obj = items[0] if single else items
        k = r.randrange(3)  # orjson's compact UTF-8, Python's json unescaped, Python's json indented and \u-escaped
        raw = json.dumps(obj, indent=1).encode() if k == 2 else to_bytes(obj)
        if k == 0 and all(abs(v) < 2**63 for f in items for v in f.values() if type(v) is int):
            raw = orjson.dumps(obj)
        if r.random() < 0.15:  # into one object, at its start (a later key of the same name wins) or its end
            at = [i for i, c in enumerate(raw) if c == ord("{")][r.randrange(len(items))] + 1
            splice = r.choice(FIX_SPLICES)
            if r.random() < 0.5:
                raw = raw[:at] + splice + raw[at:]
            else:
                end = raw.index(b"}", at)
                raw = raw[:end] + b", " + splice.rstrip(b", ") + raw[end:]
        return Payload(topic, raw, [], not single)

    def fixes_record(self) -> bytes:
        r = self.r
        if r.random() < 0.3:
            return r.randbytes(r.randrange(200))
        return to_bytes([self.bad_fix() if r.random() < 0.5 else {**self.good_fix(), "source": "mqtt"}
                         for _ in range(r.randrange(1, 5))])

    def feature_collection(self) -> Any:
        r = self.r
        features = []
        for i in range(r.randrange(4)):
            f = json.loads(json.dumps(GOOD_FEATURE))
            f["properties"]["id"] = f"z{i}"
            for _ in range(r.randrange(3)):
                f["properties"][r.choice(sorted(ZONE_KEYS))] = self.value()
            if r.random() < 0.3:
                f["geometry"] = r.choice([self.value(), {"type": "Polygon", "coordinates": self.value()},
                                          {"type": "Point", "coordinates": self.value()}])
            features.append(f if r.random() < 0.9 else self.value())
        doc = {"type": "FeatureCollection", "features": features} if r.random() < 0.95 else self.value()
        return as_json(doc)

    def zone_bytes(self) -> bytes:
        r = self.r
        raw = bytearray(to_bytes(self.feature_collection()))
        if r.random() < 0.5 and raw:
            for _ in range(r.randrange(1, 4)):
                raw[r.randrange(len(raw))] = r.randrange(256)
        return bytes(raw) if r.random() < 0.9 else b"[" * r.randrange(100, 5000)

    def vetting(self) -> tuple[str, bytes]:
        r = self.r
        kind = r.choice(["application", "record", "records"])
        base: Any = dict(APPLICATION if kind == "application" else RECORD)
        for _ in range(r.randrange(4)):
            base[r.choice(sorted(base) + ["x"])] = self.value()
        if kind == "records":
            base = [base if r.random() < 0.7 else self.value() for _ in range(r.randrange(5))]
        k = r.randrange(10)
        if k == 0:
            return kind, r.randbytes(r.randrange(200))
        if k == 1:
            return kind, to_bytes(deep(r.randrange(3, 1100), base))
        return kind, to_bytes(base)

    def config(self) -> tuple[str, dict[str, str]]:
        r = self.r
        doc: dict[str, Any] = {}
        env: dict[str, str] = {}
        for _ in range(r.randrange(4)):
            key = r.choice(CONFIG_KEYS)
            if r.random() < 0.5:
                node = doc
                *parents, leaf = key.split(".")
                for part in parents:
                    nxt = node.setdefault(part, {})
                    node = nxt if isinstance(nxt, dict) else {}
                node[leaf] = self.value()
            else:
                env["CITYWATCH_" + "__".join(p.upper() for p in key.split("."))] = str(self.value())[:80]
        text = yaml.safe_dump(doc, allow_unicode=True)
        if r.random() < 0.1:
            text = text[:r.randrange(len(text) + 1)] + r.choice(["[", "{", ":", "\t", "- -", "&a *a"])
        return text, env


#: Entry point name -> its check, for the benchmark's table.
CHECKS: dict[str, Callable[..., str | None]] = {
    "mqtt": check_mqtt, "mqtt_paths": check_mqtt_paths, "fixes_record": check_fixes_record, "zones": check_zones,
    "zone_file": check_zone_file, "vetting": check_vetting, "config": check_config}
