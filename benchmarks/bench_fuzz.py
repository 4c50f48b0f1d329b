"""Fuzzing at volume: generated inputs through every entry point, counting crashes and rejections by reason.

Entry points and the real code each input goes through (the checks live in ``tests/fuzz/inputs.py``):

- ``mqtt``: gateway payloads (objects, mixed arrays, raw bytes, NaN/Infinity, non-UTF-8, deep nesting, limits)
  through the bridge's ``parse_payload``, accepted fixes then through the worker's ``decode_fixes``;
- ``mqtt_paths``: those payloads and mostly good ones (one field at an edge) through the columnar
  ``parse_payload`` and the per-element ``parse_payload_slow``: the same fixes accepted, the same rejections
  (reason, detail, index, raw);
- ``fixes_record``: anything a foreign producer could put on the ``fixes`` topic, through ``decode_fixes``;
- ``zones`` / ``zone_file``: GeoJSON documents and raw files through the zone loader;
- ``vetting``: HTTP / Kafka bodies of applications and records through the vetting intake and its rejection record;
- ``open311``: service-request bodies through the Open311 intake, when ``engine.casework`` provides one;
- ``config``: YAML files and ``CITYWATCH_*`` environments through ``load_settings``.

A crash is any exception other than the entry point's own error type, or a broken property (an input
neither accepted nor rejected, an unknown reason, a good element of a mixed array rejected, a raw ID
number echoed, the columnar and per-element MQTT paths disagreeing). Most inputs come from a fast seeded
mutator; ``--hypothesis N`` adds N examples per entry point from the hypothesis strategies the test suite
uses. Usage::

    .venv/bin/python benchmarks/bench_fuzz.py [--inputs 100000] [--seed 1] [--hypothesis 500]

Ends with one ``key=value`` line: ``inputs=``, ``crashes=``, ``inputs_per_s=`` and ``rejected_<entry>=``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz import inputs as fz  # noqa: E402

#: Share of the inputs per entry point (the cheap, high-volume ones get more).
MIX = {"mqtt": 0.45, "mqtt_paths": 0.10, "fixes_record": 0.12, "zones": 0.12, "zone_file": 0.03, "vetting": 0.12,
       "config": 0.04, "open311": 0.02}


def open311_check():  # type: ignore[no-untyped-def]
    """``(generate(mutator), check)`` for the Open311 intake, or None while engine.casework has none."""
    try:
        from tests.fuzz import open311_inputs
    except ImportError:
        return None
    return open311_inputs.generate, open311_inputs.check


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hypothesis", type=int, default=0, help="extra hypothesis examples per entry point")
    args = ap.parse_args(argv)

    m = fz.Mutator(args.seed)
    scratch = Path(tempfile.mkdtemp(prefix="citywatch-bench-fuzz-"))
    it = fz.intake()
    o311 = open311_check()
    gens = {
        "mqtt": lambda: (fz.check_mqtt, (m.mqtt(),)),
        "mqtt_paths": lambda: (fz.check_mqtt_paths, (m.mqtt_near_good() if m.r.random() < 0.5 else m.mqtt(),)),
        "fixes_record": lambda: (fz.check_fixes_record, (m.fixes_record(),)),
        "zones": lambda: (fz.check_zones, (m.feature_collection(),)),
        "zone_file": lambda: (fz.check_zone_file, (m.zone_bytes(), scratch / "zones.geojson")),
        "vetting": lambda: (fz.check_vetting, (*m.vetting(), it)),
        "config": lambda: (fz.check_config, (*m.config(), scratch / "config.yaml")),
    }
    if o311 is not None:
        gens["open311"] = lambda: (o311[1], (o311[0](m),))
    shares = {k: v for k, v in MIX.items() if k in gens}
    total_share = sum(shares.values())
    plan = [(k, max(1, round(args.inputs * v / total_share))) for k, v in shares.items()]

    tried: Counter[str] = Counter()
    crashes: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    first_crash: dict[str, str] = {}
    seconds: Counter[str] = Counter()

    def run(entry: str, check, call_args) -> None:  # type: ignore[no-untyped-def]
        tried[entry] += 1
        try:
            reason = check(*call_args)
        except Exception:  # noqa: BLE001 - that is what we count
            crashes[entry] += 1
            first_crash.setdefault(entry, traceback.format_exc(limit=6)[-1500:])
            return
        for r in (reason or "accepted").split(","):
            reasons[entry][r] += 1

    started = time.perf_counter()
    for entry, n in plan:
        t0 = time.perf_counter()
        for _ in range(n):
            check, call_args = gens[entry]()
            run(entry, check, call_args)
        seconds[entry] += time.perf_counter() - t0
    if args.hypothesis:
        hyp = hypothesis_inputs(args.hypothesis, scratch, it)
        for entry, check, call_args in hyp:
            t0 = time.perf_counter()
            run(entry, check, call_args)
            seconds[entry] += time.perf_counter() - t0
    elapsed = time.perf_counter() - started

    n_inputs, n_crashes = sum(tried.values()), sum(crashes.values())
    print(f"fuzz: {n_inputs} inputs in {elapsed:.1f} s ({n_inputs / elapsed:,.0f}/s), {n_crashes} crashes"
          + ("" if o311 else "  [open311: no Open311 intake in engine.casework yet - skipped]"))
    print(f"{'entry point':14} {'inputs':>8} {'crashes':>8} {'inputs/s':>9}  rejections by reason (accepted shown too)")
    for entry in tried:
        counts = [f"{r}={c}" for r, c in reasons[entry].most_common()]
        lines = [", ".join(counts[i:i + 8]) for i in range(0, len(counts), 8)] or [""]
        print(f"{entry:14} {tried[entry]:8} {crashes[entry]:8} {tried[entry] / max(seconds[entry], 1e-9):9,.0f}  "
              + f"\n{'':43}".join(lines))
    for entry, tb in first_crash.items():
        print(f"\nfirst crash in {entry}:\n{tb}")
    rejected = {e: sum(c for r, c in reasons[e].items() if r != "accepted") for e in tried}
    print(f"inputs={n_inputs} crashes={n_crashes} inputs_per_s={n_inputs / elapsed:.0f} "
          + " ".join(f"rejected_{e}={rejected[e]}" for e in tried))
    return 1 if n_crashes else 0


def hypothesis_inputs(n: int, scratch: Path, it):  # type: ignore[no-untyped-def]
    """``n`` examples per entry point drawn from the test suite's strategies (no shrinking, no database)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    out: list[tuple] = []
    strategies = [
        ("mqtt", fz.mqtt_payloads(), lambda x: (fz.check_mqtt, (x,))),
        ("mqtt_paths", fz.mqtt_payloads(), lambda x: (fz.check_mqtt_paths, (x,))),
        ("fixes_record", st.binary(max_size=300), lambda x: (fz.check_fixes_record, (x,))),
        ("zones", fz.feature_collections(), lambda x: (fz.check_zones, (x,))),
        ("vetting", fz.vetting_bodies(), lambda x: (fz.check_vetting, (*x, it))),
        ("config", fz.configs(), lambda x: (fz.check_config, (*x, scratch / "config-h.yaml"))),
    ]
    def collector(entry, strategy, make):  # type: ignore[no-untyped-def]
        @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def collect(x):  # type: ignore[no-untyped-def]
            check, call_args = make(x)
            out.append((entry, check, call_args))

        return collect

    for entry, strategy, make in strategies:
        collector(entry, strategy, make)()
    return out


if __name__ == "__main__":
    sys.exit(main())
