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

from engine.brokers.kafka import ensure_kafka
from engine.brokers.mqtt import ensure_mqtt
from engine.brokers.ports import SpawnedBroker, is_listening, log_tail, pdeathsig_preexec
from engine.geofence.zone_store import records_from_path
from engine.mqtt import paho as mqttc
from engine.settings import Settings
from engine.topology import ensure_all_topics
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


ENDS_EPISODE = frozenset({"zone.exit", "vehicle.emergency_cleared", "vehicle.overspeed_alarm_cleared",
                          "vehicle.fatigue_alarm_cleared"})


def format_alert(a: dict[str, Any]) -> str:
    """One readable line for a security team's console."""
    ts = str(a.get("ts", ""))
    when = ts[11:19] + (ts[-6:] if ts[-6:-5] in "+-" else "")
    sev = str(a.get("severity", ""))
    kind = str(a.get("kind", ""))
    if kind.startswith("task."):
        return f"{SEVERITY_MARK.get(sev, '  ')} {when} {sev.upper():8} {kind:14} {task_line(a)}"
    who = f"{a.get('vehicle_id', a.get('subject', '?'))} ({a.get('class', '?')})"
    where = f"{a.get('zone_name', '')} [{a.get('zone_id', '')}]" if a.get("zone_id") else ""
    verb = {"zone.enter": "entered", "zone.exit": "left", "zone.cross": "crossed", "zone.approach": "is approaching",
            "zone.dwell": "is still in", "zone.overspeed": "is speeding in", "zone.overspeed_end": "slowed down in",
            "zone.deviation": "left its corridor", "zone.return": "returned to its corridor",
            "vehicle.offline": "went silent", "vehicle.online": "reports again",
            "vehicle.emergency": "pressed SOS", "vehicle.emergency_cleared": "cleared its SOS",
            "vehicle.overspeed_alarm": "reports overspeed", "vehicle.overspeed_alarm_cleared": "no longer overspeeds",
            "vehicle.fatigue_alarm": "reports driver fatigue", "vehicle.fatigue_alarm_cleared": "cleared fatigue",
            "driver.flagged": "flagged"}.get(kind, kind)
    extra = f" after {a['duration_s']:.0f} s" if kind in ENDS_EPISODE and "duration_s" in a else ""
    pos = f" at {a['lat']:.5f},{a['lon']:.5f}" if isinstance(a.get("lat"), (int, float)) else ""
    if a.get("position") == "last_known":   # the fix itself had no usable position (e.g. no GPS lock)
        pos = f" last seen{pos} at {str(a.get('position_ts', ''))[11:19]}"
    elif a.get("position") == "none":
        pos = " (no position yet)"
    said = " ".join(part for part in (who, verb, where) if part)
    return f"{SEVERITY_MARK.get(sev, '  ')} {when} {sev.upper():8} {kind:14} {said}{extra}{pos}"


def task_line(a: dict[str, Any]) -> str:
    """The rest of a console line for a citizen task's alert (engine.casework.alerts)."""
    task = f"task {a.get('service_request_id', a.get('subject', '?'))} ({a.get('service_code', '?')})"
    where = f"{a.get('level', '?')} {a.get('grid_name') or ''} [{a.get('grid_code') or '-'}]"
    stage = "accepted" if a.get("stage") == "accept" else "resolved"
    if a.get("kind") == "task.escalated":
        said = (f"escalated {a.get('from_level', '?')} -> {where}: not {stage} by "
                f"{a.get('agency_responsible', '?')}, {a.get('overdue_s', 0):.0f} s late")
    elif a.get("kind") == "task.deadline_warning":
        said = (f"{float(a.get('fraction', 0)):.0%} of the time to be {stage} gone ({a.get('agency_responsible', '?')},"
                f" {where}, {a.get('remaining_s', 0):.0f} s left)")
    elif a.get("kind") == "task.overdue":
        said = f"overdue at the {where}: not {stage} by {a.get('agency_responsible', '?')}"
    else:
        said = str(a.get("kind"))
    pos = f" at {a['lat']:.5f},{a['lon']:.5f}" if isinstance(a.get("lat"), (int, float)) else ""
    return f"{task} {said}{pos}"


def watch_alerts(settings: Settings) -> Any:
    """Subscribe to ``alerts_topic/#`` and print each alert as a line."""
    client = mqttc.make_client(as_service(settings, "console").mqtt, f"citywatch-up-console-{os.getpid()}")
    mqttc.subscribe_on_connect(client, [(f"{settings.mqtt.alerts_topic}/#", 1)])

    def on_message(client, userdata, msg) -> None:
        try:
            print(format_alert(orjson.loads(msg.payload)), flush=True)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            print(f"   (unreadable alert on {msg.topic})", flush=True)

    client.on_message = on_message
    mqttc.start(client, settings.mqtt)
    return client


def as_service(settings: Settings, service: str) -> Settings:
    """``settings`` logged in to MQTT as the internal account ``mqtt.auth.services.<service>``."""
    username, password = getattr(settings.mqtt.auth.services, service).login(service)
    return settings.replace(mqtt={"username": username, "password": password})


def service_env(env: dict[str, str], settings: Settings, service: str) -> dict[str, str]:
    """``env`` for a child that logs in to MQTT as ``mqtt.auth.services.<service>`` (never on a command line)."""
    username, password = getattr(settings.mqtt.auth.services, service).login(service)
    return {**env, "CITYWATCH_MQTT__USERNAME": username, "CITYWATCH_MQTT__PASSWORD": password}


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["CITYWATCH_ZONES__DIR"] = str(Path(settings.zones.dir).resolve())
    env["CITYWATCH_REPORTS__GRID_DIR"] = str(Path(settings.reports.grid_dir).resolve())
    env["CITYWATCH_KAFKA__BOOTSTRAP"] = settings.kafka.bootstrap
    env["CITYWATCH_KAFKA__BROKER"] = settings.kafka.broker
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                       env.get("PYTHONPATH", "")]))
    return env


def start_kafka(settings: Settings, data: Path) -> SpawnedBroker:
    """The Kafka broker at ``kafka.bootstrap``: reused if one listens there, else the ``up.kafka`` kind started
    empty (Tansu keeps everything in memory; Apache Kafka's log directories under ``<data_dir>/kafka`` are
    cleared first, so both start the same way)."""
    khost, kport = settings.kafka.first_host_port
    if settings.up.kafka == "apache":
        workdir = data / "kafka"
        if not is_listening(khost, kport):
            shutil.rmtree(workdir, ignore_errors=True)
        return ensure_kafka(khost, kport, log_path=data / "logs" / "apache-kafka.log", kind="apache", workdir=workdir)
    return ensure_kafka(khost, kport, log_path=data / "logs" / "tansu.log")


def run_up(settings: Settings, *, config_path: str | None, simulator: bool = True) -> int:
    records_from_path(settings.zones.dir, tz=settings.city.tz, loaded_at="", limits=settings.zones)  # a bad zone file stops us before anything starts
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
        kafka = start_kafka(settings, data)
        brokers.append(kafka)
        if kafka.proc is not None:  # a fresh, empty broker: stale local table data would conflict
            shutil.rmtree(settings.worker.data_dir, ignore_errors=True)
            settings = settings.replace(kafka={"broker": "kafka" if settings.up.kafka == "apache" else "tansu"})
        mqtt = ensure_mqtt(settings.mqtt.host, settings.mqtt.port, workdir=data / "mqtt", settings=settings)
        brokers.append(mqtt)
        ensure_all_topics(settings)
        loaded, removed = load_zones(settings, settings.zones.dir, replace=True)
        log.info("zones: %d loaded from %s (%d others removed)", loaded, settings.zones.dir, removed)
        conf = ["--config", config_path] if config_path else []
        env = _child_env(settings)
        if simulator:  # demo SLAs of seconds, so escalations show within a minute (reports.simulator.sla_scale)
            env["CITYWATCH_TASKS__SLA_SCALE"] = str(settings.reports.simulator.sla_scale)
        children.append(spawn_child("worker", ["worker", *conf], log_dir=logs, env=service_env(env, settings, "worker")))
        children.append(spawn_child("bridge", ["bridge", *conf], log_dir=logs, env=service_env(env, settings, "bridge")))
        children.append(spawn_child("jt808", ["jt808", "--open-registration", *conf], log_dir=logs, env=env))
        if simulator:
            children.append(spawn_child("simulator", ["simulate", *conf], log_dir=logs,
                                        env=service_env(env, settings, "simulator")))
            children.append(spawn_child("reports", ["simulate-reports", *conf], log_dir=logs,
                                        env=service_env(env, settings, "simulator")))
            children.append(spawn_child("jt808-terminals", ["simulate-jt808", "--terminals", "10", "--sos",
                                                            "--sos-terminals", "1", "--reupload", *conf],
                                        log_dir=logs, env=env))
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
            # the bridge may wait shutdown_timeout_s for Kafka to take what it holds, and as long again for its
            # producer to stop; SIGKILL before that would only leave the rest unacknowledged (redelivered later)
            c.stop(2 * settings.bridge.shutdown_timeout_s + 5 if c.name == "bridge"
                   else 2 * settings.jt808.shutdown_timeout_s + 5 if c.name == "jt808" else 15.0)
        for b in reversed(brokers):
            b.stop()
        print("citywatch: stopped", flush=True)
    return code


def _access_lines(settings: Settings, mqtt: SpawnedBroker) -> list[str]:
    """What the banner says about MQTT access control (account names only, never a password)."""
    m = settings.mqtt
    if mqtt.proc is None or not m.auth.enabled:
        return []
    gateways = ", ".join(f"{name} -> {m.gateway_prefix(name)}/<vehicle_id>" for name in m.auth.gateways) or "none"
    return [f"            login required (mqtt.auth): gateways {gateways}; teams {', '.join(m.auth.teams) or 'none'}"
            f" read alerts only" + ("; TLS" if m.tls_cert_file else "")]


def _onemap_lines(settings: Settings) -> list[str]:
    """Where the one-map is and the key it needs (key names only, never a key)."""
    w = settings.web
    if not settings.onemap.enabled:
        return []
    if not w.require_api_keys:
        need = "open to every caller (web.require_api_keys: false)"
    else:
        names = sorted(n for n, k in w.api_keys.items() if k.role == "operator")
        need = (f"needs an operator API key (web.api_keys: {', '.join(names)}; enter it in the page's form)" if names
                else "needs an operator API key: none in web.api_keys, add one with role operator")
    return [f"  Map       http://{w.host}:{w.port}/ (live one-map) {need}"]


def _banner(settings: Settings, kafka: SpawnedBroker, mqtt: SpawnedBroker, children: list[Child], logs: Path) -> None:
    def origin(b: SpawnedBroker) -> str:
        return f"{b.name} (spawned, pid {b.proc.pid})" if b.proc else "already running there (reused)"

    kind = "Tansu, in memory" if settings.kafka.broker == "tansu" else "Apache Kafka" if kafka.proc else "Kafka"

    lines = [
        "Citywatch is up.",
        f"  MQTT      {mqtt.address}  {origin(mqtt)}",
        f"            gateways publish to {settings.mqtt.fixes_topic}/<vehicle_id>;"
        f" alerts on {settings.mqtt.alerts_topic}/#",
        *_access_lines(settings, mqtt),
        f"  Kafka     {settings.kafka.bootstrap}  {origin(kafka)}; {kind} (kafka.broker: {settings.kafka.broker})",
        f"            topics {settings.kafka.topics.fixes}, {settings.kafka.topics.fixes_rejected},"
        f" {settings.kafka.topics.alerts}",
        f"  HTTP      http://{settings.web.host}:{settings.web.port}/metrics and /health (worker),"
        f" http://{settings.web.host}:{settings.bridge.metrics_port}/metrics and /health (bridge)",
        f"  JT/T 808  {settings.jt808.host}:{settings.jt808.port}  terminals (2013/2019) register openly"
        f" (jt808.open_registration) as {settings.jt808.default_class};"
        f" http://{settings.web.host}:{settings.jt808.metrics_port}/metrics and /health (gateway)",
        *_onemap_lines(settings),
        f"  Zones     {Path(settings.zones.dir).resolve()}",
        f"  Reports   http://{settings.web.host}:{settings.web.port}/open311/v2/services.json (Open311),"
        f" MQTT {settings.reports.mqtt_topic}; tasks on Kafka {settings.tasks.topics.tasks}",
        f"  Processes {', '.join(f'{c.name} (pid {c.proc.pid})' for c in children)}; logs in {logs}/",
        "Alerts appear below as they happen. Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)

