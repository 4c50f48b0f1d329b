"""Fuzzed payloads through the real running bridge (mosquitto + Tansu): nothing lost, every rejection counted.

Each payload is also parsed by ``parse_payload`` here, as the oracle of what it holds (N accepted fixes,
M rejections with their reasons); the bridge must put exactly that on Kafka - fixes on ``fixes``, one record
per rejection on ``fixes.rejected`` - and count the same in its metrics.
"""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest

from engine.telemetry.validation import parse_payload
from engine.telemetry.wire import decode_fixes
from tests.conftest import metric_value, scrape, wait_bridge_subscribed, wait_for
from tests.fuzz.inputs import FIXES, Mutator
from tests.sweep import read_to_end

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MESSAGES = 400


def sendable(topic: str) -> bool:
    """What an MQTT client can publish at all (no wildcards, valid UTF-8)."""
    try:
        topic.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return bool(topic) and not any(c in topic for c in "+#\x00")


def test_every_fuzzed_input_lands_on_fixes_or_fixes_rejected(make_settings, spawn, mqtt_probe):
    settings = make_settings()
    bridge = spawn("bridge", ["bridge"], settings)
    wait_bridge_subscribed(settings, bridge)
    gateway = mqtt_probe()
    m = Mutator(seed=20260908)
    sent, expected_fixes, expected_reasons = 0, 0, Counter()
    while sent < MESSAGES:
        p = m.mqtt()
        topic = settings.mqtt.fixes_topic + p.topic[len(FIXES):] if p.topic.startswith(FIXES) else p.topic
        if not sendable(topic) or not topic.startswith(settings.mqtt.fixes_topic):
            continue  # the bridge only subscribes to its own prefix
        oracle = parse_payload(p.payload, topic=topic, settings=settings, now=time.time())
        expected_fixes += len(oracle.fixes)
        expected_reasons.update(r.reason for r in oracle.rejections)
        gateway.publish(topic, p.payload)
        sent += 1
    assert expected_fixes > 100 and len(expected_reasons) > 8  # the sample is mixed, not all one kind

    def settled() -> str | None:
        text = scrape(settings.bridge.metrics_port)
        done = metric_value(text, "citywatch_bridge_messages_total") == sent
        return text if done and metric_value(text, "citywatch_bridge_in_flight") == 0 else None

    text = wait_for(settled, 90, "the bridge to take every message")
    records = read_to_end(settings.kafka.bootstrap, [settings.kafka.topics.fixes, settings.kafka.topics.fixes_rejected],
                          timeout=60)
    fixes = [f for t, _, _, v in records if t == settings.kafka.topics.fixes for f in decode_fixes(v)]
    rejected = [orjson.loads(v) for t, _, _, v in records if t == settings.kafka.topics.fixes_rejected]
    got_reasons = Counter(r["reason"] for r in rejected)

    assert len(fixes) + len(rejected) == expected_fixes + sum(expected_reasons.values())  # count in == out
    assert len(fixes) == expected_fixes and got_reasons == expected_reasons
    assert metric_value(text, "citywatch_bridge_fixes_produced_total") == len(fixes)
    for reason, n in got_reasons.items():
        assert metric_value(text, "citywatch_bridge_rejections_total", reason=reason) == n, reason
    assert all(r["detail"] and r["raw_size"] >= 0 for r in rejected)
    assert bridge.proc.poll() is None
