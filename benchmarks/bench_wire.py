"""The ``fixes`` record formats side by side: bytes per fix, encode and decode fixes/s, for 1 / 100 / 1000 fixes.

- ``cwf``: :mod:`engine.telemetry.wire` (the format the bridge writes): columns -> bytes -> columns.
- ``msgpack``: msgspec MessagePack of the same columns (the three column blocks as ``bin``, the ids and
  tables as msgpack strings), decoded with ``np.frombuffer`` and the same value checks, so what differs
  is the framing and the strings (both check the same values both ways); skipped when msgspec is not installed.
- ``json``: the JSON array of fix objects the bridge wrote before (``Fix.to_json``), from and to
  :class:`Fix` objects as the old bridge and worker did; ``json->cols`` is the same bytes read by
  ``wire.decode`` (the mixed-version path).
- ``cwf->Fix``: ``decode_fixes`` on a binary record (readers off the hot path, e.g. the one-map).

Figures are wall-clock, best of ``--repeat`` runs of at least ``--min-s`` each, in this one process
(run it on an idle machine; the box these were chosen on has 2 cores). Nothing is asserted.

    .venv/bin/python benchmarks/bench_wire.py
    .venv/bin/python benchmarks/bench_wire.py --sizes 1,10,100,1000,5000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.telemetry import wire  # noqa: E402
from engine.telemetry.columns import FLAG_FIELDS, FLOAT_FIELDS, FixColumns, from_fixes  # noqa: E402
from engine.telemetry.models import CLASSES, Fix  # noqa: E402
from engine.telemetry.wire import decode_fixes  # noqa: E402

try:
    import msgspec
except ImportError:  # only this comparison needs it
    msgspec = None

SMALL = ("valid", "class_code", "source_code")


def workload(n: int) -> list[Fix]:
    """What the bridge produces: Xiamen plates, the usual fields set, a few classes, one source."""
    t0 = 1_788_832_800.0
    return [Fix(f"闽D{i % 100_000:05d}", t0 + i * 0.5, 24.45 + (i % 997) * 1e-4, 118.08 + (i % 991) * 1e-4,
                CLASSES[i % len(CLASSES)], speed_kmh=float(i % 80), heading=float(i % 360), accuracy_m=5.0,
                alarm_flags=0, received_at=t0 + i * 0.5 + 0.3, source="mqtt") for i in range(n)]


def msgpack_codec() -> tuple[Callable[[FixColumns], bytes], Callable[[bytes], FixColumns]] | None:
    """msgspec MessagePack: the ids and tables as msgpack strings, the same three column blocks as ``bin``."""
    if msgspec is None:
        return None
    enc, dec = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder()

    def encode(cols: FixColumns) -> bytes:
        n = len(cols)
        floats = wire._block(cols, FLOAT_FIELDS, np.dtype("<f8"), n)
        flags = wire._block(cols, FLAG_FIELDS, np.dtype("<i8"), n)
        small = wire._block(cols, SMALL, np.dtype("u1"), n)
        wire._check_values(floats, flags, small, len(cols.classes), len(cols.sources))
        return enc.encode({"v": 1, "ids": cols.vehicle_id, "classes": cols.classes, "sources": cols.sources,
                           "f8": floats.tobytes(), "i8": flags.tobytes(), "u1": small.tobytes()})

    def decode(value: bytes) -> FixColumns:
        d = dec.decode(value)
        n = len(d["ids"])
        floats = np.frombuffer(d["f8"], "<f8", 7 * n).reshape(7, n).copy()
        flags = np.frombuffer(d["i8"], "<i8", 2 * n).reshape(2, n).copy()
        small = np.frombuffer(d["u1"], "u1", 3 * n).reshape(3, n).copy()
        wire._check_values(floats, flags, small, len(d["classes"]), len(d["sources"]))
        return FixColumns(d["ids"], *floats, *flags, small[0].view(np.int8), small[1], small[2],
                          classes=tuple(d["classes"]), sources=tuple(d["sources"]))

    return encode, decode


def old_json_decode(value: bytes) -> list[Fix]:
    """The worker's decode before the binary format: JSON -> checked dicts -> Fix objects."""
    items = orjson.loads(value)
    items = items if isinstance(items, list) else [items]
    for i, o in enumerate(items):
        wire._check_record(o, i)
    return [Fix.from_obj(o) for o in items]


def rate(fn: Callable[[], object], n: int, min_s: float, repeat: int) -> float:
    """Fixes per second of ``fn`` (which handles ``n`` fixes), best of ``repeat``."""
    loops = 1
    while True:  # calibrate: enough loops for min_s
        t = time.perf_counter()
        for _ in range(loops):
            fn()
        dt = time.perf_counter() - t
        if dt >= min_s:
            break
        loops = max(loops * 2, int(loops * min_s / max(dt, 1e-9)) + 1)
    best = dt / loops
    for _ in range(repeat - 1):
        t = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - t) / loops)
    return n / best


Row = tuple[str, int, float | None, float]  # format, record bytes, encode fixes/s (None: not measured), decode


def measure(n: int, min_s: float, repeat: int) -> list[Row]:
    """Every format on one record of ``n`` workload fixes."""
    def r(fn: Callable[[], object]) -> float:
        return rate(fn, n, min_s, repeat)

    fixes = workload(n)
    cols = from_fixes(fixes)
    cwf = wire.encode(cols)
    js = b"[" + b",".join(f.to_json() for f in fixes) + b"]"
    assert wire.decode(cwf).fixes() == fixes == old_json_decode(js)
    rows: list[Row] = [("cwf", len(cwf), r(lambda: wire.encode(cols)), r(lambda: wire.decode(cwf)))]
    codec = msgpack_codec()
    if codec is not None:
        enc, dec = codec
        mp = enc(cols)
        assert dec(mp).fixes() == fixes
        rows.append(("msgpack", len(mp), r(lambda: enc(cols)), r(lambda: dec(mp))))
    rows.append(("json", len(js), r(lambda: b"[" + b",".join(f.to_json() for f in fixes) + b"]"),
                 r(lambda: old_json_decode(js))))
    rows.append(("json->cols", len(js), None, r(lambda: wire.decode(js))))
    rows.append(("cwf->Fix", len(cwf), None, r(lambda: decode_fixes(cwf))))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,100,1000", help="fixes per record, comma-separated")
    ap.add_argument("--min-s", type=float, default=0.2, help="seconds per measurement")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"numpy {np.__version__}, msgspec {getattr(msgspec, '__version__', 'not installed')}; "
          f"fixes/s, best of {a.repeat}")
    print(f"{'format':<10} {'fixes':>6} {'bytes/fix':>10} {'encode/s':>12} {'decode/s':>12}")
    fig: dict[str, float] = {}
    for n in (int(x) for x in a.sizes.split(",")):
        for name, size, enc_rate, dec_rate in measure(n, a.min_s, a.repeat):
            enc_s = f"{enc_rate:>12,.0f}" if enc_rate is not None else f"{'':>12}"
            print(f"{name:<10} {n:>6} {size / n:>10.1f} {enc_s} {dec_rate:>12,.0f}", flush=True)
            key = name.replace("->", "_to_")
            fig[f"{key}_bytes_per_fix_{n}"] = size / n
            fig[f"{key}_decode_per_s_{n}"] = dec_rate
            if enc_rate is not None:
                fig[f"{key}_encode_per_s_{n}"] = enc_rate
    print(" ".join(f"{k}={v:.1f}" if v < 1000 else f"{k}={v:.0f}" for k, v in fig.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
