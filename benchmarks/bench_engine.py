"""Engine alone: one worker consuming partition batches already in Kafka (no MQTT, no bridge).

Puts ``--fixes`` fixes of ``--vehicles`` vehicles on a fresh ``fixes`` topic
the way the bridge does (one record per partition batch of
``--batch`` fixes, keyed so each vehicle's fixes are on its partition), with
``--zones`` zones seeded, then starts one ``citywatch worker`` and measures how
fast it works through the backlog: fixes/s = slope of
``citywatch_zone_checks_total`` from the first to the last sample while the
backlog lasts. The workload is the end-to-end one (benchmarks/_workload.py:
vehicles driving along the zone grid; ``--step`` of fixes enter a zone), so
alerts are produced and states change as in the live run.

Prints the figures, the worker's CPU, and a ``key=value`` line
(``engine_fixes_per_s=``); ``--profile DIR`` records the worker with py-spy.
No assertions on timing.

    .venv/bin/python benchmarks/bench_engine.py              # 1,000,000 fixes, 100,000 vehicles, 10,000 zones
    .venv/bin/python benchmarks/bench_engine.py --quick --profile /tmp/cw-prof
    .venv/bin/python benchmarks/bench_engine.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _profile  # noqa: E402
from _stack import CpuMeter, Stack, free_port, wait_until  # noqa: E402
from _workload import CLASSES, Fleet, Grid  # noqa: E402

from engine.settings import Settings  # noqa: E402
from engine.telemetry import wire  # noqa: E402
from engine.telemetry.batching import partition_for  # noqa: E402
from engine.telemetry.columns import FixColumns  # noqa: E402
from engine.topology import ensure_all_topics  # noqa: E402

CHECKED = "citywatch_zone_checks_total"
ALERTS = "citywatch_alerts_total"
DELIVERED = "citywatch_alerts_delivered_total"


CLASS_TABLE = tuple(dict.fromkeys(CLASSES))
CLASS_CODES = np.array([CLASS_TABLE.index(c) for c in CLASSES], dtype=np.uint8)


def workload_columns(ids: list[str], v: np.ndarray, ts: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> FixColumns:
    """Fixes of vehicles ``v`` as the bridge produces them: class by vehicle, 30 km/h, source ``mqtt``."""
    m = len(v)

    def missing() -> np.ndarray:
        return np.full(m, np.nan)

    return FixColumns([ids[i] for i in v.tolist()], np.asarray(ts, dtype=np.float64), np.round(lat, 7),
                      np.round(lon, 7), np.full(m, 30.0), missing(), missing(), missing(),
                      np.full(m, -1, np.int64), np.full(m, -1, np.int64), np.full(m, -1, np.int8),
                      CLASS_CODES[v % len(CLASSES)], np.zeros(m, np.uint8), classes=CLASS_TABLE, sources=("mqtt",))


def records(fleet: Fleet, n_fixes: int, batch: int, partitions: int, t0: float) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) records: fix k of every vehicle, then k+1 ...; ``batch`` fixes per record.

    Each record is what the bridge writes (:mod:`engine.telemetry.wire`), keyed by its first vehicle.
    """
    n = fleet.n_vehicles
    ids = [fleet.vehicle_id(v) for v in range(n)]
    part = np.array([partition_for(i.encode(), partitions) for i in ids])
    v_all = np.arange(n)
    vs, ts, lats, lons = [], [], [], []
    for k in range(-(-n_fixes // n)):
        m = min(n, n_fixes - k * n)
        lon, lat, _ = fleet.positions(v_all, np.full(n, k))
        vs.append(v_all[:m])
        ts.append(np.full(m, t0 + k * 1.0))
        lats.append(np.broadcast_to(lat, (n,))[:m])
        lons.append(np.broadcast_to(lon, (n,))[:m])
    v, t, lat, lon = (np.concatenate(x) for x in (vs, ts, lats, lons))
    out: list[tuple[int, bytes, bytes]] = []
    for p in range(partitions):
        rows = np.flatnonzero(part[v] == p)  # in fix order: each vehicle's fixes in time order
        for r in (rows[i:i + batch] for i in range(0, len(rows), batch)):
            out.append((p, ids[v[r[0]]].encode(), wire.encode(workload_columns(ids, v[r], t[r], lat[r], lon[r]))))
    return out


async def produce(bootstrap: str, topic: str, recs: list[tuple[int, bytes, bytes]]) -> None:
    # batches under Kafka's default message.max.bytes (1 MB); Tansu takes larger ones
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5, max_request_size=8 * 2**20,
                            max_batch_size=512 * 2**10)
    await prod.start()
    try:
        futs = [await prod.send(topic, value, key=key, partition=p) for p, key, value in recs]
        await asyncio.gather(*futs)
    finally:
        await prod.stop()


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text}: must be above 0 (the vehicles' step along the grid)")
    return value


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--engine-fixes", type=int, help="fixes on Kafka (default 1,000,000; quick 200,000)")
    ap.add_argument("--engine-vehicles", type=int, help="vehicles (default 100,000; quick 20,000)")
    ap.add_argument("--engine-zones", type=int, help="zones (default 10,000; quick 2,000)")
    ap.add_argument("--engine-batch", type=int, default=500, help="fixes per Kafka record (bridge.batch_max_fixes)")
    ap.add_argument("--engine-step", type=_positive, default=0.01, help="cells per fix: the fraction entering a zone")


def run(a: argparse.Namespace, profile: Path | None = None) -> dict[str, float]:
    """Put the backlog on Kafka, start one worker, measure; returns ``engine_fixes_per_s`` and friends."""
    fixes = a.engine_fixes or (200_000 if a.quick else 1_000_000)
    vehicles = a.engine_vehicles or (20_000 if a.quick else 100_000)
    zones = a.engine_zones or (2_000 if a.quick else 10_000)
    workdir = Path(tempfile.mkdtemp(prefix="cw-bench-engine-"))
    grid = Grid(zones)
    fleet = Fleet(grid, vehicles, step=a.engine_step)
    zone_dir = grid.write(workdir / "zones")
    kind = getattr(a, "kafka", "tansu")
    with Stack(workdir, kafka_kind=kind).start_brokers() as stack:
        assert stack.kafka is not None
        web = free_port()
        env = stack.env(CITYWATCH_ZONES__DIR=str(zone_dir), CITYWATCH_WEB__PORT=str(web),
                        CITYWATCH_WORKER__DATA_DIR=str(workdir / "worker"))
        settings = Settings().replace(kafka={"bootstrap": stack.kafka.address,
                                             "broker": "kafka" if kind == "apache" else "tansu"})
        ensure_all_topics(settings)
        t = time.monotonic()
        recs = records(fleet, fixes, a.engine_batch, settings.kafka.partitions, time.time() - 3600)
        asyncio.run(produce(stack.kafka.address, settings.kafka.topics.fixes, recs))
        print(f"{fixes:,} fixes of {vehicles:,} vehicles in {len(recs):,} records on Kafka "
              f"({time.monotonic() - t:.1f} s); {zones:,} zones")
        worker = stack.spawn("worker", ["-m", "engine", "worker"], env, metrics_port=web)
        # The worker reads the zones topic once it has started and checks no fix before it has them: the
        # clock starts there (the first checked fix would be too late: a backlog goes fast from then on).
        if not stack.wait_metric(worker, "citywatch_zones_loaded", lambda v: v > 0, 120):
            raise RuntimeError("the worker did not load its zones")
        cpu = CpuMeter({"worker": worker.pid, stack.kafka_name: stack.pids()[stack.kafka_name]}).start()
        prof = _profile.record(worker.pid, profile / "engine.raw", 30) if profile else None
        samples: list[tuple[float, float]] = [(time.monotonic(), worker.metrics().get(CHECKED, 0.0))]

        def sample() -> bool:
            v = worker.metrics().get(CHECKED, 0.0)
            samples.append((time.monotonic(), v))
            return v >= fixes * 0.999

        wait_until(sample, 600, 0.25)
        cpu.stop()
        if prof is not None:
            prof.wait()
        t_a, c_a = samples[0]
        t_b, c_b = samples[-1]
        rate = (c_b - c_a) / (t_b - t_a) if t_b > t_a else float("nan")
        m = worker.metrics()
        print(f"worker checked {c_b:,.0f} fixes: {rate:,.0f} fixes/s over {t_b - t_a:.1f} s "
              f"(CPU: {cpu.summary()}); alerts {m.get('citywatch_alerts_total', 0):,.0f}, "
              f"delivered to MQTT so far {m.get(DELIVERED, 0):,.0f}, "
              f"states checkpointed {m.get('citywatch_states_checkpointed_total', 0):,.0f}")
        t_end = time.monotonic()
        if wait_until(lambda: (w := worker.metrics()).get(DELIVERED, 0) >= w.get(ALERTS, 0) > 0, 60, 0.25):
            print(f"every alert delivered to MQTT {time.monotonic() - t_end:.1f} s after the last fix was checked")
        else:
            w = worker.metrics()
            print(f"alerts not all delivered 60 s after the last fix was checked: "
                  f"{w.get(DELIVERED, 0):,.0f} of {w.get(ALERTS, 0):,.0f}")
        if prof is not None and profile:
            print(_profile.summarize(profile / "engine.raw"))
    return {"engine_fixes_per_s": rate, "engine_vehicles": vehicles, "engine_zones": zones}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200,000 fixes, 20,000 vehicles, 2,000 zones")
    ap.add_argument("--profile", type=Path, help="record the worker with py-spy into this folder")
    ap.add_argument("--kafka", choices=("tansu", "apache"), default="tansu", help="the Kafka broker to run on")
    add_arguments(ap)
    args = ap.parse_args()
    fig = run(args, args.profile)
    print(" ".join(f"{k}={v:.0f}" for k, v in fig.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
