"""Every benchmark, as ``make bench`` runs it; ends with one line of ``key=value`` figures.

1. the zone-index micro suite (``bench_zone_index.py``): 100 / 1,000 / 20,000
   zones, simple and 500-vertex polygons, point and segment tests, against a
   per-fix loop and rtree;
2. the worker alone on partition batches already in Kafka (``bench_engine.py``),
   then the vectorised kernel alone on the same workload sizes
   (``bench_checker.kernel``: decode + project + point test + segment test, one
   core, no worker) and the ratio between the two;
3. the end-to-end run on the embedded stack (``bench_end_to_end.py``):
   latency at a fixed offered rate with single-fix messages and with 100-fix
   arrays, sustained throughput with 100-fix arrays and with single-fix
   messages, worker memory per vehicle, and the naive per-fix baseline
   (``naive_worker.py``) on the same workload;
4. where Java and Maven are present (``engine.brokers.apache_kafka``), the
   worker alone and the end-to-end throughput with 100-fix arrays again on
   Apache Kafka (``kafka.broker: kafka``, production consumer and producer
   settings), printed beside the Tansu figures with their ratio
   (``*_apache`` and ``apache_vs_tansu_*`` keys; ``--skip-apache`` leaves it out);
5. the JT/T 808 gateway against the MQTT bridge at the same offered rate (``bench_jt808.py``: 20,000
   terminals on two gateway processes, then single-fix MQTT messages through the bridge; ``jt808_*`` and
   ``mqtt_same_rate_*`` keys; about 3 minutes, 1 with ``--quick``; ``--skip-jt808`` leaves it out).

The last line always carries the keys of ``REQUIRED`` (``nan`` where a phase
did not run or failed; the exit status is then 1), then every other figure.
Figures are reported, never asserted. Full run: under ~13 minutes on 2 cores;
``--quick``: a few minutes.

    make bench                         # full
    make bench BENCH_ARGS=--quick      # smoke run
    .venv/bin/python benchmarks/bench.py --quick --snapshot
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_end_to_end as e2e  # noqa: E402
import bench_engine as engine  # noqa: E402
import bench_jt808 as jt808  # noqa: E402
import bench_zone_index as micro  # noqa: E402

REQUIRED = ("engine_fixes_per_s", "kernel_fixes_per_s", "engine_vs_kernel",
            "fixes_per_s", "fixes_per_s_single",
            "p50_latency_s", "p99_latency_s", "p50_latency_array_s", "p99_latency_array_s",
            "bytes_per_vehicle", "vs_naive")


def run_kernel(args: argparse.Namespace, fig: dict[str, float]) -> None:
    """The kernel alone on bench_engine's workload sizes; ``kernel_fixes_per_s`` and ``engine_vs_kernel``."""
    import bench_checker as checker  # here: a broken import is reported like any failed phase

    rate = checker.kernel_from_args(args)
    fig["kernel_fixes_per_s"] = rate
    engine_rate = fig.get("engine_fixes_per_s", math.nan)
    if engine_rate > 0 and math.isfinite(engine_rate) and math.isfinite(rate):
        fig["engine_vs_kernel"] = rate / engine_rate
        print(f"kernel alone {rate:,.0f} fixes per CPU second, worker alone {engine_rate:,.0f} fixes/s: "
              f"engine_vs_kernel {rate / engine_rate:.2f} (the kernel is that many times the worker's rate)")
    else:
        print(f"kernel alone {rate:,.0f} fixes per CPU second; no engine figure to compare it with")


def run_apache(args: argparse.Namespace, fig: dict[str, float]) -> bool:
    """The worker alone and the end-to-end array throughput on Apache Kafka; False if a phase failed."""
    from engine.brokers.apache_kafka import unavailable_reason

    reason = unavailable_reason()
    if reason:
        print(f"not run on Apache Kafka: {reason}")
        return True
    ok = True
    on_kafka = argparse.Namespace(**{**vars(args), "kafka": "apache", "phases": {"array"}, "snapshot": False})
    apache: dict[str, float] = {}
    if not args.skip_engine:
        print("\n=== engine alone on Apache Kafka ===")
        try:
            apache["engine_fixes_per_s"] = engine.run(on_kafka)["engine_fixes_per_s"]
        except Exception:  # noqa: BLE001 - reported; the other phase still runs
            traceback.print_exc()
            ok = False
    print("\n=== end to end on Apache Kafka (100-fix arrays, sustained) ===")
    try:
        got = e2e.run(on_kafka)
        ok = ok and not got.get("errors")
        if "fixes_per_s" in got:
            apache["fixes_per_s"] = got["fixes_per_s"]
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        ok = False
    print("\nTansu and Apache Kafka side by side (same machine, same run):")
    for key, ratio_key, what in (("engine_fixes_per_s", "apache_vs_tansu_engine", "worker alone, fixes/s"),
                                 ("fixes_per_s", "apache_vs_tansu_e2e", "end to end, 100-fix arrays")):
        t, k = fig.get(key, math.nan), apache.get(key, math.nan)
        ratio = k / t if t > 0 and math.isfinite(t) and math.isfinite(k) else math.nan
        fig[f"{key}_apache"], fig[ratio_key] = k, ratio
        print(f"  {what:<28} tansu {t:>10,.0f}  apache-kafka {k:>10,.0f}  ratio {ratio:.2f}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    e2e.add_arguments(ap)
    engine.add_arguments(ap)
    ap.add_argument("--skip-micro", action="store_true", help="skip the zone-index micro suite")
    ap.add_argument("--skip-engine", action="store_true", help="skip the engine-alone run")
    ap.add_argument("--skip-apache", action="store_true", help="skip the phases run again on Apache Kafka")
    ap.add_argument("--skip-jt808", action="store_true", help="skip the JT/T 808 vs MQTT comparison")
    jt808.add_arguments(ap)
    ap.add_argument("--micro-zones", help="zone counts of the micro suite (default 100,1000,20000; quick 100,1000)")
    ap.add_argument("--micro-shapes", default="simple,500", help="shapes of the micro suite")
    args = jt808.finish_args(e2e.finish_args(ap.parse_args()))
    root = args.root  # e2e.run points args.root at its snapshot, removed when it ends
    e2e.sigterm_as_exit()
    t0 = time.monotonic()
    fig: dict[str, float] = {}
    failed = False
    if not args.skip_micro:
        print("=== zone-index micro suite ===")
        margs = argparse.Namespace(quick=args.quick, fixes=None, loop_fixes=None, repeats=None, seed=1,
                                   zones=args.micro_zones, shapes=args.micro_shapes)
        try:
            micro_fig = micro.summary(micro.suite(margs))
        except Exception:  # noqa: BLE001 - report and go on with the end-to-end run
            traceback.print_exc()
            failed, micro_fig = True, {}
        print(f"(micro suite {time.monotonic() - t0:.0f} s)")
    if not args.skip_engine:
        print("\n=== engine alone (partition batches already in Kafka) ===")
        try:
            fig.update(engine.run(args))
        except Exception:  # noqa: BLE001 - report and go on with the end-to-end run
            traceback.print_exc()
            failed = True
        print("\n=== kernel alone (decode + project + point test + segment test, one core, no worker) ===")
        try:
            run_kernel(args, fig)
        except Exception:  # noqa: BLE001 - report and go on with the end-to-end run
            traceback.print_exc()
            failed = True
    print("\n=== end to end ===")
    try:
        fig.update(e2e.run(args))
    except Exception:  # noqa: BLE001 - the figures so far are still printed
        traceback.print_exc()
        failed = True
    if not args.skip_apache and args.kafka == "tansu":
        failed = not run_apache(args, fig) or failed
    if not args.skip_jt808:
        print("\n=== JT/T 808 gateway vs MQTT bridge at the same offered rate ===")
        try:
            got = jt808.run(argparse.Namespace(**{**vars(args), "root": root}))
            failed = bool(got.pop("errors", 0)) or failed
            fig.update(got)
        except Exception:  # noqa: BLE001 - reported; the figures so far are still printed
            traceback.print_exc()
            failed = True
            fig.update({k: math.nan for k in jt808.KEYS})
    if not args.skip_micro:
        fig.update(micro_fig)
    e2e.print_targets(fig)
    missing = [k for k in REQUIRED if k not in fig]
    if missing:
        print(f"not measured: {', '.join(missing)}")
    print(f"total {time.monotonic() - t0:.0f} s")
    line = {k: fig.get(k, math.nan) for k in REQUIRED}
    line.update({k: v for k, v in fig.items() if k not in line})
    print(e2e.kv_line(line))
    return 1 if failed or missing or fig.get("errors") else 0


if __name__ == "__main__":
    raise SystemExit(main())
