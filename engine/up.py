"""``citywatch up``: the whole system on embedded defaults, in one terminal.

Starts (or reuses, where something already listens on the configured
address) a Kafka-compatible broker and an MQTT broker, then runs a worker,
the bridge and, unless told not to, the fleet simulator as child processes
that die with this one. Alerts are shown as readable lines as a security team
subscribed to ``citywatch/alerts/#`` receives them. Ctrl-C stops everything.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine import mqtt as mqttc
from engine.brokers.kafka import ensure_kafka
from engine.brokers.mqtt import ensure_mqtt
from engine.brokers.ports import SpawnedBroker, log_tail, pdeathsig_preexec
from engine.geofence.zone_store import records_from_path
from engine.kafka.topics import ensure_topics
from engine.settings import Settings
from engine.zones_cli import load_zones

log = logging.getLogger(__name__)

SEVERITY_MARK = {"critical": "!!", "warning": "! ", "info": "  "}


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
                self.proc.kill()
                self.proc.wait()


def spawn_child(name: str, args: list[str], *, log_dir: Path, env: dict[str, str]) -> Child:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "engine", *args], stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                preexec_fn=pdeathsig_preexec())
    return Child(name, proc, log_path)


def format_alert(a: dict[str, Any]) -> str:
    """One readable line for a security team's console."""
    ts = str(a.get("ts", ""))
    when = ts[11:19] + (ts[-6:] if ts[-6:-5] in "+-" else "")
    sev = str(a.get("severity", ""))
    kind = str(a.get("kind", ""))
    who = f"{a.get('vehicle_id', a.get('subject', '?'))} ({a.get('class', '?')})"
    where = f"{a.get('zone_name', '')} [{a.get('zone_id', '')}]" if a.get("zone_id") else ""
    verb = {"zone.enter": "entered", "zone.exit": "left", "zone.cross": "crossed", "zone.approach": "is approaching",
            "zone.dwell": "is still in", "zone.overspeed": "is speeding in", "zone.overspeed_end": "slowed down in",
            "zone.deviation": "left its corridor", "zone.return": "returned to its corridor",
            "vehicle.offline": "went silent", "vehicle.online": "reports again",
            "driver.flagged": "flagged"}.get(kind, kind)
    extra = f" after {a['duration_s']:.0f} s" if kind == "zone.exit" and "duration_s" in a else ""
    pos = f" at {a['lat']:.5f},{a['lon']:.5f}" if isinstance(a.get("lat"), (int, float)) else ""
    return f"{SEVERITY_MARK.get(sev, '  ')} {when} {sev.upper():8} {kind:14} {who} {verb} {where}{extra}{pos}"


def watch_alerts(settings: Settings) -> Any:
    """Subscribe to ``alerts_topic/#`` and print each alert as a line."""
    client = mqttc.make_client(settings.mqtt, f"citywatch-up-console-{os.getpid()}")
    mqttc.subscribe_on_connect(client, [(f"{settings.mqtt.alerts_topic}/#", 1)])

    def on_message(client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        try:
            print(format_alert(orjson.loads(msg.payload)), flush=True)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            print(f"   (unreadable alert on {msg.topic})", flush=True)

    client.on_message = on_message
    mqttc.start(client, settings.mqtt)
    return client


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["CITYWATCH_ZONES__DIR"] = str(Path(settings.zones.dir).resolve())
    env["CITYWATCH_KAFKA__BOOTSTRAP"] = settings.kafka.bootstrap
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                       env.get("PYTHONPATH", "")]))
    return env


def run_up(settings: Settings, *, config_path: str | None, simulator: bool = True) -> int:
    records_from_path(settings.zones.dir, tz=settings.city.tz, loaded_at="")  # a bad zone file stops us before anything starts
    data = Path(settings.up.data_dir)
    logs = data / "logs"
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    brokers: list[SpawnedBroker] = []
    children: list[Child] = []
    console = None
    code = 0
    try:
        khost, kport = settings.kafka.first_host_port
        kafka = ensure_kafka(khost, kport, log_path=logs / "tansu.log")
        brokers.append(kafka)
        if kafka.proc is not None:  # a fresh memory broker: stale local table data would conflict
            shutil.rmtree(settings.worker.data_dir, ignore_errors=True)
        mqtt = ensure_mqtt(settings.mqtt.host, settings.mqtt.port, workdir=data / "mqtt")
        brokers.append(mqtt)
        ensure_topics(settings)
        loaded, removed = load_zones(settings, settings.zones.dir, replace=True)
        log.info("zones: %d loaded from %s (%d others removed)", loaded, settings.zones.dir, removed)
        conf = ["--config", config_path] if config_path else []
        env = _child_env(settings)
        children.append(spawn_child("worker", ["worker", *conf], log_dir=logs, env=env))
        children.append(spawn_child("bridge", ["bridge", *conf], log_dir=logs, env=env))
        if simulator:
            children.append(spawn_child("simulator", ["simulate", *conf], log_dir=logs, env=env))
        console = watch_alerts(settings)
        _banner(settings, kafka, mqtt, children, logs)
        while not stop.wait(0.5):
            dead = [c for c in children if c.proc.poll() is not None]
            if dead:
                c = dead[0]
                print(f"citywatch: {c.name} exited with code {c.proc.returncode}; log {c.log_path}:\n"
                      f"{log_tail(c.log_path)}", file=sys.stderr)
                code = 1
                break
    finally:
        print("citywatch: stopping ...", flush=True)
        if console is not None:
            console.disconnect()
            console.loop_stop()
        for c in reversed(children):
            c.stop()
        for b in reversed(brokers):
            b.stop()
        print("citywatch: stopped", flush=True)
    return code


def _banner(settings: Settings, kafka: SpawnedBroker, mqtt: SpawnedBroker, children: list[Child], logs: Path) -> None:
    def origin(b: SpawnedBroker, what: str) -> str:
        return f"{what} (spawned, pid {b.proc.pid})" if b.proc else "already running there (reused)"

    lines = [
        "Citywatch is up.",
        f"  MQTT      {mqtt.address}  {origin(mqtt, 'mosquitto/amqtt')}",
        f"            gateways publish to {settings.mqtt.fixes_topic}/<vehicle_id>;"
        f" alerts on {settings.mqtt.alerts_topic}/#",
        f"  Kafka     {settings.kafka.bootstrap}  {origin(kafka, 'tansu')}",
        f"            topics {settings.kafka.topics.fixes}, {settings.kafka.topics.fixes_rejected},"
        f" {settings.kafka.topics.alerts}",
        f"  HTTP      http://{settings.web.host}:{settings.web.port}/metrics (worker),"
        f" http://{settings.web.host}:{settings.bridge.metrics_port}/metrics (bridge)",
        f"  Zones     {Path(settings.zones.dir).resolve()}",
        f"  Processes {', '.join(f'{c.name} (pid {c.proc.pid})' for c in children)}; logs in {logs}/",
        "Alerts appear below as they happen. Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)

