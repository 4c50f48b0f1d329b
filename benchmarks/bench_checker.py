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

Then the vectorised kernel alone (:func:`kernel`): per binary ``fixes`` record, ``wire.decode`` +
``ZoneIndex.project`` + ``point_hits`` + ``segment_hits`` from each fix's previous position, and nothing else
(no states, no fast lane, no alerts, no worker): the floor under the checker's and the worker's cost.
``bench.py`` runs it on ``bench_engine.py``'s workload sizes and reports ``kernel_fixes_per_s`` beside
``engine_fixes_per_s``.

    .venv/bin/python benchmarks/bench_checker.py            # 100,000 vehicles, 10,000 zones
    .venv/bin/python benchmarks/bench_checker.py --quick
    .venv/bin/python benchmarks/bench_checker.py --kernel-only --quick
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workload import Fleet, Grid  # noqa: E402
from bench_engine import workload_columns  # noqa: E402

from engine.core.clock import SystemClock  # noqa: E402
from engine.geofence.checker import ZoneChecker  # noqa: E402
from engine.geofence.fleet import PartitionFleet  # noqa: E402
from engine.geofence.index import ZoneIndex  # noqa: E402
from engine.geofence.intake import log_position  # noqa: E402
from engine.geofence.zone_models import load_zone_dir  # noqa: E402
from engine.runtime import tune_gc  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.telemetry import wire  # noqa: E402
from engine.telemetry.wire import decode_columns, decode_fixes  # noqa: E402


def round_records(fleet: Fleet, ids: list[str], k: int, m: int, per_record: int, t0: float) -> list[bytes]:
    """Fix ``k`` of vehicles ``0 .. m-1`` as binary ``fixes`` records of ``per_record`` fixes, in vehicle order
    (record ``i`` of every round holds the same vehicles: the first ``m`` of them in a shorter last round)."""
    v = np.arange(m)
    lon, lat, _ = fleet.positions(v, np.full(m, k))
    lon, lat = np.broadcast_to(lon, (m,)), np.broadcast_to(lat, (m,))
    cols = workload_columns(ids, v, np.full(m, t0 + k), lat, lon)
    return [wire.encode(cols.take(np.arange(i, min(i + per_record, m)))) for i in range(0, m, per_record)]


def rounds(fleet: Fleet, n_rounds: int, per_record: int) -> list[list[bytes]]:
    """Per round, every vehicle's next fix, ``per_record`` fixes per record (the bridge's format)."""
    n = fleet.n_vehicles
    ids = [fleet.vehicle_id(v) for v in range(n)]
    t0 = time.time() - 3600
    return [round_records(fleet, ids, k, n, per_record, t0) for k in range(n_rounds)]


def measure(checker: ZoneChecker, data: list[list[bytes]], path: str) -> tuple[float, int, int]:
    """CPU fixes/s over rounds 2.., alerts, rejections; ``columns`` keeps the states in a partition's fleet of
    arrays as the worker does, ``per_fix`` in a plain dict."""
    states: dict[str, dict] = {}
    fleet = PartitionFleet()
    offset = 0
    fixes_timed = alerts = rejected = 0
    cpu = 0.0
    for k, records in enumerate(data):
        t = time.process_time()
        for rec in records:
            if path == "columns":
                cols = decode_columns(rec)
                n = len(cols)
                res = checker.check_columns(cols, fleet, log_position(offset, 0) + np.arange(n, dtype=np.int64))
                for vid, st in res.states.items():
                    fleet.put_state(vid, st)
                res.moves.apply(fleet, cols)
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


def build_index(zones: int, workdir: Path | None = None) -> tuple[Grid, ZoneIndex, Settings]:
    """The generated grid of ``zones`` zones, written out and loaded as the worker loads it."""
    grid = Grid(zones)
    zone_dir = grid.write(workdir or Path(tempfile.mkdtemp(prefix="cw-bench-checker-")))
    settings = Settings()
    return grid, ZoneIndex(load_zone_dir(zone_dir, tz=settings.city.tz), crs=settings.city.crs), settings


def kernel(vehicles: int = 100_000, zones: int = 10_000, fixes: int = 1_000_000, per_record: int = 500,
           step: float = 0.01, index: ZoneIndex | None = None, grid: Grid | None = None) -> float:
    """Fixes per CPU second of the vectorised kernel alone, on one core (this process, single-threaded).

    The kernel, per binary ``fixes`` record: ``wire.decode``, ``ZoneIndex.project`` of lon/lat,
    ``point_hits`` of the projected points, and ``segment_hits`` from each fix's previous projected position
    to it. The workload is ``bench_engine.py``'s (defaults: 1,000,000 fixes of 100,000 vehicles driving
    along a grid of 10,000 zones, ``step`` of fixes entering a zone, 500-fix records), round by round: fix
    ``k`` of every vehicle, then ``k + 1``. Records are encoded untimed just before their round. The
    previous positions are carried from the same record of the round before (the same vehicles in the same
    order), so no per-vehicle lookup is timed; the first round has none, and is not timed either.
    Figures are ``time.process_time`` of this process.
    """
    if grid is None or index is None:
        grid, index, _ = build_index(zones)
    fleet = Fleet(grid, vehicles, step=step)
    ids = [fleet.vehicle_id(v) for v in range(vehicles)]
    t0 = time.time() - 3600
    n_rounds = max(2, math.ceil(fixes / vehicles))
    prev: list[tuple[np.ndarray, np.ndarray]] = []
    timed = points = segments = n_records = 0
    cpu = wall = 0.0
    for k in range(n_rounds):
        m = vehicles if k < n_rounds - 1 else max(1, min(vehicles, fixes - k * vehicles))
        records = round_records(fleet, ids, k, m, per_record, t0)
        hits_p = hits_s = n = 0
        w, t = time.perf_counter(), time.process_time()
        for i, rec in enumerate(records):
            cols = wire.decode(rec)
            x, y = index.project(cols.lon, cols.lat)
            fix_p, _ = index.point_hits(x, y)
            if k:
                px, py = prev[i]
                fix_s, _ = index.segment_hits(px[:len(x)], py[:len(x)], x, y)
                prev[i] = (x, y)
            else:
                fix_s = ()
                prev.append((x, y))
            n += len(x)
            hits_p += len(fix_p)
            hits_s += len(fix_s)
        if k:
            cpu += time.process_time() - t
            wall += time.perf_counter() - w
            timed += n
            points += hits_p
            segments += hits_s
            n_records += len(records)
    rate = timed / cpu if cpu > 0 else float("nan")
    print(f"  kernel (decode + project + point test + segment test): {rate:,.0f} fixes per CPU second "
          f"({1e6 / rate:.2f} us/fix; {timed / wall:,.0f} fixes/s wall) over {timed:,} fixes in {n_records:,} "
          f"{per_record}-fix records, {vehicles:,} vehicles, {len(index):,} zones; {points:,} point hits, "
          f"{segments:,} segment hits")
    return rate


def kernel_from_args(a: argparse.Namespace) -> float:
    """:func:`kernel` on the workload sizes of ``bench_engine.run`` for the same arguments
    (``--engine-fixes/-vehicles/-zones/-batch/-step``, the same defaults, the same ``--quick`` sizes)."""
    quick = getattr(a, "quick", False)
    return kernel(vehicles=getattr(a, "engine_vehicles", None) or (20_000 if quick else 100_000),
                  zones=getattr(a, "engine_zones", None) or (2_000 if quick else 10_000),
                  fixes=getattr(a, "engine_fixes", None) or (200_000 if quick else 1_000_000),
                  per_record=getattr(a, "engine_batch", None) or 500,
                  step=0.01 if getattr(a, "engine_step", None) is None else a.engine_step)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 vehicles, 2,000 zones")
    ap.add_argument("--vehicles", type=int)
    ap.add_argument("--zones", type=int)
    ap.add_argument("--rounds", type=int, default=4, help="fixes per vehicle (the first is not timed)")
    ap.add_argument("--kernel-fixes", type=int,
                    help="fixes of the kernel run (default 10 rounds of the vehicles, as bench_engine.py)")
    ap.add_argument("--kernel-only", action="store_true", help="only the kernel, not the checker paths")
    a = ap.parse_args()
    vehicles = a.vehicles or (20_000 if a.quick else 100_000)
    zones = a.zones or (2_000 if a.quick else 10_000)
    grid, index, settings = build_index(zones)
    fig = {}
    if not a.kernel_only:
        data = rounds(Fleet(grid, vehicles), a.rounds, 5_000)
        print(f"{vehicles:,} vehicles x {a.rounds} fixes, {zones:,} zones, 5,000-fix records")
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
        fig["gc_tuning_ratio"] = (fig["checker_fixes_per_s_columns_tuned_gc"]
                                  / fig["checker_fixes_per_s_columns_default_gc"])
        fig["columns_vs_per_fix"] = (fig["checker_fixes_per_s_columns_tuned_gc"]
                                     / fig["checker_fixes_per_s_per_fix_tuned_gc"])
        del data
    fig["kernel_fixes_per_s"] = kernel(vehicles=vehicles, zones=zones, fixes=a.kernel_fixes or 10 * vehicles,
                                       index=index, grid=grid)
    if "checker_fixes_per_s_columns_tuned_gc" in fig:
        fig["kernel_vs_columns"] = fig["kernel_fixes_per_s"] / fig["checker_fixes_per_s_columns_tuned_gc"]
    print(" ".join(f"{k}={v:.0f}" if v > 100 else f"{k}={v:.2f}" for k, v in fig.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
