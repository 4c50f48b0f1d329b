"""The zone checker alone, in one process: decode + check on partition batches, no Kafka, no Faust.

Two paths side by side: ``columns`` (what the worker runs: ``decode_columns`` + ``ZoneChecker.check_columns``,
the fast lane for vehicles far from zones or settled inside one) and ``per_fix`` (``decode_fixes`` +
``ZoneChecker.check``, a Python object per fix), and the ratio between them.

The workload of ``bench_engine.py`` (vehicles driving along the zone grid,
1 % of fixes entering a zone), as 5,000-fix records; the first round
registers every vehicle and is not timed. Figures are CPU seconds of this
process (``time.process_time``), so other load on the machine moves them
little. Run once with CPython's default garbage-collector thresholds and once
with the worker's (``engine.runtime.tune_gc``); the ratio is what that tuning
buys at this many tracked vehicles. What is left between this figure and
``bench_engine.py``'s is Faust and Kafka.

    .venv/bin/python benchmarks/bench_checker.py            # 100,000 vehicles, 10,000 zones
    .venv/bin/python benchmarks/bench_checker.py --quick
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workload import Fleet, Grid  # noqa: E402
from bench_engine import workload_columns  # noqa: E402

from engine.clock import SystemClock  # noqa: E402
from engine.geofence.checker import ZoneChecker  # noqa: E402
from engine.geofence.index import ZoneIndex  # noqa: E402
from engine.geofence.zones import load_zone_dir  # noqa: E402
from engine.runtime import tune_gc  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.telemetry import wire  # noqa: E402
from engine.geofence.intake import log_position  # noqa: E402
from engine.telemetry.models import decode_columns, decode_fixes  # noqa: E402


def rounds(fleet: Fleet, n_rounds: int, per_record: int) -> list[list[bytes]]:
    """Per round, every vehicle's next fix, ``per_record`` fixes per record (the bridge's format)."""
    n = fleet.n_vehicles
    ids = [fleet.vehicle_id(v) for v in range(n)]
    t0 = time.time() - 3600
    v_all = np.arange(n)
    out = []
    for k in range(n_rounds):
        lon, lat, _ = fleet.positions(v_all, np.full(n, k))
        lon, lat = np.broadcast_to(lon, (n,)), np.broadcast_to(lat, (n,))
        cols = workload_columns(ids, v_all, np.full(n, t0 + k), lat, lon)
        out.append([wire.encode(cols.take(np.arange(i, min(i + per_record, n)))) for i in range(0, n, per_record)])
    return out


def measure(checker: ZoneChecker, data: list[list[bytes]], path: str) -> tuple[float, int, int]:
    """CPU fixes/s over rounds 2.., alerts, rejections; states kept in a plain dict like the worker's memory."""
    states: dict[str, dict] = {}
    offset = 0
    fixes_timed = alerts = rejected = 0
    cpu = 0.0
    for k, records in enumerate(data):
        t = time.process_time()
        for rec in records:
            if path == "columns":
                cols = decode_columns(rec)
                n = len(cols)
                res = checker.check_columns(cols, {vid: states.get(vid) for vid in cols.vehicle_id},
                                            log_position(offset, 0) + np.arange(n, dtype=np.int64))
            else:
                fixes = decode_fixes(rec)
                n = len(fixes)
                res = checker.check(fixes, {f.vehicle_id: states.get(f.vehicle_id) for f in fixes},
                                    [(offset, i) for i in range(n)])
            states.update(res.states)
            offset += 1
            if k:
                fixes_timed += n
                alerts += len(res.alerts)
                rejected += len(res.rejections)
        if k:
            cpu += time.process_time() - t
    return fixes_timed / cpu, alerts, rejected


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 vehicles, 2,000 zones")
    ap.add_argument("--vehicles", type=int)
    ap.add_argument("--zones", type=int)
    ap.add_argument("--rounds", type=int, default=4, help="fixes per vehicle (the first is not timed)")
    a = ap.parse_args()
    vehicles = a.vehicles or (20_000 if a.quick else 100_000)
    zones = a.zones or (2_000 if a.quick else 10_000)
    grid = Grid(zones)
    zone_dir = grid.write(Path(tempfile.mkdtemp(prefix="cw-bench-checker-")))
    settings = Settings()
    index = ZoneIndex(load_zone_dir(zone_dir, tz=settings.city.tz), crs=settings.city.crs)
    data = rounds(Fleet(grid, vehicles), a.rounds, 5_000)
    print(f"{vehicles:,} vehicles x {a.rounds} fixes, {zones:,} zones, 5,000-fix records")
    fig = {}
    for name in ("default_gc", "tuned_gc"):
        if name == "tuned_gc":
            tune_gc()
        else:
            gc.set_threshold(700, 10, 10)
        for path in ("columns", "per_fix"):
            checker = ZoneChecker(index, tz=settings.city.tz, clock=SystemClock(), settings=settings)
            rate, alerts, rejected = measure(checker, data, path)
            fig[f"checker_fixes_per_s_{path}_{name}"] = rate
            print(f"  {path:<8} {name:<11} {rate:>10,.0f} fixes/s per CPU second ({1e6 / rate:.1f} us/fix); "
                  f"{alerts:,} alerts, {rejected:,} rejected")
    fig["gc_tuning_ratio"] = fig["checker_fixes_per_s_columns_tuned_gc"] / fig["checker_fixes_per_s_columns_default_gc"]
    fig["columns_vs_per_fix"] = fig["checker_fixes_per_s_columns_tuned_gc"] / fig["checker_fixes_per_s_per_fix_tuned_gc"]
    print(" ".join(f"{k}={v:.0f}" if v > 100 else f"{k}={v:.2f}" for k, v in fig.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
