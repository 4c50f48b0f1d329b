"""Many messages validated at once (single fixes joined into one array) give, message by message, what
``parse_payload`` gives for each alone: the same fixes in arrival order, the same rejections.

The messages come from the fuzz generators (``tests/fuzz/inputs.py``): mostly good single fixes on their
vehicle's topic (what gets joined), some with a field at an edge, on gateway topics, on another vehicle's
topic, and broken payloads of every kind in between, plus payloads crafted to merge or split when joined.
"""

from __future__ import annotations

import random
from collections import defaultdict

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from engine.telemetry import bulk_validation
from engine.telemetry.bulk_validation import parse_messages
from engine.telemetry.validation import parse_payload
from tests.fuzz.inputs import FIXES, GOOD_FIX, NOW, Mutator, S

GATEWAYS = S.replace(mqtt={"auth": {"gateways": {"gw_a": {"password": "p" * 10, "vehicles": "闽DA,V-"}}}})
SMALL = S.replace(bridge={"max_fixes_per_message": 3, "max_payload_bytes": 600})
FLAT = S.replace(bridge={"max_json_depth": 1})  # a joined array is too deep: every message alone
SETTINGS = {"default": S, "gateways": GATEWAYS, "small": SMALL, "flat": FLAT}
FAST = hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def good(vid: str, k: int) -> tuple[str, bytes]:
    return f"{FIXES}/{vid}", orjson.dumps({**GOOD_FIX, "vehicle_id": vid, "ts": NOW - 1000 + k})


def check(messages: list[tuple[str, bytes]], settings=S) -> None:
    many = parse_messages(messages, settings=settings, now=NOW)
    assert many.owner == sorted(many.owner), "rows out of arrival order"
    got = defaultdict(list)
    for fix, owner in zip(many.fixes.fixes(), many.owner, strict=True):
        got[owner].append(fix)
    for i, (topic, payload) in enumerate(messages):
        alone = parse_payload(payload, topic=topic, settings=settings, now=NOW)
        assert got[i] == alone.fixes.fixes(), f"message {i} on {topic}: accepted fixes differ"
        assert many.rows[i] == len(alone.fixes)
        want = [(r.reason, r.detail, r.index, r.raw, r.topic, r.vehicle_id, r.extra) for r in alone.rejections]
        have = [(r.reason, r.detail, r.index, r.raw, r.topic, r.vehicle_id, r.extra) for r in many.rejections[i]]
        assert have == want, f"message {i} on {topic}: rejections differ"


def mixed(seed: int, n: int) -> list[tuple[str, bytes]]:
    r, m = random.Random(seed), Mutator(seed)
    out = []
    for k in range(n):
        roll = r.random()
        if roll < 0.5:
            out.append(good(r.choice(["闽D00001", "闽D00002", "闽DA0003", "V-4"]), k))
        elif roll < 0.85:
            p = m.mqtt_near_good()
            out.append((p.topic, p.payload))
        else:
            p = m.mqtt()
            out.append((p.topic, p.payload))
    return out


@FAST
@given(st.integers(0, 2**32), st.integers(1, 60), st.sampled_from(sorted(SETTINGS)))
def test_messages_at_once_give_what_each_gives_alone(seed, n, name):
    check(mixed(seed, n), SETTINGS[name])


def test_single_fixes_are_validated_as_one_array(monkeypatch):
    calls = []
    real = bulk_validation.parse_payload

    def counting(payload, **kw):
        calls.append(kw["topic"])
        return real(payload, **kw)

    monkeypatch.setattr(bulk_validation, "parse_payload", counting)
    messages = [good(f"闽D{k % 40:05d}", k) for k in range(400)]
    many = parse_messages(messages, settings=S, now=NOW)
    assert calls == [FIXES] and len(many.fixes) == 400 and many.owner == list(range(400))


@pytest.mark.parametrize("payloads", [
    # two messages that are one object together, around one that is two objects
    [b'{"vehicle_id":"V1","ts":1788832000,"lat":24.5,"lon":118.1,"x":"', b'"}', b'{"vehicle_id":"V2"},{"a":1}'],
    [b'{"vehicle_id":"V1","ts":1788832000,"lat":24.5,"lon":118.1}]', b'[{"vehicle_id":"V2"}'],
    [b'{"vehicle_id":"V1","ts":1788832000,"lat":24.5,"lon":118.1}', b"", b" ", b"1,2", b"null"],
])
def test_payloads_that_merge_or_split_when_joined_are_taken_alone(payloads):
    messages = [(f"{FIXES}/V{k + 1}", p) for k, p in enumerate(payloads)]
    check(messages)


def test_a_row_of_another_vehicle_than_its_topic_is_rejected_as_alone():
    messages = [good("闽D00001", 0), (f"{FIXES}/闽D00009", good("闽D00002", 1)[1]), good("闽D00003", 2)]
    check(messages)
    many = parse_messages(messages, settings=S, now=NOW)
    assert [r.reason for r in many.rejections[1]] == ["vehicle_mismatch"] and many.rows == [1, 0, 1]


def test_gateway_topics_keep_their_vehicle_prefixes():
    messages = [(f"{FIXES}/gw_a/{vid}", good(vid, k)[1]) for k, vid in enumerate(["闽DA0001", "闽DB0002", "V-3"])]
    check(messages, GATEWAYS)
    many = parse_messages(messages, settings=GATEWAYS, now=NOW)
    assert [[r.reason for r in rs] for rs in many.rejections] == [[], ["foreign_vehicle"], []]
    assert many.rejections[1][0].extra == {"gateway": "gw_a"}


def test_limits_of_one_message_still_apply_to_each():
    messages = [good("闽D00001", 0), (f"{FIXES}/闽D00002", b"{" + b" " * 700 + b"}"), good("闽D00003", 1),
                good("闽D00004", 2), good("闽D00005", 3), good("闽D00006", 4)]
    check(messages, SMALL)  # joined arrays stay within 3 fixes and 600 bytes
