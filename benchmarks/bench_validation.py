"""MQTT payload validation, per element vs columnar: parsed fixes/s for one fix, 100 and 1000 per message.

Paths measured on the same bytes, topic and settings:

- ``list``: what ``parse_payload`` did before columns: orjson, then ``validate_fix`` per element into a
  list of :class:`Fix` (no rejection records: every element here is good but in ``mixed``);
- ``elements``: ``parse_payload_slow``, the same plus :func:`from_fixes` (the per-element path as it is
  now, and the columnar path's fallback);
- ``columnar``: ``parse_payload``, msgspec straight into typed fields, every check on whole columns.

Payload kinds: ``epoch`` (ts in epoch seconds, the usual fields), ``iso`` (ts an ISO 8601 string with an
offset, each a different second: parsed one by one), ``extra`` (two fields the bridge does not read, so
the decoder that skips fields and the raw-byte checks run), ``mixed`` (one fix in 20 outside the city:
those rows go through ``validate_fix`` and become rejections). A single fix is published on
``<fixes_topic>/<vehicle_id>``, an array on ``<fixes_topic>``.

Figures are CPU seconds of this process (``time.process_time``; steadier than wall-clock time on a shared
machine, ``--wall`` for wall-clock), best of ``--repeat`` runs of at least ``--min-s`` each. Nothing is
asserted; a line says so if the columnar path handed a payload over or the answers differ.

    .venv/bin/python benchmarks/bench_validation.py
    .venv/bin/python benchmarks/bench_validation.py --sizes 1,10,100,1000 --kinds epoch,iso
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.core.errors import FixRejected  # noqa: E402
from engine.settings import Settings, load_settings  # noqa: E402
from engine.telemetry.fix_rules import topic_map, validate_fix  # noqa: E402
from engine.telemetry.validation import parse_payload, parse_payload_columns, parse_payload_slow  # noqa: E402

NOW = 1_788_832_800.0  # 2026-09-08T10:00:00+08:00
CST = timezone(timedelta(hours=8))
KINDS = ("epoch", "iso", "extra", "mixed")


def payload(kind: str, n: int, settings: Settings, seed: int = 1) -> tuple[str, bytes]:
    r, b = random.Random(seed), settings.city.bounds
    fixes: list[dict[str, Any]] = []
    for i in range(n):
        ts = NOW - 600 + i * 0.5
        fix = {"vehicle_id": f"闽D{i:05d}",
               "ts": datetime.fromtimestamp(int(ts), CST).isoformat() if kind == "iso" else ts,
               "lat": r.uniform(b.lat_min, b.lat_max), "lon": r.uniform(b.lon_min, b.lon_max),
               "class": r.choice(["taxi", "bus", "hazmat", "other"]), "speed_kmh": round(r.uniform(0, 80), 1),
               "heading": r.randrange(360), "accuracy_m": 5, "alarm_flags": 0}
        if kind == "extra":
            fix.update(satellites=r.randrange(4, 14), altitude_m=round(r.uniform(0, 90), 1))
        if kind == "mixed" and i % 20 == 19:
            fix["lat"] = 31.23  # Shanghai: out_of_area
        fixes.append(fix)
    fixes_topic = settings.mqtt.fixes_topic
    if n == 1:
        return f"{fixes_topic}/{fixes[0]['vehicle_id']}", orjson.dumps(fixes[0])
    return fixes_topic, orjson.dumps(fixes)


def old_list_path(settings: Settings) -> Callable[[bytes, str], int]:
    """orjson then validate_fix per element into a list (the former parse_payload's accepted-fix work)."""
    def run(raw: bytes, topic: str) -> int:
        vehicle, _, prefixes = topic_map(settings.mqtt).parse(topic)
        obj = orjson.loads(raw)
        fixes = []
        for item in obj if isinstance(obj, list) else [obj]:
            try:
                fixes.append(validate_fix(item, topic_vehicle=vehicle, settings=settings, now=NOW,
                                          vehicle_prefixes=prefixes))
            except FixRejected:  # a rejection (the old path then wrote its record)
                pass
        return len(fixes)
    return run


def per_second(fn: Callable[[], Any], n_fixes: int, min_s: float, repeat: int, clock: Callable[[], float]) -> float:
    best = float("inf")
    for _ in range(repeat):
        calls, t0 = 0, clock()
        while True:
            fn()
            calls += 1
            elapsed = clock() - t0
            if elapsed >= min_s:
                break
        best = min(best, elapsed / calls)
    return n_fixes / best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1,100,1000", help="fixes per message, comma-separated")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"payload kinds among {', '.join(KINDS)}")
    ap.add_argument("--min-s", type=float, default=0.3, help="least seconds per timed run")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--wall", action="store_true", help="wall-clock time instead of this process's CPU time")
    args = ap.parse_args(argv)
    settings = load_settings(env={})
    clock = time.perf_counter if args.wall else time.process_time
    old = old_list_path(settings)

    print(f"fixes/s, best of {args.repeat} x >= {args.min_s} s, {'wall-clock' if args.wall else 'CPU'} time")
    print(f"{'kind':6} {'fixes':>6} {'bytes':>8} {'list':>11} {'elements':>11} {'columnar':>11} "
          f"{'x list':>7} {'x elem':>7}")
    for kind in args.kinds.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            topic, raw = payload(kind, n, settings)
            fast = parse_payload_columns(raw, topic=topic, settings=settings, now=NOW)
            slow = parse_payload_slow(raw, topic=topic, settings=settings, now=NOW)
            note = ""
            if fast is None:
                note = "  [columnar path handed this payload to the per-element path]"
            elif fast.fixes.fixes() != slow.fixes.fixes() or fast.rejections != slow.rejections:
                note = "  [ANSWERS DIFFER from the per-element path]"
            rates = [per_second(lambda f=f, raw=raw, topic=topic: f(raw, topic), n, args.min_s, args.repeat, clock) for f in (
                old,
                lambda b, t: parse_payload_slow(b, topic=t, settings=settings, now=NOW),
                lambda b, t: parse_payload(b, topic=t, settings=settings, now=NOW))]
            print(f"{kind:6} {n:6} {len(raw):8} {rates[0]:11,.0f} {rates[1]:11,.0f} {rates[2]:11,.0f} "
                  f"{rates[2] / rates[0]:7.1f} {rates[2] / rates[1]:7.1f}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
