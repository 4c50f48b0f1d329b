"""JT/T 808 gateway vs the MQTT bridge at the same offered rate, side by side in one run.

Each path runs on a fresh stack of its own (Tansu + mosquitto, ``_stack.Stack``), one after the other, so
neither pays for the other's data in Tansu's memory storage.

jt808 path
    Two ``citywatch jt808 --open-registration`` processes on the SAME port (``jt808.reuse_port``: the kernel
    spreads connections between them; a process may open 20,000 files here, so 20,000 terminals take two),
    each with its own ``jt808.metrics_port``, and ``--jt808-sims`` simulator processes
    (``python -m simulators.jt808``, disjoint ``--first`` ranges) of ``--jt808-terminals`` terminals in all,
    each reporting every ``--jt808-interval-s`` (heartbeat ``--jt808-heartbeat-s``), connections staggered over
    ``--jt808-ramp-s``. Once every terminal is connected and authenticated, and ``--jt808-settle-s`` later (one
    report interval: what the ramp left queued is answered), a window of ``--jt808-window-s``:
    fixes/s into Kafka (delta of ``citywatch_jt808_fixes_total``), connections held (the gateways'
    ``citywatch_jt808_connections_open`` at the end, and what the simulators say), frame -> reply latency (the
    gateways' ``citywatch_jt808_reply_seconds`` histogram over the window only, interpolated in its buckets:
    ``jt808_p99_reply_s``; and the simulators' own p50/p99, which cover their whole run, ramp and registration
    included, as they print one summary at exit: ``jt808_p99_reply_sim_s``), gateway RSS
    per connection (RSS at the end minus the idle gateway's RSS before any terminal connected), CPU share per
    process, and whether the simulators were the limit. No worker: the gateway's 0x8001 means the fix is in
    Kafka.
mqtt path
    ``citywatch bridge`` and one publisher process offering the terminals' nominal rate (terminals / interval)
    as single-fix QoS 1 messages on ``citywatch/fixes/{vehicle}``, one per vehicle of a fleet as large as the
    terminal count, over ONE MQTT connection (the bridge's cost does not depend on the publisher's connection
    count; 20,000 TCP connections are the JT/T 808 path's question, not this one's). The fixes come from
    ``_workload``'s generator (Fleet, RawMessages, ``_mqtt_wire``); the loop here paces them and times every
    PUBACK. Same window: fixes/s into Kafka (``citywatch_bridge_fixes_produced_total``), p50/p99 publish ->
    PUBACK (the broker's ack: NOT "in Kafka"), and CPU shares.

On both paths a Kafka consumer in this process reads the ``fixes`` topic: for MQTT fixes, publish (the fix's
``ts``, stamped as it is published) -> readable in Kafka, the figure to put beside the JT/T 808 reply (which
means "in Kafka"); for both, received by the gateway / bridge (``received_at``) -> readable. Readable
includes the consumer's fetch (``fetch_max_wait_ms`` 50).

Prints each path, a side-by-side table, and (standalone) a ``key=value`` line; ``bench.py`` runs it as a phase
(``--skip-jt808`` leaves it out). Figures are reported, never asserted; every wait is bounded, every process
stopped by its pid.

    .venv/bin/python benchmarks/bench_jt808.py --quick     # 2 x 1,000 terminals, 20 s windows
    .venv/bin/python benchmarks/bench_jt808.py             # 2 x 10,000 terminals, 60 s windows (~3 min)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from array import array
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _mqtt_wire import WirePublisher, publish_batch  # noqa: E402
from _stack import ROOT, Child, CpuMeter, Stack, cpu_seconds, free_port, rss_bytes, wait_until  # noqa: E402
from _workload import BATCH_FIXES, MAX_PENDING, Fleet, Grid, PublisherSpec, RawMessages, _Blocks  # noqa: E402

OPEN, FIXES, REPLY = "citywatch_jt808_connections_open", "citywatch_jt808_fixes_total", "citywatch_jt808_reply_seconds"
AUTH, JT_BATCHES = "citywatch_jt808_authentications_total", "citywatch_jt808_batches_produced_total"
JT_TROUBLE = ("citywatch_jt808_fixes_rejected_total", "citywatch_jt808_frames_rejected_total",
              "citywatch_jt808_backpressure_total", "citywatch_jt808_kafka_errors_total")
PRODUCED, BR_BATCHES = "citywatch_bridge_fixes_produced_total", "citywatch_bridge_batches_produced_total"
BR_TROUBLE = ("citywatch_bridge_rejections_total", "citywatch_bridge_backpressure_total",
              "citywatch_bridge_kafka_errors_total")
MQTT_PREFIX = "闽DQ"     # the MQTT fleet's vehicle ids (the simulated terminals' plates are 闽D + 5 digits)

PROFILES: dict[str, dict[str, Any]] = {
    # Each simulated terminal reports on planned slots spread evenly over the interval, whenever its
    # connection and authentication were answered (the box connects, registers and authenticates only
    # 400-750 terminals/s, saturated, and those answers come in clumps; reports timed from them clumped too,
    # and the offered rate per second varied by half). The ramp is a whole number of report intervals.
    "full": dict(jt808_terminals=20_000, jt808_window_s=60.0, jt808_ramp_s=20.0, jt808_settle_s=10.0,
                 jt808_warmup_s=3.0),
    "quick": dict(jt808_terminals=2_000, jt808_window_s=20.0, jt808_ramp_s=10.0, jt808_settle_s=2.0,
                  jt808_warmup_s=2.0),
}

#: Keys of bench.py's final line (nan when the phase failed).
KEYS = ("jt808_connections", "jt808_fixes_per_s", "jt808_p99_reply_s", "jt808_rss_per_connection_bytes",
        "mqtt_same_rate_fixes_per_s", "mqtt_same_rate_p99_s", "mqtt_same_rate_p99_kafka_s",
        "mqtt_vs_jt808_fixes_per_s", "mqtt_kafka_vs_jt808_p99", "jt808_vs_mqtt_cpu_per_fix")


# -- metrics, CPU of the whole box ------------------------------------------------------------------------------

def metrics_text(port: int, timeout: float = 5.0) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            return r.read().decode()
    except OSError:
        return ""


_BUCKET = re.compile(r'^(\w+)_bucket\{(?:[^}]*,)?le="([^"]+)"[^}]*\}\s+(\S+)', re.M)


def counter(texts: list[str], name: str) -> float:
    """Sample ``name`` summed over labels and ``texts`` (processes)."""
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})?\s+(\S+)", re.M)
    return sum(float(m.group(1)) for text in texts for m in pattern.finditer(text))


def buckets(texts: list[str], name: str) -> dict[float, float]:
    """Cumulative counts per upper bound of histogram ``name``, summed over ``texts`` (processes)."""
    out: dict[float, float] = {}
    for text in texts:
        for m in _BUCKET.finditer(text):
            if m.group(1) == name:
                le = math.inf if m.group(2) == "+Inf" else float(m.group(2))
                out[le] = out.get(le, 0.0) + float(m.group(3))
    return out


def bucket_quantile(b1: dict[float, float], b0: dict[float, float], q: float) -> float:
    """Quantile ``q`` of the observations between two readings, interpolated linearly in its bucket (as
    Prometheus' histogram_quantile); the largest finite bound if it falls in +Inf; nan if none."""
    les = sorted(b1)
    cum = [b1[le] - b0.get(le, 0.0) for le in les]
    if not cum or cum[-1] <= 0:
        return math.nan
    target, prev_le, prev_c = q * cum[-1], 0.0, 0.0
    for le, c in zip(les, cum):
        if c >= target:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * ((target - prev_c) / (c - prev_c) if c > prev_c else 1.0)
        prev_le, prev_c = le, c
    return math.nan


TICK = os.sysconf("SC_CLK_TCK")


def box_cpu() -> tuple[float, float]:
    """(busy, all) jiffies of the whole box so far (/proc/stat; busy = all - idle - iowait)."""
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:9]]
    return sum(v) - v[3] - v[4], sum(v)


def irq_jiffies() -> int:
    """irq + softirq jiffies of the whole box so far (kernel time no process is charged with)."""
    with open("/proc/stat") as fh:
        v = fh.readline().split()
    return int(v[6]) + int(v[7])


def process_times() -> dict[int, float]:
    """CPU seconds (user + system) of every process on the box now."""
    out: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    f = fh.read().rpartition(")")[2].split()
                out[int(d)] = (int(f[11]) + int(f[12])) / TICK
            except (OSError, IndexError, ValueError):
                continue
    return out


def command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            words = fh.read().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(w.decode(errors="replace") for w in words if w)
    return (text[:70] + "...") if len(text) > 70 else text or "?"


class BoxMeter:
    """Cores busy on the whole box between start and stop, and who else used them: the busiest processes that
    are not ours, and irq/softirq time (the loopback network's, mostly)."""

    def __init__(self, ours: set[int]):
        self.ours = ours

    def start(self) -> BoxMeter:
        self.t0, (self.b0, _), self.i0, self.p0 = time.monotonic(), box_cpu(), irq_jiffies(), process_times()
        return self

    def stop(self) -> float:
        wall = max(1e-9, time.monotonic() - self.t0)
        self.cores = (box_cpu()[0] - self.b0) / TICK / wall
        self.irq = (irq_jiffies() - self.i0) / TICK / wall
        p1 = process_times()
        others = {pid: (c - self.p0.get(pid, 0.0)) / wall for pid, c in p1.items() if pid not in self.ours}
        self.others = sorted(((v, pid) for pid, v in others.items() if v >= 0.02), reverse=True)[:4]
        self.others_cores = sum(v for v in others.values() if v > 0)
        return self.cores

    def summary(self, ours: float) -> str:
        """One line: the box's busy cores, ours, irq, and the other processes that used the most."""
        rest = max(0.0, self.cores - ours - self.irq - self.others_cores)
        line = (f"whole box {self.cores:.2f} of {os.cpu_count()} cores busy: ours {ours:.2f}, irq/softirq "
                f"{self.irq:.2f}, other processes {self.others_cores:.2f}")
        if self.others:
            line += " (" + "; ".join(f"pid {pid} {command_of(pid)} {v:.0%}" for v, pid in self.others) + ")"
        line += f", processes gone before the end of the window {rest:.2f}"
        if self.others_cores + rest >= 0.1:
            line += ": THE BOX WAS SHARED, the figures are lower / slower than on an idle box"
        return line


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


def ms(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v * 1000:,.1f} ms"


# -- Kafka consumer: when a fix became readable -----------------------------------------------------------------

class KafkaTap:
    """A consumer on the fixes topic from its end, in a thread: for every record, when it was read and its fixes'
    vehicle ids, ``ts`` and ``received_at``."""

    def __init__(self, bootstrap: str, topic: str = "fixes"):
        self.bootstrap, self.topic = bootstrap, topic
        self.rows: list[tuple[float, list[str], np.ndarray, np.ndarray]] = []
        self.error: str | None = None
        self._stop, self._ready = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="kafka-tap", daemon=True)

    def start(self, timeout: float = 30.0) -> KafkaTap:
        self._thread.start()
        if not self._ready.wait(timeout):
            self.error = self.error or f"no assignment of {self.topic} within {timeout:.0f} s"
        if self.error:
            raise RuntimeError(f"Kafka consumer on {self.topic}: {self.error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    async def _main(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from engine.telemetry.wire import decode

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="latest", fetch_max_wait_ms=50)
        try:
            await consumer.start()
            parts: set[int] | None = None
            deadline = time.monotonic() + 20
            while not parts and time.monotonic() < deadline:
                await consumer.topics()
                parts = consumer.partitions_for_topic(self.topic)
                if not parts:
                    await asyncio.sleep(0.3)
            if not parts:
                raise RuntimeError(f"topic {self.topic} has no partitions")
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
            self._ready.set()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=20_000)
                now = time.time()
                for records in batch.values():
                    for r in records:
                        try:
                            cols = decode(r.value)
                        except ValueError:
                            continue
                        self.rows.append((now, cols.vehicle_id, cols.ts, cols.received_at))
        except Exception as exc:  # noqa: BLE001 - reported by start() or in the figures
            self.error = f"{type(exc).__name__}: {exc}"
            self._ready.set()
        finally:
            await consumer.stop()

    def per_second(self, t0: float, t1: float, column: int, prefix: str | None = None) -> np.ndarray:
        """Fixes per whole second of [t0, t1) by their ``ts`` (column 2) or ``received_at`` (3), of the fixes read
        up to t1 + 1 s (of vehicles starting with ``prefix``): how evenly the rate was offered."""
        stamps = []
        for t, ids, *cols in list(self.rows):
            if t0 - 5 <= t <= t1 + 1:
                col = cols[column - 2]
                if prefix is not None:
                    col = col[np.fromiter((v.startswith(prefix) for v in ids), bool, len(ids))]
                stamps.append(col)
        edges = np.arange(math.ceil(t0), math.floor(t1) + 1, 1.0)
        if len(edges) < 2:
            return np.empty(0)
        got = _cat(stamps)
        # [edge, next edge) each, the last too: ts are whole seconds, and histogram's last bin is closed
        return np.histogram(got[(got >= edges[0]) & (got < edges[-1])], edges)[0]

    def latencies(self, t0: float, t1: float, prefix: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(read - ts, read - received_at) of fixes read in [t0, t1] (of vehicles starting with ``prefix``)."""
        ts, rec = [], []
        for t, ids, ts_col, rec_col in list(self.rows):
            if not t0 <= t <= t1:
                continue
            if prefix is not None:
                mask = np.fromiter((v.startswith(prefix) for v in ids), bool, len(ids))
                ts_col, rec_col = ts_col[mask], rec_col[mask]
            ts.append(t - ts_col)
            rec.append(t - rec_col)
        return _cat(ts), _cat(rec)


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0)


# -- the MQTT publisher: a fixed rate, every PUBACK timed --------------------------------------------------------

def timed_publisher_main(spec: PublisherSpec, stop: Any, results: Any) -> None:
    """``spec.rate`` single-fix messages/s (QoS 1) until ``stop`` or ``duration_s``; puts send wall times and
    publish -> PUBACK seconds of every message (PUBACKs come in publish order), counts and CPU."""
    out: dict[str, Any] = {"error": None, "sent": 0, "acked": 0, "cpu_s": 0.0, "wall_s": 0.0}
    t_sent, t_lat = array("d"), array("d")
    try:
        blocks = _Blocks(spec)
        messages = RawMessages(spec, blocks)
        wire = WirePublisher("127.0.0.1", spec.mqtt_port, f"bench-jt808-mqtt-{time.time_ns()}")
        rate, bound = float(spec.rate or 1.0), spec.pending_bound
        waiting: deque[float] = deque()        # send wall time of each unacknowledged message, in order
        seen = sent = 0
        packet_id = 1

        def take_acks() -> None:
            nonlocal seen
            acked = wire.acked
            if acked > seen:
                now = time.time()
                for _ in range(acked - seen):
                    t = waiting.popleft()
                    t_sent.append(t)
                    t_lat.append(now - t)
                seen = acked

        try:
            start, cpu0 = time.monotonic(), time.process_time()
            while not stop.is_set() and time.monotonic() - start < spec.duration_s:
                now = time.monotonic()
                due = int((now - start) * rate) + 1 - sent
                n = min(due, bound - (sent - wire.acked), BATCH_FIXES)
                if n <= 0:   # not due yet (or the broker is behind): wait for acks meanwhile
                    wire.read_acks(min(max(0.0, start + sent / rate - now), 0.002) or 0.0005)
                    take_acks()
                    continue
                now_ms = time.time_ns() // 1_000_000
                topics, payloads, _, _ = messages.next(n, now_ms, None)
                data, packet_id = publish_batch(topics, payloads, packet_id)
                t = time.time()
                wire.send(data)
                waiting.extend([t] * len(payloads))
                sent += len(payloads)
                wire.read_acks()
                take_acks()
            wire.wait_acked(sent, 15)
            take_acks()
            out.update(sent=sent, acked=wire.acked, cpu_s=time.process_time() - cpu0, wall_s=time.monotonic() - start)
        finally:
            wire.close()
    except Exception as exc:  # noqa: BLE001 - reported by the harness
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["t_sent"], out["lat"] = np.frombuffer(t_sent, dtype=np.float64), np.frombuffer(t_lat, dtype=np.float64)
    results.put(out)


# -- helpers ---------------------------------------------------------------------------------------------------

def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def ready(child: Child) -> bool:
    """``child`` answers /health with 200 (raises if it exited)."""
    check_alive([child])
    return healthy(child.metrics_port)


def check_alive(children: list[Child]) -> None:
    for c in children:
        if not c.alive():
            raise RuntimeError(f"{c.name} exited with code {c.proc.returncode}; log {c.log}")


class Slices:
    """Readings at the start of a window and every ``slice_s`` of it: wall time, the box's busy CPU seconds, ours,
    and ``read()``; to show how the figures moved within the window, and whether others' load moved with them."""

    def __init__(self, pids: dict[str, int], read: Callable[[], Any]):
        self.pids, self.read = pids, read
        self.points: list[tuple[float, float, float, Any]] = []

    def mark(self) -> None:
        self.points.append((time.time(), box_cpu()[0] / TICK, sum(cpu_seconds(p) for p in self.pids.values()),
                            self.read()))

    def run(self, window: float, slice_s: float, children: list[Child]) -> None:
        self.mark()
        for _ in range(max(1, round(window / slice_s))):
            sleep_watching(slice_s, children)
            self.mark()

    def spans(self) -> list[tuple[float, float, Any, Any]]:
        """(t0, t1, read at t0, read at t1) of each slice."""
        return [(a[0], b[0], a[3], b[3]) for a, b in zip(self.points, self.points[1:])]

    def others(self) -> list[float]:
        """Cores busy on the box beside ours (other processes and irq) in each slice."""
        return [max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / max(1e-9, b[0] - a[0]))
                for a, b in zip(self.points, self.points[1:])]


def slice_line(slice_s: float, cols: list[tuple[str, list[str], str]]) -> str:
    return f"  per {slice_s:.0f} s of the window: " + "; ".join(f"{name} {' '.join(v)}{unit}" for name, v, unit in cols)


def spread(counts: np.ndarray) -> str:
    if not len(counts):
        return "n/a"
    peak = counts.max() / max(1.0, counts.mean())
    return f"{counts.mean():,.0f} mean, {counts.min():,.0f}-{counts.max():,.0f} (peak {peak:.2f} x mean)"


def slice_len(cfg: argparse.Namespace) -> float:
    """Six slices of a long window (full: 10 s, one report interval each), four of a short one."""
    w = cfg.jt808_window_s
    return w / 6 if w >= 30 else w / 4


def sleep_watching(seconds: float, children: list[Child]) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        check_alive(children)
        time.sleep(min(1.0, left))


def summary_of(child: Child) -> dict[str, Any] | None:
    """The simulator's JSON summary: the last line of its log that is one."""
    try:
        lines = child.log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def verdict(name: str, cores: float, saturated: bool = False, together: float = 0.0) -> str:
    """Was this load generator process the limit? Near a whole core: yes. On a saturated box it is not the limit
    itself but what it takes (``together``: all load generator processes, cores) is taken from the system."""
    if cores >= 0.9:
        return f"{name} at {cores:.0%} of a core: it WAS the limit (its latencies include its own queueing)"
    line = f"{name} at {cores:.0%} of a core: not the limit"
    if saturated and together >= 0.2:
        line += (f", but the load generators took {together:.2f} cores of a saturated box, which the path under "
                 "test could have used")
    return line


# -- the JT/T 808 path -----------------------------------------------------------------------------------------

def jt808_path(cfg: argparse.Namespace, stack: Stack, tap_box: list[KafkaTap]) -> dict[str, Any]:
    n, sims, window = cfg.jt808_terminals, cfg.jt808_sims, cfg.jt808_window_s
    port = free_port()
    print(f"\n== JT/T 808: {cfg.jt808_gateways} gateways on port {port} (reuse_port), {sims} simulators x "
          f"{n // sims:,} terminals, a fix every {cfg.jt808_interval_s:.0f} s "
          f"(heartbeat {cfg.jt808_heartbeat_s:.0f} s), "
          f"ramp {cfg.jt808_ramp_s:.0f} s, window {window:.0f} s; no worker")
    gateways: list[Child] = []
    for i in range(cfg.jt808_gateways):   # one after the other: each creates the topics at start
        mport = free_port()
        env = stack.env(CITYWATCH_JT808__PORT=str(port), CITYWATCH_JT808__METRICS_PORT=str(mport),
                        CITYWATCH_JT808__REUSE_PORT="true", CITYWATCH_JT808__HEARTBEAT_S=str(cfg.jt808_heartbeat_s))
        g = stack.spawn(f"gateway{i + 1}", ["-m", "engine", "jt808", "--open-registration"], env, mport)
        gateways.append(g)
        t0 = time.monotonic()
        if not wait_until(partial(ready, g), 60, 0.3):
            raise RuntimeError(f"{g.name} not ready within 60 s; log {g.log}")
        print(f"  {g.name} ready in {time.monotonic() - t0:.1f} s (pid {g.pid}, metrics on {mport})")
    assert stack.kafka is not None
    tap_box.append(KafkaTap(stack.kafka.address).start())
    time.sleep(1.0)
    idle = {g.name: rss_bytes(g.pid) for g in gateways}
    print("  idle gateway RSS (no terminal yet): " + ", ".join(f"{k} {v / 2**20:,.1f} MiB" for k, v in idle.items()))

    def texts() -> list[str]:
        return [metrics_text(g.metrics_port) for g in gateways]

    def summed(name: str) -> float:
        return sum(g.metrics().get(name, 0.0) for g in gateways)

    simulators: list[Child] = []
    per = [n // sims + (1 if i < n % sims else 0) for i in range(sims)]
    first = 0
    t_spawn = time.monotonic()
    for i, count in enumerate(per):
        argv = ["-m", "simulators.jt808", "--host", "127.0.0.1", "--port", str(port), "--terminals", str(count),
                "--first", str(first), "--interval-s", str(cfg.jt808_interval_s), "--heartbeat-s",
                str(cfg.jt808_heartbeat_s), "--ramp-s", str(cfg.jt808_ramp_s), "--duration-s", "0",
                "--seed", str(7 + i)]
        simulators.append(stack.spawn(f"sim{i + 1}", argv, stack.env()))
        first += count
    everyone = gateways + simulators
    ramp_meter = CpuMeter({**{c.name: c.pid for c in everyone}, "tansu": stack.pids().get("tansu", 0)}).start()

    def all_in() -> bool:
        check_alive(everyone)
        return summed(OPEN) >= n and summed(AUTH) >= n
    connected = wait_until(all_in, cfg.jt808_ramp_s + 60, 0.5)
    t_conn = time.monotonic() - t_spawn
    ramp_meter.stop()
    held0 = summed(OPEN)
    print(f"  {held0:,.0f} of {n:,} connected and authenticated after {t_conn:.1f} s (ramp {cfg.jt808_ramp_s:.0f} s)"
          + ("" if connected else f" (NOT all within {cfg.jt808_ramp_s + 60:.0f} s: measuring what is held)")
          + "; per gateway: " + ", ".join(f"{g.name} {g.metrics().get(OPEN, 0):,.0f}" for g in gateways)
          + f" ({held0 / max(1e-9, t_conn):,.0f} terminals/s); settling {cfg.jt808_settle_s:.0f} s before the window")
    print(f"  CPU while connecting (spawn to all authenticated; simulators include their start-up): "
          f"{ramp_meter.summary()}")
    sleep_watching(cfg.jt808_settle_s, everyone)

    pids = {**stack.pids(), "harness": os.getpid()}
    meter, box = CpuMeter({k: v for k, v in pids.items() if k != "mqtt-broker"}), BoxMeter(set(pids.values()))
    load0 = load_line()
    b0 = buckets(texts(), REPLY)
    c0 = {k: summed(k) for k in (JT_BATCHES, *JT_TROUBLE)}
    f0, w0 = summed(FIXES), time.time()
    def reading() -> tuple[dict[float, float], float]:
        t = texts()
        return buckets(t, REPLY), counter(t, FIXES)
    slices = Slices(pids, reading)
    meter.start()
    box.start()
    slices.run(window, slice_len(cfg), everyone)
    f1, w1 = summed(FIXES), time.time()
    c1 = {k: summed(k) for k in (JT_BATCHES, *JT_TROUBLE)}
    cores = meter.stop()
    box_cores = box.stop()
    b1 = buckets(texts(), REPLY)
    held = {g.name: g.metrics().get(OPEN, 0.0) for g in gateways}
    rss = {g.name: rss_bytes(g.pid) for g in gateways}
    sim_rss = {s.name: rss_bytes(s.pid) for s in simulators}
    wall = max(1e-9, w1 - w0)
    for s in simulators:   # SIGTERM: each prints its summary (connections held at that moment)
        stack.stop_child(s)
    summaries = {s.name: summary_of(s) for s in simulators}
    _, recv_lat = tap_box[-1].latencies(w0, w1 + 0.5)
    for g in gateways:
        stack.stop_child(g)
    load1 = load_line()

    conns = sum(held.values())
    rate = (f1 - f0) / wall
    rss_per = (sum(rss.values()) - sum(idle.values())) / conns if conns else math.nan
    replies = b1.get(math.inf, 0.0) - b0.get(math.inf, 0.0)
    gw_p50, gw_p99 = bucket_quantile(b1, b0, 0.50), bucket_quantile(b1, b0, 0.99)
    sim_p50 = [s["p50_reply_ms"] / 1000 for s in summaries.values() if s and s.get("p50_reply_ms") is not None]
    sim_p99 = [s["p99_reply_ms"] / 1000 for s in summaries.values() if s and s.get("p99_reply_ms") is not None]
    sim_held = sum(s.get("connections_held", 0) for s in summaries.values() if s)
    ours = sum(cores.values())

    print(f"  connections held at the end of the window: {conns:,.0f} (gateways' {OPEN}: "
          + ", ".join(f"{k} {v:,.0f}" for k, v in held.items()) + f"); simulators say {sim_held:,}")
    records = c1[JT_BATCHES] - c0[JT_BATCHES]
    print(f"  fixes into Kafka: {f1 - f0:,.0f} in {wall:.1f} s = {rate:,.0f} fixes/s "
          f"(offered {n / cfg.jt808_interval_s:,.0f}: {n:,} terminals / {cfg.jt808_interval_s:.0f} s), in "
          f"{records / wall:,.0f} Kafka records/s ({ratio(f1 - f0, records):,.1f} fixes each); over the window "
          + ", ".join(f"{k.removeprefix('citywatch_jt808_')} {c1[k] - c0[k]:,.0f}" for k in JT_TROUBLE))
    for name, sm in summaries.items():
        if not sm:
            print(f"  {name}: no summary in {stack.workdir / (name + '.log')}")
            continue
        print(f"  {name} (whole run, registration included): held {sm['connections_held']:,}, fixes sent "
              f"{sm['fixes_sent']:,}, replies ok {sm['replies_ok']:,} failed {sm['replies_failed']} missing "
              f"{sm['replies_missing']}, reconnects {sm['reconnects']}, connect failures {sm['connect_failures']}; "
              f"frame -> reply p50 {sm['p50_reply_ms']} ms, p99 {sm['p99_reply_ms']} ms, max {sm['max_reply_ms']} ms")
    print(f"  frame -> reply (0x8001 / 0x8100): simulators p50 {', '.join(ms(x) for x in sim_p50)}, p99 "
          f"{', '.join(ms(x) for x in sim_p99)} (terminal side, whole run); gateways' {REPLY} over the window "
          f"({replies:,.0f} replies, locations and heartbeats): p50 ~{ms(gw_p50)}, p99 ~{ms(gw_p99)} (interpolated "
          f"in buckets 1/2.5/5/10/25/50/100 ms: an estimate)")
    if len(recv_lat):
        print(f"  gateway received -> readable in Kafka (consumer here, {len(recv_lat):,} fixes): p50 "
              f"{ms(pct(recv_lat, 50))}, p99 {ms(pct(recv_lat, 99))}")
    print("  RSS: " + ", ".join(f"{k} {idle[k] / 2**20:,.1f} MiB idle -> {rss[k] / 2**20:,.1f} MiB with "
                                f"{held[k]:,.0f} connections" for k in rss)
          + f": {rss_per:,.0f} bytes per connection; simulators "
          + ", ".join(f"{k} {v / 2**20:,.1f} MiB" for k, v in sim_rss.items()))
    spans = slices.spans()
    print(f"  fixes per second of the window: offered (the terminals' own time, ts, whole seconds) "
          f"{spread(tap_box[-1].per_second(w0, w1, 2))}; read by the gateways (received_at) "
          f"{spread(tap_box[-1].per_second(w0, w1, 3))}")
    print(slice_line(slice_len(cfg), [
        ("fixes/s", [f"{(b[1] - a[1]) / (t1 - t0):,.0f}" for t0, t1, a, b in spans], ""),
        ("reply p99 (gw)", [ms(bucket_quantile(b[0], a[0], 0.99)).replace(" ms", "") for _, _, a, b in spans], " ms"),
        ("recv -> read p99", [ms(pct(tap_box[-1].latencies(t0, t1)[1], 99)).replace(" ms", "")
                              for t0, t1, _, _ in spans], " ms"),
        ("cores busy beside ours", [f"{v:.2f}" for v in slices.others()], "")]))
    print(f"  CPU (share of one core) over the window: {meter.summary()}")
    print(f"  {box.summary(ours)}; {load0} before, {load1} after")
    saturated = box_cores >= 0.9 * (os.cpu_count() or 1)
    sim_cores = sum(v for k, v in cores.items() if k.startswith("sim"))
    for s in simulators:
        print(f"  load generator: {verdict(s.name, cores.get(s.name, 0.0), saturated, sim_cores)}")
    gw_cores = sum(v for k, v in cores.items() if k.startswith("gateway"))
    busiest = max((v for k, v in cores.items() if k.startswith("gateway")), default=0.0)
    if saturated:
        print(f"  the box was saturated ({box_cores:.2f} of {os.cpu_count()} cores): every figure is bounded by it")
    elif busiest >= 0.9:
        print(f"  a gateway at {busiest:.0%} of a core: the gateway was the limit")
    return {"conns": conns, "sim_held": sim_held, "rate": rate, "offered": n / cfg.jt808_interval_s,
            "sim_p50": max(sim_p50, default=math.nan), "sim_p99": max(sim_p99, default=math.nan),
            "gw_p50": gw_p50, "gw_p99": gw_p99, "recv_p50": pct(recv_lat, 50), "recv_p99": pct(recv_lat, 99),
            "rss_per": rss_per, "rss_idle": sum(idle.values()), "rss_end": sum(rss.values()),
            "cores": cores, "gw_cores": gw_cores, "sim_cores": sum(v for k, v in cores.items() if k.startswith("sim")),
            "tansu": cores.get("tansu", 0.0), "box": box_cores, "ours": ours, "load": (load0, load1),
            "records_per_s": records / wall, "others": max(0.0, box_cores - ours), "t_conn": t_conn}


# -- the MQTT path ---------------------------------------------------------------------------------------------

def mqtt_path(cfg: argparse.Namespace, stack: Stack, tap_box: list[KafkaTap], rate: float) -> dict[str, Any]:
    window, n = cfg.jt808_window_s, cfg.jt808_terminals
    broker = stack.mqtt.name if stack.mqtt else "?"
    print(f"\n== MQTT at the same offered rate: {rate:,.0f} single-fix messages/s (QoS 1) -> {broker}"
          f" -> citywatch bridge -> Kafka; {n:,} vehicle ids over 1 MQTT connection (the bridge's cost is per message,"
          f" not per publisher connection), window {window:.0f} s; no worker")
    bport = free_port()
    bridge = stack.spawn("bridge", ["-m", "engine", "bridge"], stack.env(CITYWATCH_BRIDGE__METRICS_PORT=str(bport)),
                         bport)
    if not stack.wait_metric(bridge, "citywatch_bridge_mqtt_connected", lambda v: v >= 1, 90):
        raise RuntimeError(f"bridge did not subscribe within 90 s; log {bridge.log}")
    assert stack.mqtt is not None and stack.kafka is not None
    tap_box.append(KafkaTap(stack.kafka.address).start())   # the bridge created the topics at start
    tap = tap_box[-1]
    fleet = Fleet(Grid(1000), n, prefix=MQTT_PREFIX)
    spec = PublisherSpec(0, 1, fleet, stack.mqtt.port, "single", 1, duration_s=cfg.jt808_warmup_s + window + 30,
                         rate=rate, publisher="raw", max_pending=MAX_PENDING["raw"])
    ctx = mp.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=timed_publisher_main, args=(spec, stop, results), name="bench-jt808-mqtt", daemon=True)
    proc.start()
    out: dict[str, Any] | None = None
    try:
        def published() -> bool:
            check_alive([bridge])
            if not proc.is_alive():
                raise RuntimeError(f"the MQTT publisher exited (code {proc.exitcode})")
            return bridge.metrics().get(PRODUCED, 0.0) > 0
        if not wait_until(published, 60, 0.3):
            raise RuntimeError(f"no fix through the bridge within 60 s; log {bridge.log}")
        sleep_watching(cfg.jt808_warmup_s, [bridge])
        pids = {**stack.pids(), "publisher": proc.pid or 0, "harness": os.getpid()}
        meter, box = CpuMeter(pids), BoxMeter(set(pids.values()))
        load0 = load_line()
        m0, w0 = bridge.metrics(), time.time()
        slices = Slices(pids, lambda: bridge.metrics().get(PRODUCED, 0.0))
        meter.start()
        box.start()
        slices.run(window, slice_len(cfg), [bridge])
        m1, w1 = bridge.metrics(), time.time()
        p0, p1 = m0.get(PRODUCED, 0.0), m1.get(PRODUCED, 0.0)
        cores = meter.stop()
        box_cores = box.stop()
        bridge_rss = rss_bytes(bridge.pid)
        stop.set()
        out = results.get(timeout=60)
    finally:
        stop.set()
        proc.join(20)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    time.sleep(0.5)  # the last records of the window read
    ts_lat, recv_lat = tap.latencies(w0, w1 + 0.5, MQTT_PREFIX)
    stack.stop_child(bridge)
    load1 = load_line()
    wall = max(1e-9, w1 - w0)
    got = (p1 - p0) / wall
    sel = (out["t_sent"] >= w0) & (out["t_sent"] <= w1)
    puback = out["lat"][sel]
    ours = sum(cores.values())
    print(f"  published {out['sent']:,} messages ({out['acked']:,} acknowledged) over {out['wall_s']:.1f} s"
          + (f"; publisher error: {out['error']}" if out["error"] else ""))
    records = m1.get(BR_BATCHES, 0.0) - m0.get(BR_BATCHES, 0.0)
    print(f"  fixes into Kafka: {p1 - p0:,.0f} in {wall:.1f} s = {got:,.0f} fixes/s (offered {rate:,.0f}), in "
          f"{records / wall:,.0f} Kafka records/s ({ratio(p1 - p0, records):,.1f} fixes each); over the window "
          + ", ".join(f"{k.removeprefix('citywatch_bridge_')} {m1.get(k, 0.0) - m0.get(k, 0.0):,.0f}"
                      for k in BR_TROUBLE))
    print(f"  publish -> PUBACK ({len(puback):,} messages of the window; the broker's ack, not \"in Kafka\"): "
          f"p50 {ms(pct(puback, 50))}, p99 {ms(pct(puback, 99))}, max {ms(pct(puback, 100))}")
    print(f"  publish -> readable in Kafka (consumer here, {len(ts_lat):,} fixes; ts is stamped at publish, ms): "
          f"p50 {ms(pct(ts_lat, 50))}, p99 {ms(pct(ts_lat, 99))}; bridge received -> readable: p50 "
          f"{ms(pct(recv_lat, 50))}, p99 {ms(pct(recv_lat, 99))}")
    spans = slices.spans()
    print(f"  fixes per second of the window, by their ts (publish time): "
          f"{spread(tap.per_second(w0, w1, 2, MQTT_PREFIX))}")
    print(slice_line(slice_len(cfg), [
        ("fixes/s", [f"{(b - a) / (t1 - t0):,.0f}" for t0, t1, a, b in spans], ""),
        ("PUBACK p99", [ms(pct(out["lat"][(out["t_sent"] >= t0) & (out["t_sent"] < t1)], 99)).replace(" ms", "")
                        for t0, t1, _, _ in spans], " ms"),
        ("pub -> read p99", [ms(pct(tap.latencies(t0, t1, MQTT_PREFIX)[0], 99)).replace(" ms", "")
                             for t0, t1, _, _ in spans], " ms"),
        ("cores busy beside ours", [f"{v:.2f}" for v in slices.others()], "")]))
    print(f"  bridge RSS {bridge_rss / 2**20:,.1f} MiB")
    print(f"  CPU (share of one core) over the window: {meter.summary()}")
    print(f"  {box.summary(ours)}; {load0} before, {load1} after")
    pub_cores = cores.get("publisher", 0.0)
    print(f"  load generator: {verdict('publisher', pub_cores, box_cores >= 0.9 * (os.cpu_count() or 1), pub_cores)}")
    if cores.get("bridge", 0.0) >= 0.9:
        print(f"  the bridge at {cores['bridge']:.0%} of a core: the bridge was the limit")
    return {"rate": got, "offered": rate, "puback_p50": pct(puback, 50), "puback_p99": pct(puback, 99),
            "kafka_p50": pct(ts_lat, 50), "kafka_p99": pct(ts_lat, 99), "recv_p50": pct(recv_lat, 50),
            "recv_p99": pct(recv_lat, 99), "cores": cores, "bridge_cores": cores.get("bridge", 0.0),
            "broker": cores.get("mqtt-broker", 0.0), "pub_cores": cores.get("publisher", 0.0),
            "tansu": cores.get("tansu", 0.0), "rss": bridge_rss, "box": box_cores, "ours": ours,
            "load": (load0, load1), "records_per_s": records / wall, "others": max(0.0, box_cores - ours)}


# -- both, side by side ----------------------------------------------------------------------------------------

def ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan


def table(j: dict[str, Any], m: dict[str, Any]) -> None:
    def f(v: float, fmt: str = ",.0f") -> str:
        return "n/a" if v is None or not math.isfinite(v) else format(v, fmt)

    j_cpf = ratio(j["gw_cores"], j["rate"] / 1000)
    m_cpf = ratio(m["bridge_cores"], m["rate"] / 1000)
    rows = [
        ("offered fixes/s", f(j["offered"]), f(m["offered"]), ""),
        ("fixes/s into Kafka", f(j["rate"]), f(m["rate"]), f(ratio(m["rate"], j["rate"]), ".2f")),
        ("Kafka records/s (fixes each)", f"{j['records_per_s']:,.0f} ({ratio(j['rate'], j['records_per_s']):.1f})",
         f"{m['records_per_s']:,.0f} ({ratio(m['rate'], m['records_per_s']):.1f})", ""),
        ("TCP connections held", f(j["conns"]), "1", ""),
        ("p50 reply: 0x8001 (gw) | PUBACK", "~" + ms(j["gw_p50"]), ms(m["puback_p50"]), ""),
        ("p99 reply: 0x8001 (gw) | PUBACK", "~" + ms(j["gw_p99"]), ms(m["puback_p99"]),
         f(ratio(m["puback_p99"], j["gw_p99"]), ".2f")),
        ("p99 in Kafka: 0x8001 | pub->read", "~" + ms(j["gw_p99"]), ms(m["kafka_p99"]),
         f(ratio(m["kafka_p99"], j["gw_p99"]), ".2f")),
        ("p50 gateway|bridge recv -> read", ms(j["recv_p50"]), ms(m["recv_p50"]),
         f(ratio(m["recv_p50"], j["recv_p50"]), ".2f")),
        ("p99 gateway|bridge recv -> read", ms(j["recv_p99"]), ms(m["recv_p99"]),
         f(ratio(m["recv_p99"], j["recv_p99"]), ".2f")),
        ("p50/p99 0x8001, simulators", f"{ms(j['sim_p50'])} / {ms(j['sim_p99'])}", "", ""),
        ("connect + register + auth all", f"{j['t_conn']:.1f} s", "", ""),
        ("ingest CPU, cores", f(j["gw_cores"], ".2f") + " gateways", f(m["bridge_cores"], ".2f") + " bridge", ""),
        ("  per 1,000 fixes/s", f(j_cpf, ".3f"), f(m_cpf, ".3f"), f(ratio(j_cpf, m_cpf), ".2f") + " jt808/mqtt"),
        ("MQTT broker CPU, cores", "-", f(m["broker"], ".2f"), ""),
        ("Tansu CPU, cores", f(j["tansu"], ".2f"), f(m["tansu"], ".2f"), ""),
        ("load generator CPU, cores", f(j["sim_cores"], ".2f") + " simulators",
         f(m["pub_cores"], ".2f") + " publisher", ""),
        ("box busy, cores (ours; others)", f"{j['box']:.2f} ({j['ours']:.2f}; {j['others']:.2f})",
         f"{m['box']:.2f} ({m['ours']:.2f}; {m['others']:.2f})", ""),
        ("ingest RSS", f"{j['rss_end'] / 2**20:,.0f} MiB ({j['rss_idle'] / 2**20:,.0f} idle)",
         f"{m['rss'] / 2**20:,.0f} MiB", ""),
        ("RSS per connection", f(j["rss_per"]) + " B", "", ""),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows + [("", "JT/T 808", "", "")])
    w2 = max(len(r[2]) for r in rows + [("", "", "MQTT + bridge", "")])
    print("\nJT/T 808 vs MQTT at the same offered rate (a fresh stack each, one after the other):")
    print(f"  {'':<{w0}}  {'JT/T 808':>{w1}}  {'MQTT + bridge':>{w2}}  mqtt/jt808")
    for a, b, c, d in rows:
        print(f"  {a:<{w0}}  {b:>{w1}}  {c:>{w2}}  {d}")
    print("  (0x8001 is sent once Kafka has the fix, PUBACK once mosquitto has the message: compare the 'in Kafka' "
          "rows. Every figure is over the window but the simulators' p50/p99, which cover their whole run, ramp and "
          "registration included (the worse process). 0x8001 (gw): the gateways' reply histogram, interpolated in "
          "its buckets, from the frame read to its reply written; recv -> read: received_at to a consumer here "
          "reading it.)")


def figures(j: dict[str, Any] | None, m: dict[str, Any] | None) -> dict[str, float]:
    fig = {k: math.nan for k in KEYS}
    if j:
        fig.update(jt808_connections=j["conns"], jt808_fixes_per_s=j["rate"], jt808_p99_reply_s=j["gw_p99"],
                   jt808_p50_reply_s=j["gw_p50"], jt808_p99_reply_sim_s=j["sim_p99"],
                   jt808_p99_kafka_read_s=j["recv_p99"], jt808_rss_per_connection_bytes=j["rss_per"],
                   jt808_gateway_cores=j["gw_cores"], jt808_simulator_cores=j["sim_cores"])
    if m:
        fig.update(mqtt_same_rate_fixes_per_s=m["rate"], mqtt_same_rate_p99_s=m["puback_p99"],
                   mqtt_same_rate_p50_s=m["puback_p50"], mqtt_same_rate_p99_kafka_s=m["kafka_p99"],
                   mqtt_same_rate_bridge_cores=m["bridge_cores"])
    if j and m:
        fig.update(mqtt_vs_jt808_fixes_per_s=ratio(m["rate"], j["rate"]),
                   mqtt_kafka_vs_jt808_p99=ratio(m["kafka_p99"], j["gw_p99"]),
                   mqtt_vs_jt808_p99_read=ratio(m["recv_p99"], j["recv_p99"]),
                   jt808_vs_mqtt_cpu_per_fix=ratio(ratio(j["gw_cores"], j["rate"]),
                                                   ratio(m["bridge_cores"], m["rate"])))
    return fig


def snapshot(root: Path, work: Path) -> Path:
    """A copy of what the children run (engine, simulators, config, zones): edits made meanwhile do not reach them."""
    src = work / "src"
    for d in ("engine", "simulators", "zones"):
        shutil.copytree(root / d, src / d, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(root / "config.yaml", src / "config.yaml")
    print(f"running a snapshot of {root} taken now ({src})")
    return src


def run(cfg: argparse.Namespace) -> dict[str, float]:
    """Both paths, each on a fresh stack; the figures (KEYS at least, nan where not measured; ``errors`` if a path
    failed, after printing what it measured)."""
    work = Path(tempfile.mkdtemp(prefix="cw-bench-jt808-"))
    root = Path(cfg.root)
    if not root.is_dir():   # bench.py's end-to-end snapshot, removed when it finished
        root = ROOT
    if getattr(cfg, "snapshot", False):
        root = snapshot(root, work)
    t0 = time.monotonic()
    got: dict[str, dict[str, Any]] = {}
    failed = False
    rate = cfg.jt808_terminals / cfg.jt808_interval_s
    try:
        for name in ("jt808", "mqtt"):   # each on a fresh Tansu + mosquitto: neither pays for the other's data
            stack = Stack(work / name, root=root, mqtt_broker=getattr(cfg, "mqtt_broker", "auto"), kafka_kind="tansu")
            taps: list[KafkaTap] = []
            try:
                stack.start_brokers()
                print(f"\n  {name} stack: Tansu {stack.kafka.address if stack.kafka else '?'}, "
                      f"{stack.mqtt.name if stack.mqtt else '?'}; {load_line()}")
                got[name] = jt808_path(cfg, stack, taps) if name == "jt808" else mqtt_path(cfg, stack, taps, rate)
            except Exception:  # noqa: BLE001 - reported; the other path still runs
                traceback.print_exc()
                failed = True
            finally:
                for tap in taps:
                    tap.stop()
                    if tap.error:
                        print(f"  (Kafka consumer: {tap.error})")
                stack.stop()
    finally:
        if failed or getattr(cfg, "keep", False):
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    j, m = got.get("jt808"), got.get("mqtt")
    if j and m:
        table(j, m)
    print(f"(JT/T 808 vs MQTT {time.monotonic() - t0:.0f} s)")
    fig = figures(j, m)
    if failed:
        fig["errors"] = fig.get("errors", 0) + 1
    return fig


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """This benchmark's own options (bench.py adds them beside its own; --quick, --root, --snapshot, --keep and
    --mqtt-broker are shared with bench_end_to_end)."""
    ap.add_argument("--jt808-terminals", type=int, help="terminals in all (full 20,000, quick 2,000)")
    ap.add_argument("--jt808-sims", type=int, default=2, help="simulator processes (disjoint --first ranges)")
    ap.add_argument("--jt808-gateways", type=int, default=2, help="gateway processes on the same port")
    ap.add_argument("--jt808-interval-s", type=float, default=10.0, help="seconds between a terminal's fixes")
    ap.add_argument("--jt808-heartbeat-s", type=float, default=30.0, help="seconds between heartbeats")
    ap.add_argument("--jt808-ramp-s", type=float, help="connections staggered over this long (full 20, quick 10: "
                    "a whole number of --jt808-interval-s, so reports are spread evenly)")
    ap.add_argument("--jt808-settle-s", type=float, help="seconds after the last terminal connected before the "
                    "window (full 10: one report interval, so the ramp's backlog is gone; quick 2)")
    ap.add_argument("--jt808-window-s", type=float, help="measured seconds of each path (full 60, quick 20)")
    ap.add_argument("--jt808-warmup-s", type=float, help="MQTT path: seconds published before the window")


def finish_args(args: argparse.Namespace) -> argparse.Namespace:
    for k, v in PROFILES["quick" if args.quick else "full"].items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.jt808_terminals < args.jt808_sims or args.jt808_sims < 1 or args.jt808_gateways < 1:
        raise SystemExit("--jt808-terminals >= --jt808-sims >= 1 and --jt808-gateways >= 1")
    return args


def main() -> int:
    import bench_end_to_end as e2e

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 x 1,000 terminals, 20 s windows")
    ap.add_argument("--root", type=Path, default=ROOT, help="source tree whose engine is run (default: this repo)")
    ap.add_argument("--snapshot", action="store_true", help="copy ROOT's engine/, simulators/ and config first")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    ap.add_argument("--mqtt-broker", default="auto", choices=("auto", "mosquitto", "amqtt"))
    add_arguments(ap)
    args = finish_args(ap.parse_args())
    e2e.sigterm_as_exit()
    fig = run(args)
    print(e2e.kv_line(fig))
    return 1 if fig.get("errors") else 0


if __name__ == "__main__":
    raise SystemExit(main())
