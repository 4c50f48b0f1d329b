"""Many MQTT messages through :func:`~engine.telemetry.validation.parse_payload` at once, with the same answer.

A gateway usually sends one fix per message, on ``<fixes_topic>/<vehicle_id>`` (or its own
``<prefix>/<vehicle_id>``). Validated one by one, such a message costs ~40 us on the 2-core development box
(the per-message fixed costs: decoder call, one-row checks, a dozen one-element numpy arrays); an array of
them is validated column-wise at ~2 us per fix. So consecutive single-value messages of the same kind of
topic are joined into one JSON array (``[p1,p2,...]``) and validated once, on the topic a mixed array of
theirs would use (``<fixes_topic>``, or the gateway's ``<prefix>``: the same vehicle-prefix check). What
that does not check, each row's vehicle against its own topic, is compared here.

The answer is, message by message, what :func:`parse_payload` gives for it alone:

* each payload joined is one JSON value on its own (``msgspec.Raw`` decode: a structural check, ~0.3 us),
  so the array's elements are exactly the payloads, in order;
* a message whose element the array rejects, whose row belongs to another vehicle than its topic, or
  whose whole array was refused (a limit, JSON the decoders refuse) is validated alone, as are messages
  that are not candidates at all (a bad topic, a mixed array's topic, too large);
* rows keep arrival order: results are assembled message by message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from engine.core.errors import FixRejected
from engine.telemetry.columns import FixColumns, concat
from engine.telemetry.fix_rules import topic_map
from engine.telemetry.rejection import Parsed, Rejection
from engine.telemetry.settings import TelemetryConfig
from engine.telemetry.validation import parse_payload

_ONE_VALUE = msgspec.json.Decoder(msgspec.Raw)


@dataclass(slots=True)
class ParsedMany:
    """The messages' accepted fixes in arrival order, whose message each row is, and each message's rejections."""

    fixes: FixColumns
    owner: list[int]                     # message index of each row of ``fixes``
    rows: list[int]                      # accepted fixes per message
    rejections: list[list[Rejection]] = field(default_factory=list)  # per message


def parse_messages(messages: list[tuple[str, bytes]], *, settings: TelemetryConfig, now: float) -> ParsedMany:
    """``(topic, payload)`` pairs -> what :func:`parse_payload` gives for each alone, gathered in one result."""
    n = len(messages)
    answers: list[Parsed | None] = [None] * n   # a message validated alone
    rows_of: list[tuple[FixColumns, int] | None] = [None] * n  # a message's row in a joined array's columns
    vehicles: list[str | None] = [None] * n     # the vehicle each message's topic names
    limits = settings.bridge
    topics = topic_map(settings.mqtt)
    group: list[int] = []
    group_key = ""
    group_bytes = 0
    for i, (topic, payload) in enumerate(messages):
        try:
            vehicle, gateway, _ = topics.parse(topic)
        except FixRejected:  # a bad topic: parse_payload says so
            vehicle = gateway = None
        key = gateway or ""
        if vehicle is None or len(payload) > limits.max_payload_bytes or not _one_value(payload):
            _join(messages, group, group_key, vehicles, settings, now, answers, rows_of)
            group, group_bytes = [], 0
            answers[i] = _alone(topic, payload, settings, now)
            continue
        if group and (key != group_key or len(group) >= limits.max_fixes_per_message
                      or group_bytes + len(payload) + 1 > limits.max_payload_bytes - 2):
            _join(messages, group, group_key, vehicles, settings, now, answers, rows_of)
            group, group_bytes = [], 0
        group_key = key
        vehicles[i] = vehicle
        group.append(i)
        group_bytes += len(payload) + 1
    _join(messages, group, group_key, vehicles, settings, now, answers, rows_of)
    return _assemble(answers, rows_of)


def _one_value(payload: bytes) -> bool:
    try:
        _ONE_VALUE.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True


def _alone(topic: str, payload: bytes, settings: TelemetryConfig, now: float) -> Parsed:
    return parse_payload(payload, topic=topic, settings=settings, now=now)


def _join(messages: list[tuple[str, bytes]], group: list[int], gateway: str, vehicles: list[str | None],
          settings: TelemetryConfig, now: float, answers: list[Parsed | None],
          rows_of: list[tuple[FixColumns, int] | None]) -> None:
    """Validate the messages of ``group`` as one array; those it cannot vouch for, alone."""
    if not group:
        return
    if len(group) == 1:
        i = group[0]
        answers[i] = _alone(*messages[i], settings, now)
        return
    topic = settings.mqtt.gateway_prefix(gateway) if gateway else settings.mqtt.fixes_topic
    joined = b"[" + b",".join([messages[i][1] for i in group]) + b"]"
    parsed = parse_payload(joined, topic=topic, settings=settings, now=now)
    refused = {r.index for r in parsed.rejections}
    cols = parsed.fixes
    if None in refused or len(cols) + len(refused) != len(group):  # the whole array refused: each alone
        for i in group:
            answers[i] = _alone(*messages[i], settings, now)
        return
    ids = cols.vehicle_id
    row = 0
    for k, i in enumerate(group):
        if k in refused:
            answers[i] = _alone(*messages[i], settings, now)
            continue
        if ids[row] == vehicles[i]:
            rows_of[i] = (cols, row)
        else:  # another vehicle than its topic's: alone (vehicle_mismatch)
            answers[i] = _alone(*messages[i], settings, now)
        row += 1


def _assemble(answers: list[Parsed | None], rows_of: list[tuple[FixColumns, int] | None]) -> ParsedMany:
    """Rows in message order: runs of joined rows as column slices, single answers in between."""
    parts: list[FixColumns] = []
    owner: list[int] = []
    rows: list[int] = []
    rejections: list[list[Rejection]] = []
    run_cols: FixColumns | None = None
    run: list[int] = []      # rows of ``run_cols`` in the current run
    run_owner: list[int] = []

    def close_run() -> None:
        nonlocal run_cols
        if run_cols is not None:
            whole = len(run) == len(run_cols) and run == list(range(len(run_cols)))
            parts.append(run_cols if whole else run_cols.take(run))
            owner.extend(run_owner)
            run.clear()
            run_owner.clear()
            run_cols = None

    for i, (answer, at) in enumerate(zip(answers, rows_of, strict=True)):
        if at is not None:
            cols, row = at
            if cols is not run_cols:
                close_run()
                run_cols = cols
            run.append(row)
            run_owner.append(i)
            rows.append(1)
            rejections.append([])
            continue
        assert answer is not None
        close_run()
        k = len(answer.fixes)
        if k:
            parts.append(answer.fixes)
            owner.extend([i] * k)
        rows.append(k)
        rejections.append(answer.rejections)
    close_run()
    return ParsedMany(concat(parts), owner, rows, rejections)
