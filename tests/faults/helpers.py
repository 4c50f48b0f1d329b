"""Shared pieces of the fault tests: gateways that keep what the broker has not acknowledged, and counting.

A fix is identified by ``(vehicle_id, ts)``; QoS 1 and retries allow
duplicates, so the counts are per distinct fix and duplicates are reported.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter, defaultdict

import orjson
import paho.mqtt.client as mqtt

from engine.settings import Settings
from engine.telemetry.wire import decode_fixes
from tests.conftest import read_topic, wait_for

Key = tuple[str, float]


class Gateway:
    """A vehicle gateway: paho at QoS 1 with a persistent session (fixed client id, clean_session false).

    It keeps every fix until the broker acknowledges it and delivers each
    vehicle's fixes in order across reconnects. One thread owns the client:
    it runs paho's loop, reconnects, and publishes only while the connection
    is up. paho re-sends its unacknowledged publishes when the broker answers
    the CONNECT, so a fix published from another thread after the socket
    reopens but before that answer would overtake them; fixes sent while the
    connection is down wait here, in order, until paho has re-sent the older
    ones.
    """

    def __init__(self, host: str, port: int, client_id: str):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                                  clean_session=False)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self._entries: list[list] = []          # [fix, mid or None] in sending order
        self._waiting: queue.SimpleQueue = queue.SimpleQueue()   # (entry, topic, payload) not yet given to paho
        self._acked: set[int] = set()            # fewer than 65,536 publishes per gateway, so mids are unique
        self._stop = threading.Event()
        self.client.on_publish = lambda client, userdata, mid, *a: self._acked.add(mid)
        self.client.connect(host, port, keepalive=10)
        self._thread = threading.Thread(target=self._run, name=f"gateway-{client_id}", daemon=True)
        self._thread.start()
        wait_for(self.client.is_connected, 15, f"gateway {client_id} to connect to {host}:{port}", interval=0.01)

    def send(self, topic: str, fix: dict) -> None:
        entry = [(fix["vehicle_id"], float(fix["ts"])), None]
        self._entries.append(entry)
        self._waiting.put((entry, topic, orjson.dumps(fix)))

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.client.is_connected():
                self._publish_waiting()
            if self.client.loop(timeout=0.01) != mqtt.MQTT_ERR_SUCCESS and not self._stop.is_set():
                time.sleep(0.5)
                try:
                    self.client.reconnect()
                except OSError:
                    pass

    def _publish_waiting(self) -> None:
        while True:
            try:
                entry, topic, payload = self._waiting.get_nowait()
            except queue.Empty:
                return
            info = self.client.publish(topic, payload, qos=1)
            assert info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN), mqtt.error_string(info.rc)
            entry[1] = info.mid

    def acked(self) -> list[Key]:
        return [key for key, mid in self._entries if mid is not None and mid in self._acked]

    def unacked(self) -> int:
        return sum(1 for _, mid in self._entries if mid is None or mid not in self._acked)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.disconnect()


def publish_step(gateways: list[Gateway], settings: Settings, plate_prefix: str, vehicles: int, t0: float,
                 step: int) -> None:
    """Each gateway publishes step ``step`` (1 s apart, creeping east) of its vehicles ``{plate_prefix}{g}{v:02d}``."""
    for g, gw in enumerate(gateways):
        for v in range(vehicles):
            vid = f"{plate_prefix}{g}{v:02d}"
            gw.send(f"{settings.mqtt.fixes_topic}/{vid}",
                    {"vehicle_id": vid, "ts": t0 + step, "lat": 24.5, "lon": 118.1 + step * 1e-5})


def all_acked(gateways: list[Gateway], timeout: float = 60) -> list[Key]:
    """Wait until the broker has acknowledged every publish; the keys in publishing order."""
    wait_for(lambda: all(g.unacked() == 0 for g in gateways), timeout, "the broker to acknowledge every publish")
    return [k for g in gateways for k in g.acked()]


def kafka_fixes(settings: Settings, want: set[Key], timeout: float = 60) -> tuple[list[Key], list[Key]]:
    """Every fix on the fixes topic (in read order; a vehicle's partition is read in offset order), once all of
    ``want`` is there; and the rejected ones, read only if some of ``want`` is not among the fixes."""
    t = settings.kafka.topics
    fixes: list[Key] = []

    def read() -> bool:
        fixes.clear()
        for _, value in read_topic(settings.kafka.bootstrap, t.fixes, min_count=len(want), timeout=5,
                                   count=lambda recs: sum(len(decode_fixes(v)) for _, v in recs)):
            fixes.extend((f.vehicle_id, f.ts) for f in decode_fixes(value))
        if want <= set(fixes):
            return True
        rejects[:] = rejected()
        return want <= set(fixes) | set(rejects)

    def rejected() -> list[Key]:
        out = []
        for _, value in read_topic(settings.kafka.bootstrap, t.fixes_rejected, min_count=1, timeout=1):
            try:
                raw = orjson.loads(orjson.loads(value)["raw"])
                out.append((raw["vehicle_id"], float(raw["ts"])))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                out.append(("?", 0.0))
        return out

    rejects: list[Key] = []
    wait_for(read, timeout, f"{len(want)} acknowledged fixes in Kafka", interval=0.5)
    return fixes, rejects


def order_violations(fixes: list[Key]) -> list[str]:
    """Vehicles whose fixes (first occurrence of each) are not in time order on their partition."""
    firsts: dict[str, list[float]] = defaultdict(list)
    seen: set[Key] = set()
    for vid, ts in fixes:
        if (vid, ts) not in seen:
            seen.add((vid, ts))
            firsts[vid].append(ts)
    return [vid for vid, tss in firsts.items() if tss != sorted(tss)]


def duplicates(keys: list[Key]) -> int:
    return sum(n - 1 for n in Counter(keys).values() if n > 1)


def report(name: str, **counts: object) -> str:
    """Print (visible with ``-s``) and record one summary line, appended to the file ``$FAULT_REPORT`` names.

    (Not a ``CITYWATCH_`` variable: the spawned processes would read it as a setting.)
    """
    line = f"FAULT {name}: " + " ".join(f"{k}={v}" for k, v in counts.items())
    print(line)
    path = os.environ.get("FAULT_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return line


class AlertProbe:
    """A security team's subscriber on ``<alerts_topic>/#`` with a persistent session (it misses nothing while
    the broker restarts: mosquitto keeps the subscription and queues for it)."""

    def __init__(self, host: str, port: int, client_id: str, alerts_topic: str):
        self.alerts: list[dict] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                                  clean_session=False)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda client, *a: client.subscribe(f"{alerts_topic}/#", 1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()
        if not subscribed.wait(15):
            raise RuntimeError(f"alert probe could not subscribe on {host}:{port}")

    def _on_message(self, client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self.alerts.append(orjson.loads(msg.payload))

    def received(self) -> list[dict]:
        with self._lock:
            return list(self.alerts)

    def ids(self) -> set[str]:
        return {a["alert_id"] for a in self.received()}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def first_delivery_order(alerts: list[dict]) -> dict[str, list[int]]:
    """Per subject, the ``seq`` of each alert in the order it first arrived."""
    out: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for a in alerts:
        if a["alert_id"] not in seen:
            seen.add(a["alert_id"])
            out[a["subject"]].append(a["seq"])
    return out


def tunnel_incidents(settings: Settings, worker, vehicles: int,  # type: ignore[no-untyped-def]
                     timeout: float = 120) -> tuple[dict[tuple[str, str], set[str]], list[dict]]:
    """Wait until the alerts topic holds a Haicang Tunnel enter and exit for each of ``vehicles``; returns the
    alert ids per ``(vehicle, kind)`` and the alert records (repeats included)."""
    incidents: dict[tuple[str, str], set[str]] = defaultdict(set)
    records: list[dict] = []

    def complete() -> bool:
        assert worker.proc.poll() is None, worker.log()
        records[:] = [a for a in (orjson.loads(v) for _, v in read_topic(
            settings.kafka.bootstrap, settings.kafka.topics.alerts, min_count=2 * vehicles, timeout=5))
            if a.get("zone_id") == "haicang-tunnel" and a["kind"] in ("zone.enter", "zone.exit")]
        incidents.clear()
        for a in records:
            incidents[(a["vehicle_id"], a["kind"])].add(a["alert_id"])
        return len(incidents) == 2 * vehicles

    wait_for(complete, timeout, f"an enter and an exit alert for each of {vehicles} vehicles", interval=1)
    return dict(incidents), records
