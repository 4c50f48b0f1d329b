"""The asyncio MQTT clients against a real broker. The subscriber: lists in order, acknowledgements that reach
the broker, a bound on what it holds, redelivery after a reconnect, TLS with a login, a refused login. The
publisher: every publish acknowledged in order, and what the broker had not acknowledged when it went away
sent again once it is back."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from engine.brokers.mqtt import mosquitto_binary, start_mosquitto, start_mqtt_broker
from engine.brokers.ports import free_port
from engine.mqtt.packets import Message
from engine.mqtt.publisher import Publisher as BulkPublisher
from engine.mqtt.settings import MqttSettings
from engine.mqtt.subscriber import Subscriber
from engine.settings import load_settings
from engine.up import as_service
from tests.access.test_mqtt_access import make_certificate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
needs_mosquitto = pytest.mark.skipif(mosquitto_binary() is None, reason="no mosquitto binary on this machine")
TOPIC = "subtest"


class Publisher:
    """A paho client publishing QoS 1 (its own network thread)."""

    def __init__(self, cfg: MqttSettings):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(1000)
        self.client.connect(cfg.host, cfg.port)
        self.client.loop_start()

    def send(self, topic: str, payloads: list[bytes]) -> None:
        infos = [self.client.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(15)
            assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Inbox:
    """What a subscriber delivered, list by list; ``budget`` bounds what it may hold unacknowledged."""

    def __init__(self, budget: int = 1 << 30):
        self.lists: list[list[Message]] = []
        self.held: list[Message] = []
        self.budget, self.full, self.subscribed, self.lost = budget, 0, asyncio.Event(), []
        self.max_held = 0

    def take(self, msgs: list[Message]) -> None:
        self.lists.append(msgs)
        self.held += msgs
        self.max_held = max(self.max_held, len(self.held))

    @property
    def messages(self) -> list[Message]:
        return [m for batch in self.lists for m in batch]

    def subscriber(self, cfg: MqttSettings, client_id: str, topic: str = TOPIC) -> Subscriber:
        def on_subscribed() -> None:
            self.subscribed.set()

        def on_full() -> None:
            self.full += 1

        return Subscriber(cfg, client_id, [(f"{topic}/#", 1)], self.take, room=lambda: self.budget - len(self.held),
                          on_full=on_full, on_subscribed=on_subscribed, on_lost=self.lost.append)


async def until(pred, timeout: float = 20.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def cfg_of(broker) -> MqttSettings:
    return MqttSettings(host=broker.host, port=broker.port, keepalive_s=5)


class OwnMosquitto:
    """A mosquitto of this test's own, stopped and started again on the same port and persistence folder."""

    def __init__(self, workdir: Path):
        self.port, self.workdir = free_port(), workdir
        self.broker = start_mosquitto("127.0.0.1", self.port, workdir=workdir)
        self.cfg = cfg_of(self.broker)

    async def stop(self) -> None:   # mosquitto saves its sessions and their queued messages
        await asyncio.to_thread(self.broker.stop)

    async def start(self) -> None:
        self.broker = await asyncio.to_thread(start_mosquitto, "127.0.0.1", self.port, workdir=self.workdir)


@pytest.fixture
def own_mosquitto(tmp_path):
    own = OwnMosquitto(tmp_path / "mqtt")
    yield own
    own.broker.stop()


def test_lists_in_order_and_acknowledgements_reach_the_broker(mqtt_broker):
    cfg, cid, topic = cfg_of(mqtt_broker), f"sub-{uuid.uuid4().hex[:8]}", f"{TOPIC}/{uuid.uuid4().hex[:6]}"
    payloads = [f"m{k:04d}".encode() for k in range(300)]

    async def main() -> None:
        inbox = Inbox(budget=0)  # nothing at first: what arrives waits in the socket buffers
        sub = inbox.subscriber(cfg, cid, topic)
        task = asyncio.create_task(sub.run())
        await asyncio.wait_for(inbox.subscribed.wait(), 15)
        pub = Publisher(cfg)
        await asyncio.to_thread(pub.send, f"{topic}/a", payloads)
        await until(lambda: inbox.full >= 1, what="the subscriber to stop reading for lack of room")
        assert inbox.messages == []
        inbox.budget = 1000
        sub.resume()
        await until(lambda: len(inbox.messages) == 300, what="300 messages")
        assert [m.payload for m in inbox.messages] == payloads and {m.topic for m in inbox.messages} == {f"{topic}/a"}
        assert len(inbox.lists) < 30  # whole reads at a time, not one list per message
        assert sub.ack(inbox.messages) == 300
        await sub.stop(f"{topic}/$fence")
        await task

        again = Inbox()  # the same persistent session: nothing comes back, the marker comes first
        sub2 = again.subscriber(cfg, cid, topic)
        task2 = asyncio.create_task(sub2.run())
        await asyncio.wait_for(again.subscribed.wait(), 15)
        await asyncio.to_thread(pub.send, f"{topic}/a", [b"marker"])
        await until(lambda: again.messages, what="the marker")
        assert [m.payload for m in again.messages] == [b"marker"]
        sub2.ack(again.messages)
        await sub2.stop(f"{topic}/$fence")
        await task2
        pub.close()

    asyncio.run(main())


def test_it_never_holds_more_than_its_room(mqtt_broker):
    cfg, topic = cfg_of(mqtt_broker), f"{TOPIC}/{uuid.uuid4().hex[:6]}"

    async def main() -> None:
        inbox = Inbox(budget=50)
        sub = inbox.subscriber(cfg, f"sub-{uuid.uuid4().hex[:8]}", topic)
        task = asyncio.create_task(sub.run())
        await asyncio.wait_for(inbox.subscribed.wait(), 15)
        pub = Publisher(cfg)
        sending = asyncio.create_task(asyncio.to_thread(pub.send, f"{topic}/b", [b"x%d" % k for k in range(400)]))
        acked = 0
        while acked < 400:
            await until(lambda: len(inbox.held) >= min(50, 400 - acked), what="the next 50 messages")  # noqa: B023
            await asyncio.sleep(0.05)  # more would arrive now if it read past its room
            assert len(inbox.held) <= 50
            batch, inbox.held = inbox.held[:10], inbox.held[10:]
            acked += sub.ack(batch)
            sub.resume()
        await sending
        assert inbox.max_held == 50 and inbox.full >= 1
        assert [m.payload for m in inbox.messages] == [b"x%d" % k for k in range(400)]
        await sub.stop(f"{topic}/$fence")
        await task
        pub.close()

    asyncio.run(main())


@needs_mosquitto
def test_after_a_reconnect_the_unacknowledged_come_again_and_old_copies_are_not_acknowledged(own_mosquitto):
    cfg = own_mosquitto.cfg

    async def main() -> None:
        inbox = Inbox()
        sub = inbox.subscriber(cfg, "sub-reconnect")
        task = asyncio.create_task(sub.run())
        await asyncio.wait_for(inbox.subscribed.wait(), 15)
        pub = Publisher(cfg)
        await asyncio.to_thread(pub.send, f"{TOPIC}/c", [b"r%d" % k for k in range(20)])
        await until(lambda: len(inbox.messages) == 20, what="20 messages")
        first = inbox.messages
        pub.close()
        inbox.subscribed.clear()
        await own_mosquitto.stop()   # mosquitto saves the session with its 20 unacknowledged messages
        await own_mosquitto.start()
        await asyncio.wait_for(inbox.subscribed.wait(), 30)  # reconnected and subscribed by itself
        await until(lambda: len(inbox.messages) == 40, what="the 20 again")
        assert inbox.lost and [m.payload for m in inbox.messages[20:]] == [m.payload for m in first]
        assert sub.ack(first) == 0                  # their packet ids belong to the new copies now
        assert sub.ack(inbox.messages[20:]) == 20
        await sub.stop(f"{TOPIC}/$fence")
        await task

    asyncio.run(main())


@needs_mosquitto
@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl to make a test certificate")
def test_tls_with_a_login_and_a_refused_login(tmp_path: Path, caplog):
    cert, key = make_certificate(tmp_path)
    settings = load_settings(env={}).replace(mqtt={"tls_cert_file": str(cert), "tls_key_file": str(key)})
    broker = start_mqtt_broker("127.0.0.1", free_port(), workdir=tmp_path / "tls", prefer="mosquitto",
                               settings=settings)
    bridge = as_service(settings, "bridge").mqtt
    good = MqttSettings(host=broker.host, port=broker.port, username=bridge.username, password=bridge.password,
                        tls_ca_file=str(cert), keepalive_s=5)
    wrong = MqttSettings(host=broker.host, port=broker.port, username=bridge.username, password="not-the-password",
                         tls_ca_file=str(cert), keepalive_s=5)

    async def main() -> None:
        ok = Inbox()
        sub = ok.subscriber(good, "sub-tls", settings.mqtt.fixes_topic)
        task = asyncio.create_task(sub.run())
        await asyncio.wait_for(ok.subscribed.wait(), 15)
        await sub.stop(f"{settings.mqtt.fixes_topic}/$fence")
        await task

        refused = Inbox()
        bad = refused.subscriber(wrong, "sub-refused", settings.mqtt.fixes_topic)
        task = asyncio.create_task(bad.run())
        await until(lambda: "MQTT connect refused" in caplog.text, what="the refusal in the log")
        assert not refused.subscribed.is_set() and not bad.connected
        await bad.stop(f"{settings.mqtt.fixes_topic}/$fence")
        await asyncio.wait_for(task, 5)

    try:
        with caplog.at_level(logging.WARNING, logger="engine.mqtt.session"):
            asyncio.run(main())
        assert f"broker {broker.host}:{broker.port}" in caplog.text
    finally:
        broker.stop()


def test_the_publisher_resolves_each_publish_on_its_puback_in_order(mqtt_broker):
    cfg, topic = cfg_of(mqtt_broker), f"{TOPIC}/{uuid.uuid4().hex[:6]}"

    async def main() -> None:
        inbox = Inbox()
        sub = inbox.subscriber(cfg, f"sub-{uuid.uuid4().hex[:8]}", topic)
        sub_task = asyncio.create_task(sub.run())
        await asyncio.wait_for(inbox.subscribed.wait(), 15)
        connected = asyncio.Event()
        pub = BulkPublisher(cfg, f"bulkpub-{uuid.uuid4().hex[:8]}", on_connected=connected.set)
        pub_task = asyncio.create_task(pub.run())
        futs = [pub.publish(f"{topic}/k{k % 3}", b"p%04d" % k) for k in range(700)]  # before it is connected
        await asyncio.wait_for(asyncio.gather(*futs), 20)
        assert connected.is_set() and pub.in_flight == 0
        await until(lambda: len(inbox.messages) == 700, what="700 messages")
        assert [m.payload for m in inbox.messages] == [b"p%04d" % k for k in range(700)]
        assert [m.topic for m in inbox.messages[:3]] == [f"{topic}/k0", f"{topic}/k1", f"{topic}/k2"]
        sub.ack(inbox.messages)
        await pub.stop(f"{topic}/$fence")
        await sub.stop(f"{topic}/$fence")
        await asyncio.gather(pub_task, sub_task)

    asyncio.run(main())


@needs_mosquitto
def test_publishes_while_the_broker_is_away_go_out_when_it_is_back(own_mosquitto):
    cfg = own_mosquitto.cfg

    async def main() -> None:
        inbox = Inbox()
        sub = inbox.subscriber(cfg, "sub-pubtest")   # a persistent session: the broker keeps what arrives for it
        sub_task = asyncio.create_task(sub.run())
        await asyncio.wait_for(inbox.subscribed.wait(), 15)
        lost: list[str] = []
        pub = BulkPublisher(cfg, "bulkpub-restart", on_lost=lost.append)
        pub_task = asyncio.create_task(pub.run())
        await asyncio.wait_for(pub.publish(f"{TOPIC}/d", b"before"), 15)
        await own_mosquitto.stop()
        await until(lambda: lost, what="the publisher to see the broker gone")
        futs = [pub.publish(f"{TOPIC}/d", b"away%d" % k) for k in range(50)]
        await asyncio.sleep(0.3)
        assert not any(f.done() for f in futs) and pub.in_flight == 50
        await own_mosquitto.start()
        await asyncio.wait_for(asyncio.gather(*futs), 30)
        await until(lambda: len(inbox.messages) >= 51, what="every message")
        got = [m.payload for m in inbox.messages]
        assert got[0] == b"before" and [p for p in got if p.startswith(b"away")] == [b"away%d" % k for k in range(50)]
        sub.ack(inbox.messages)
        await pub.stop(f"{TOPIC}/$fence")
        await sub.stop(f"{TOPIC}/$fence")
        await asyncio.gather(pub_task, sub_task)

    asyncio.run(main())
