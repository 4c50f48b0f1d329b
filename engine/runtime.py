"""Process-wide tuning of the long-running Citywatch processes.

CPython's cyclic garbage collector runs a collection every 700 net container
allocations (its default ``gen0`` threshold) and, from time to time, walks
every container object the process holds. A worker holds a state dict per
tracked vehicle and allocates several containers per fix, so at 100,000
vehicles the collector took about half of the zone checker's time
(``benchmarks``: 26,700 fixes/s with the defaults, 54,700 with these
thresholds, the checker alone). Citywatch's per-fix objects form no reference
cycles; reference counting frees them, so collecting less often costs no
memory; the older generations are still collected every 20 and 200 young
collections (1 and 10 million allocations), so the cycles Faust and aiokafka
make do not pile up (with (50,000, 50, 100) the worker's RSS per tracked
vehicle rose by ~20 %). ``gc.freeze()`` moves what start-up built (modules,
zones, the Faust app) out of the collector's sight for good.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000


def tune_gc(gen0: int = GEN0_THRESHOLD) -> None:
    """Freeze what exists now; collect young objects every ``gen0`` allocations instead of 700."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, 20, 10)
