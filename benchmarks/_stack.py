"""Shared pieces of the end-to-end benchmarks: brokers, child processes, metrics, CPU and memory.

A :class:`Stack` starts Tansu and an MQTT broker on free loopback ports (the
project's own launchers in ``engine.brokers``), then child processes (a
worker, a bridge, or the naive baseline's) with ``CITYWATCH_*`` overrides
pointing at them. Children get their own session and die with this process
(``PR_SET_PDEATHSIG``); :meth:`Stack.stop` terminates them, then the brokers.

Everything here is bounded: every wait has a timeout, every process is
stopped (SIGTERM, then SIGKILL) by its own pid.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.brokers.apache_kafka import start_apache_kafka  # noqa: E402
from engine.brokers.kafka import start_tansu  # noqa: E402
from engine.brokers.mqtt import start_mqtt_broker  # noqa: E402
from engine.brokers.ports import SpawnedBroker, free_port, log_tail, pdeathsig_preexec  # noqa: E402

__all__ = ["BENCH_DIR", "ROOT", "Child", "CpuMeter", "Stack", "cpu_seconds", "free_port", "pdeathsig_preexec",
           "quiesce", "rss_bytes", "scrape", "wait_quiet", "wait_until"]

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_TICK = os.sysconf("SC_CLK_TCK")


def scrape(port: int, timeout: float = 5.0) -> dict[str, float]:
    """Prometheus text from ``127.0.0.1:port/metrics``, samples summed over labels; {} if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _LINE.match(line)
        if m:
            try:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
            except ValueError:
                continue
    return out


def wait_until(pred: Callable[[], object], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``pred`` until truthy (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_quiet(count: Callable[[], int], quiet_s: float, timeout: float) -> bool:
    """Wait until ``count()`` has not changed for ``quiet_s`` seconds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(min(0.2, quiet_s))
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return True
    return False


def quiesce(pid: int, timeout: float, busy: float = 0.3, window: float = 1.0) -> float | None:
    """Wait until ``pid`` uses less than ``busy`` of a core over ``window`` seconds; returns the seconds
    waited, or None if it stayed busy for ``timeout`` (e.g. still flushing state after a burst)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        c0 = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - c0 < busy * window:
            return time.monotonic() - t0
    return None


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS in /proc/PID/status), bytes; 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (all its threads), seconds; 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class Child:
    """A child process of the stack, its log and the port its /metrics is on (0: none)."""

    name: str
    proc: subprocess.Popen
    log: Path
    metrics_port: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def metrics(self) -> dict[str, float]:
        return scrape(self.metrics_port) if self.metrics_port else {}

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            except ProcessLookupError:
                pass


@dataclass
class Stack:
    """A Kafka broker (``kafka_kind``: Tansu, or Apache Kafka with ``kafka.broker: kafka`` for the children) and an
    MQTT broker on free loopback ports, and the child processes started against them.

    ``root`` is the source tree the children run (default: this repository),
    so a benchmark can be pointed at another checkout with ``--root``.
    """

    workdir: Path
    root: Path = ROOT
    mqtt_broker: str = "auto"
    kafka_kind: str = "tansu"
    kafka: SpawnedBroker | None = None
    mqtt: SpawnedBroker | None = None
    children: list[Child] = field(default_factory=list)

    def start_brokers(self) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.kafka_kind == "apache":
            self.kafka = start_apache_kafka("127.0.0.1", free_port(), self.workdir / "apache-kafka")
        else:
            self.kafka = start_tansu("127.0.0.1", free_port(), log_path=self.workdir / "tansu.log")
        self.mqtt = start_mqtt_broker("127.0.0.1", free_port(), workdir=self.workdir / "mqtt",
                                      prefer=self.mqtt_broker)
        return self

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment for a child: the brokers' addresses, quiet logs, plus ``overrides``."""
        assert self.kafka and self.mqtt, "start_brokers() first"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWATCH_")}
        env.update(PYTHONPATH=str(self.root), PYTHONUNBUFFERED="1",
                   CITYWATCH_KAFKA__BOOTSTRAP=self.kafka.address,
                   CITYWATCH_KAFKA__BROKER="kafka" if self.kafka_kind == "apache" else "tansu",
                   CITYWATCH_MQTT__HOST="127.0.0.1",
                   CITYWATCH_MQTT__PORT=str(self.mqtt.port), CITYWATCH_LOG__LEVEL="warning",
                   # Processing workers: the one-map (which follows every fix on every worker) is measured on
                   # its own by bench_push.py; a deployment serves it from workers of its own.
                   CITYWATCH_ONEMAP__ENABLED="false")
        env.update(overrides)
        return env

    def spawn(self, name: str, argv: list[str], env: dict[str, str], metrics_port: int = 0) -> Child:
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as fh:
            proc = subprocess.Popen([sys.executable, *argv], cwd=self.root, env=env, stdin=subprocess.DEVNULL,
                                    stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=pdeathsig_preexec())
        child = Child(name, proc, log, metrics_port)
        self.children.append(child)
        return child

    def wait_metric(self, child: Child, name: str, pred: Callable[[float], bool], timeout: float) -> bool:
        """Wait until ``pred(child's metric name)``; False if the child died or time ran out."""
        def check() -> bool:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited with code {child.proc.returncode}; log {child.log}:\n"
                                   f"{log_tail(child.log)}")
            value = child.metrics().get(name)
            return value is not None and pred(value)
        return wait_until(check, timeout, 0.3)

    def stop_child(self, child: Child) -> None:
        child.stop()
        if child in self.children:
            self.children.remove(child)

    def stop(self) -> None:
        """Stop children (newest first), then the brokers; safe to call twice."""
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        for broker in (self.mqtt, self.kafka):
            if broker is not None:
                broker.stop()
        self.mqtt = self.kafka = None

    @property
    def kafka_name(self) -> str:
        """The Kafka broker's name in CPU reports: ``tansu`` or ``apache-kafka``."""
        return "apache-kafka" if self.kafka_kind == "apache" else "tansu"

    def pids(self) -> dict[str, int]:
        """Process ids worth watching: brokers and children."""
        out = {c.name: c.pid for c in self.children if c.alive()}
        for name, broker in ((self.kafka_name, self.kafka), ("mqtt-broker", self.mqtt)):
            if broker is not None and broker.proc is not None:
                out[name] = broker.proc.pid
        return out

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CpuMeter:
    """CPU used by a set of processes between :meth:`start` and :meth:`stop`, as cores busy.

    :meth:`follow` narrows the window to while a count grows (e.g. fixes published), so process start-up
    and draining are left out; :meth:`stop` may be called again to extend it.
    """

    def __init__(self, pids: dict[str, int], clock: Callable[[], float] = time.monotonic):
        self.pids = dict(pids)
        self.clock = clock
        self._t0 = self._t1 = 0.0
        self._c0: dict[str, float] = {}
        self.cores: dict[str, float] = {}
        self._count = 0
        self._grew = 0

    def follow(self, count: int) -> None:
        """Restart at the first call that sees ``count`` grow, stop at every later one that does."""
        if count > self._count:
            if self._grew:
                self.stop()
            else:
                self.start()
            self._grew += 1
        self._count = max(self._count, count)

    @property
    def window_s(self) -> float:
        return self._t1 - self._t0 if self.cores else 0.0

    def start(self) -> CpuMeter:
        self._t0 = self.clock()
        self._c0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        self._t1 = self.clock()
        wall = max(1e-9, self._t1 - self._t0)
        self.cores = {name: (cpu_seconds(pid) - self._c0[name]) / wall for name, pid in self.pids.items()}
        return self.cores

    def summary(self) -> str:
        """``name N%`` per process, busiest first, then the total as cores (of ``os.cpu_count()``)."""
        parts = [f"{name} {c * 100:.0f}%" for name, c in sorted(self.cores.items(), key=lambda kv: -kv[1])]
        return ", ".join(parts) + f"; total {sum(self.cores.values()):.2f} of {os.cpu_count()} cores"
