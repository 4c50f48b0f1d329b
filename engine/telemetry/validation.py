"""Stateless validation of gateway payloads (MQTT in) into fixes, as columns, and rejections.

A payload is one JSON object or a JSON array of them (README "Contracts", "Fixes in").
Each bad element is rejected on its own with a short ``reason`` label and a
human ``detail``; good elements of a mixed array are still accepted.
GPS quality (the fix-valid flag, accuracy) and stateful checks (duplicates,
implied speed, late fixes) belong to the worker (engine.telemetry.filters):
here ``valid`` and ``status_flags`` are only type-checked and passed on.

Size limits are settings (``bridge.max_payload_bytes``, ``max_fixes_per_message``,
``max_json_depth``, ``max_vehicle_id_chars``, ``max_field_chars``); a rejection
for one of them names the setting. Topics: ``<fixes_topic>/<vehicle_id>``, a
mixed array on ``<fixes_topic>``, or under a gateway's prefix
(``mqtt.auth.gateways``: ``<prefix>/<vehicle_id>`` or a mixed array on
``<prefix>``), where the gateway's ``vehicles`` prefixes, if set, bound which
vehicles it may report (``foreign_vehicle``).

Two paths give the same answer. The per-element one (orjson, then :func:`validate_fix`
on each element) is the definition and writes every rejection. The columnar one
decodes with msgspec straight into typed fields and runs each check over whole
numpy columns; whatever it cannot vouch for goes the per-element way: the whole
payload (a JSON type it does not take, a limit, a single fix that fails) or just
the failing elements of an array, so reasons, details, indexes and raw elements
are the per-element path's.
"""

from __future__ import annotations

import orjson

from engine.core.errors import FixRejected
from engine.core.limits import too_deep
from engine.telemetry.columnar_parse import parse_columns
from engine.telemetry.columns import FixColumns, from_fixes
from engine.telemetry.fix_rules import Origin
from engine.telemetry.rejection import Parsed
from engine.telemetry.settings import TelemetryConfig


def parse_payload(payload: bytes, *, topic: str, settings: TelemetryConfig, now: float) -> Parsed:
    """Decode one MQTT message into accepted fixes (as columns) and rejections (never raises).

    The usual payload is decoded by msgspec straight into typed fields and every check runs over whole
    columns (:func:`_parse_columns`). Whatever that path cannot vouch for goes the per-element way
    (:func:`parse_payload_slow` for the whole payload, :func:`validate_fix` for one element of an
    array), so every rejection's reason, detail, index and raw element are the per-element path's.
    """
    origin = Origin(payload, topic, settings, now)
    parsed = parse_columns(origin, settings)
    return parsed if parsed is not None else _parse_elements(origin, settings)


def parse_payload_columns(payload: bytes, *, topic: str, settings: TelemetryConfig, now: float) -> Parsed | None:
    """The columnar path alone: its answer, or None where it hands the payload to the per-element path."""
    return parse_columns(Origin(payload, topic, settings, now), settings)


def parse_payload_slow(payload: bytes, *, topic: str, settings: TelemetryConfig, now: float) -> Parsed:
    """The per-element path alone: orjson, then :func:`validate_fix` on each element (the fast path's fallback)."""
    return _parse_elements(Origin(payload, topic, settings, now), settings)


def _parse_elements(origin: Origin, settings: TelemetryConfig) -> Parsed:
    limits, payload = settings.bridge, origin.payload

    def reject(reason: str, detail: str) -> Parsed:  # the whole payload
        return Parsed(FixColumns.empty(), [origin.reject(reason, detail)])

    if origin.bad_topic is not None:
        return reject(origin.bad_topic.reason, origin.bad_topic.detail)
    if len(payload) > limits.max_payload_bytes:
        return reject("payload_too_large", f"{len(payload)} bytes > limit bridge.max_payload_bytes "
                                           f"({limits.max_payload_bytes})")
    try:
        obj = orjson.loads(payload)  # rejects NaN/Infinity, invalid UTF-8 and nesting deeper than 1024
    except orjson.JSONDecodeError as exc:
        return reject("bad_json", f"not valid JSON: {exc}"[:300])
    is_list = isinstance(obj, list)
    items = obj if is_list else [obj]
    if is_list and len(obj) > limits.max_fixes_per_message:
        return reject("too_many_fixes", f"{len(obj)} fixes > limit bridge.max_fixes_per_message "
                                        f"({limits.max_fixes_per_message})")
    if is_list and not obj:
        return reject("bad_shape", "empty array")
    # A flat payload (an object, or an array of objects, holding scalars) has exactly one opening
    # bracket per fix plus the array's: only a payload with more is walked to measure its depth.
    opens = payload.count(b"{") + payload.count(b"[")
    if opens > limits.max_json_depth and (opens != len(items) + is_list or not all(type(i) is dict for i in items)) \
            and too_deep(payload, obj, limits.max_json_depth):
        return reject("too_deep", f"JSON nested deeper than limit bridge.max_json_depth "
                                  f"({limits.max_json_depth})")
    fixes, rejections = [], []
    for i, item in enumerate(items):
        try:
            fixes.append(origin.check(item, settings))
        except FixRejected as exc:
            raw = orjson.dumps(item) if is_list else payload
            rejections.append(origin.reject(exc.reason, exc.detail, raw, i if is_list else None))
    return Parsed(from_fixes(fixes), rejections)
