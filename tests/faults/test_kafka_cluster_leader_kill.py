"""A replicated cluster loses a leader twice under a steady feed: nothing is lost, no alert changes its id.

Three Apache Kafka nodes on this machine (each broker and controller, own
ports and log directories) hold every topic with three replicas and
``min.insync.replicas=2``; the bridge and the worker write with ``acks=all``
and idempotence. Gateways publish a steady feed over MQTT: vehicles driving
east through the Haicang Tunnel, staggered so enters and exits happen all
through the run. During it the node leading most ``fixes`` partitions is
killed (SIGKILL) and started again; once it is back in every ISR, the node
leading most ``alerts`` partitions is killed and started again. Afterwards
every fix the MQTT broker acknowledged is in the fixes topic, the worker's
group has committed past all of them (every fix checked), and each vehicle's
enter and exit reached the security team over MQTT, each under one
``alert_id``, the same as in the alerts topic.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from engine.brokers.apache_kafka import apache_cluster
from engine.kafka.metadata import partitions_of
from tests.conftest import isolated_settings, wait_bridge_subscribed, wait_for
from tests.faults.helpers import AlertProbe, Gateway, all_acked, kafka_fixes, report, tunnel_incidents

pytestmark = [pytest.mark.integration, pytest.mark.apache_only, pytest.mark.kafka, pytest.mark.timeout(420)]

VEHICLES = 40
STEP_S = 0.25            # one fix per vehicle every 0.25 s of wall time (event time 5 s)
SPEED = 0.0005           # degrees of longitude a step (~36 km/h)
MIN_STEPS = 330          # every vehicle is past the tunnel's east end (118.08) by then (the last at step ~324)


def fix(v: int, step: int, t0: float) -> dict:
    # vehicle v starts at 118.035 - 0.003 v (inside the city's bounds, lon >= 117.88) and is in the tunnel
    # (118.04-118.08) from step 10 + 6 v to step 90 + 6 v
    lon = 118.035 - v * 0.003 + step * SPEED
    return {"vehicle_id": f"闽DK{v:03d}", "class": "hazmat", "ts": t0 + 5 * step, "lat": 24.4815, "lon": lon,
            "speed_kmh": 50}


class Feed(threading.Thread):
    """Publishes step after step until told to finish and at least ``MIN_STEPS`` are out."""

    def __init__(self, gateway: Gateway, fixes_topic: str):
        super().__init__(daemon=True)
        self.gateway, self.topic = gateway, fixes_topic
        self.t0 = time.time() - 3600
        self.step = 0
        self.finish = threading.Event()

    def run(self) -> None:
        while self.step < MIN_STEPS or not self.finish.is_set():
            for v in range(VEHICLES):
                f = fix(v, self.step, self.t0)
                self.gateway.send(f"{self.topic}/{f['vehicle_id']}", f)
            self.step += 1
            time.sleep(STEP_S)


def describe(bootstrap: str, topic: str) -> list[dict]:
    """The partitions of ``topic`` (leader, ISR); asks again while the request lands on the node just killed."""
    async def run() -> list[dict]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return (await admin.describe_topics([topic]))[0]["partitions"]
        finally:
            await admin.close()

    for _ in range(20):
        try:
            return asyncio.run(run())
        except KafkaError:
            time.sleep(0.5)
    return asyncio.run(run())


def busiest_leader(bootstrap: str, topic: str) -> int:
    counts: dict[int, int] = defaultdict(int)
    for p in describe(bootstrap, topic):
        counts[p["leader"]] += 1
    return max(counts, key=lambda n: counts[n])


def fully_replicated(bootstrap: str, topics: list[str]) -> bool:
    try:
        return all(len(p["isr"]) == 3 and p["leader"] >= 0 for t in topics for p in describe(bootstrap, t))
    except (KafkaError, IndexError, KeyError):  # a node still starting answers with errors
        return False


def committed_to_end(bootstrap: str, group: str, topic: str) -> bool:
    async def run() -> bool:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = await partitions_of(consumer, topic)
            ends = await consumer.end_offsets(parts)
            committed = {tp: await consumer.committed(tp) or 0 for tp in parts}
            return bool(parts) and all(committed[tp] >= ends[tp] for tp in parts)
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_leader_kills_in_a_replicated_cluster_lose_nothing(tmp_path, mqtt_broker, spawn):
    with apache_cluster(tmp_path / "cluster", size=3) as cluster:
        settings = isolated_settings(tmp_path, SimpleNamespace(address=cluster.bootstrap), mqtt_broker,
                                     kafka={"broker": "kafka", "replication": 3, "min_insync_replicas": 2})
        topics = settings.kafka.topics
        bootstrap = settings.kafka.bootstrap
        worker = spawn("worker", ["worker"], settings)
        bridge = spawn("bridge", ["bridge"], settings)
        wait_bridge_subscribed(settings, bridge, worker, timeout=120)
        probe = AlertProbe(mqtt_broker.host, mqtt_broker.port, f"team-{settings.bridge.client_id}",
                           settings.mqtt.alerts_topic)
        gateway = Gateway(mqtt_broker.host, mqtt_broker.port, f"gw-{settings.bridge.client_id}")
        feed = Feed(gateway, settings.mqtt.fixes_topic)
        feed.start()

        time.sleep(8)
        fixes_leader = busiest_leader(bootstrap, topics.fixes)
        cluster.kill(fixes_leader)
        killed_at_step = feed.step
        wait_for(lambda: fixes_leader not in {p["leader"] for p in describe(bootstrap, topics.fixes)}, 60,
                 "new leaders for the fixes partitions")
        time.sleep(5)
        cluster.start(fixes_leader)
        wait_for(lambda: fully_replicated(bootstrap, [topics.fixes, topics.alerts]), 120,
                 "the restarted node back in every ISR", interval=1)

        alerts_leader = busiest_leader(bootstrap, topics.alerts)
        cluster.kill(alerts_leader)
        wait_for(lambda: alerts_leader not in {p["leader"] for p in describe(bootstrap, topics.alerts)}, 60,
                 "new leaders for the alerts partitions")
        time.sleep(5)
        cluster.start(alerts_leader)
        feed.finish.set()
        feed.join(timeout=MIN_STEPS * STEP_S + 60)

        acked = all_acked([gateway], timeout=120)
        fixes, rejected = kafka_fixes(settings, set(acked), timeout=120)
        lost = set(acked) - set(fixes) - set(rejected)
        assert not lost, f"{len(lost)} acknowledged fixes never reached the fixes topic"
        assert not rejected, f"{len(rejected)} fixes of the feed rejected (the feed itself is plausible)"
        wait_for(lambda: (worker.proc.poll() is None or pytest.fail(f"the worker exited:\n{worker.log()}"))
                 and committed_to_end(bootstrap, settings.worker.app_id, topics.fixes), 120,
                 "the worker to commit past every fix", interval=1)
        incidents, records = tunnel_incidents(settings, worker, VEHICLES, timeout=120)
        twice = {k: ids for k, ids in incidents.items() if len(ids) > 1}
        assert not twice, f"incidents raised under more than one id: {twice}"
        in_kafka = {i for ids in incidents.values() for i in ids}
        wait_for(lambda: in_kafka <= probe.ids(), 120, "every tunnel alert delivered over MQTT", interval=1)
        extra = {a["alert_id"] for a in probe.received()
                 if a.get("zone_id") == "haicang-tunnel" and a["kind"] in ("zone.enter", "zone.exit")} - in_kafka
        assert not extra, f"alerts over MQTT that the alerts topic does not hold: {extra}"
        for p in (worker, bridge):
            assert p.proc.poll() is None, p.log()
        report("kafka-cluster-leader-kill", nodes=3, fixes_leader_killed=fixes_leader,
               alerts_leader_killed=alerts_leader, killed_at_step=killed_at_step, steps=feed.step,
               sent=len(acked), in_kafka=len(set(fixes)), lost=len(lost), rejected=len(rejected),
               incidents=len(incidents), alert_records=len(records), delivered_mqtt=len(in_kafka & probe.ids()))
        gateway.close()
        probe.close()
