"""Micro-benchmark of the zone index: microseconds per fix, and ratios to baselines.

Random zones scattered over Xiamen (24.38-24.90 N, 117.88-118.43 E), in two
shapes: ``simple`` (star polygons of 8-24 vertices, circles, corridors) and
``500`` (polygons of 500 vertices each, e.g. surveyed boundaries; any other
vertex count can be given), and random fixes, each with a previous fix up to
~500 m away (30 s at 60 km/h). For each zone count and shape it times

- ``ZoneIndex.project``, ``point_hits`` and ``segment_hits`` on all fixes;
- per-fix loop (baseline): one shapely Point / LineString per fix and a
  scalar ``STRtree.query(..., predicate="intersects")``;
- rtree: ``rtree.Index.intersection_v`` for bounding-box candidates, then
  the same vectorised shapely test on the candidate pairs as ``ZoneIndex``.

It checks that all three give the same pairs. Usage::

    .venv/bin/python benchmarks/bench_zone_index.py [--quick] [--fixes N] [--zones 100,1000,20000] [--shapes simple,500]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import rtree
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.geofence.index import ZoneIndex  # noqa: E402
from engine.geofence.zone_models import parse_feature_collection  # noqa: E402

LON0, LON1, LAT0, LAT1 = 117.88, 118.43, 24.38, 24.90
M_PER_DEG = 111_000.0


def setup(n_zones: int, n_fixes: int, seed: int, shape: str = "simple"
          ) -> tuple[ZoneIndex, dict[str, np.ndarray], float]:
    """Random zones through the real loader, the index, and random fixes (projected)."""
    rng = np.random.default_rng(seed)
    if shape == "simple":
        features = [_random_feature(rng, i) for i in range(n_zones)]
    else:
        features = [_many_vertex_polygon(rng, i, int(shape)) for i in range(n_zones)]
    start = time.perf_counter()
    zones = parse_feature_collection({"type": "FeatureCollection", "features": features}, source="bench")
    index = ZoneIndex(zones)
    build_s = time.perf_counter() - start
    lon, lat = rng.uniform(LON0, LON1, n_fixes), rng.uniform(LAT0, LAT1, n_fixes)
    step, heading = rng.uniform(0, 500, n_fixes), rng.uniform(0, 2 * np.pi, n_fixes)
    x1, y1 = index.project(lon, lat)
    fixes = {
        "lon": lon,
        "lat": lat,
        "x1": x1,
        "y1": y1,
        "x0": x1 - step * np.sin(heading),
        "y0": y1 - step * np.cos(heading),
    }
    return index, fixes, build_s


def _random_feature(rng: np.random.Generator, i: int) -> dict:
    lon, lat = rng.uniform(LON0, LON1), rng.uniform(LAT0, LAT1)
    kind = rng.choice(["polygon", "circle", "corridor"], p=[0.6, 0.2, 0.2])
    props = {"id": f"z{i}", "rule": "forbid"}
    if kind == "circle":
        props["radius_m"] = float(rng.uniform(50, 500))
        geometry = {"type": "Point", "coordinates": [lon, lat]}
    elif kind == "corridor":
        props["width_m"] = float(rng.uniform(10, 60))
        steps = rng.normal(0, 800 / M_PER_DEG, (int(rng.integers(1, 5)), 2))
        coords = np.vstack([[lon, lat], [lon, lat] + np.cumsum(steps, axis=0)])
        geometry = {"type": "LineString", "coordinates": coords.tolist()}
    else:
        n = int(rng.integers(8, 25))
        angles = 2 * np.pi * (np.arange(n) + rng.uniform(0, 0.9, n)) / n
        radii = rng.uniform(50, 600, n) / M_PER_DEG
        ring = np.column_stack([lon + radii * np.cos(angles), lat + radii * np.sin(angles)])
        geometry = {"type": "Polygon", "coordinates": [np.vstack([ring, ring[:1]]).tolist()]}
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _many_vertex_polygon(rng: np.random.Generator, i: int, n: int) -> dict:
    """A star-shaped polygon of ``n`` vertices (a wavy outline, 50-600 m across), rule ``forbid``."""
    lon, lat = rng.uniform(LON0, LON1), rng.uniform(LAT0, LAT1)
    angles = 2 * np.pi * np.arange(n) / n
    base = rng.uniform(50, 600)
    radii = base * (1 + 0.25 * np.sin(rng.integers(3, 9) * angles + rng.uniform(0, 2 * np.pi))
                    + 0.05 * rng.uniform(-1, 1, n)) / M_PER_DEG
    ring = np.column_stack([lon + radii * np.cos(angles), lat + radii * np.sin(angles)])
    return {"type": "Feature", "properties": {"id": f"z{i}", "rule": "forbid"},
            "geometry": {"type": "Polygon", "coordinates": [np.vstack([ring, ring[:1]]).tolist()]}}


def best_of(repeats: int, fn, *args):
    """(seconds of the fastest run, result of the last run)."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def per_fix_points(tree: shapely.STRtree, x: np.ndarray, y: np.ndarray) -> set:
    return {(i, int(j)) for i in range(len(x)) for j in tree.query(shapely.Point(x[i], y[i]), predicate="intersects")}


def per_fix_segments(tree: shapely.STRtree, x0, y0, x1, y1) -> set:
    return {
        (i, int(j))
        for i in range(len(x0))
        for j in tree.query(shapely.LineString([(x0[i], y0[i]), (x1[i], y1[i])]), predicate="intersects")
    }


def rtree_index(areas: np.ndarray) -> rtree.index.Index:
    bounds = shapely.bounds(areas)
    if not len(bounds):
        return rtree.index.Index(interleaved=True)  # bulk loading refuses an empty stream
    return rtree.index.Index(((i, tuple(b), None) for i, b in enumerate(bounds)), interleaved=True)


def by_zone(fix: np.ndarray, zone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs grouped by zone, as ZoneIndex does before its shapely test."""
    order = np.argsort(zone, kind="stable")
    return fix[order], zone[order]


def rtree_candidates(idx: rtree.index.Index, mins: np.ndarray, maxs: np.ndarray):
    zone, counts = idx.intersection_v(mins, maxs)
    return by_zone(np.repeat(np.arange(len(mins)), counts.astype(np.intp)), zone)


def rtree_points(idx: rtree.index.Index, areas: np.ndarray, x, y) -> tuple[np.ndarray, np.ndarray]:
    xy = np.column_stack([x, y])
    fix, zone = rtree_candidates(idx, xy, xy)
    hit = shapely.intersects_xy(areas[zone], x[fix], y[fix])
    return fix[hit], zone[hit]


def rtree_segments(idx: rtree.index.Index, areas: np.ndarray, x0, y0, x1, y1) -> tuple[np.ndarray, np.ndarray]:
    mins = np.column_stack([np.minimum(x0, x1), np.minimum(y0, y1)])
    maxs = np.column_stack([np.maximum(x0, x1), np.maximum(y0, y1)])
    fix, zone = rtree_candidates(idx, mins, maxs)
    lines = shapely.linestrings(np.stack([x0, y0, x1, y1], axis=1).reshape(-1, 2, 2))
    hit = shapely.intersects(areas[zone], lines[fix])
    return fix[hit], zone[hit]


def strtree_candidates(tree: shapely.STRtree, x, y) -> np.ndarray:
    return tree.query(shapely.points(x, y))


def as_set(fix: np.ndarray, zone: np.ndarray, limit: int | None = None) -> set:
    keep = fix < limit if limit is not None else slice(None)
    return set(zip(fix[keep].tolist(), zone[keep].tolist(), strict=True))


def run(n_zones: int, n_fixes: int, n_loop: int, repeats: int, seed: int, shape: str = "simple") -> dict:
    """Time one zone count and shape; print a table and return the figures (us per fix)."""
    index, f, build_s = setup(n_zones, n_fixes, seed, shape)
    us = 1e6 / n_fixes
    t_proj, _ = best_of(repeats, index.project, f["lon"], f["lat"])
    t_pt, pt = best_of(repeats, index.point_hits, f["x1"], f["y1"])
    t_seg, seg = best_of(repeats, index.segment_hits, f["x0"], f["y0"], f["x1"], f["y1"])

    start = time.perf_counter()
    idx = rtree_index(index.areas)
    rtree_build_s = time.perf_counter() - start
    t_rpt, rpt = best_of(repeats, rtree_points, idx, index.areas, f["x1"], f["y1"])
    t_rseg, rseg = best_of(repeats, rtree_segments, idx, index.areas, f["x0"], f["y0"], f["x1"], f["y1"])

    tree, n = shapely.STRtree(index.areas), min(n_loop, n_fixes)
    xy = np.column_stack([f["x1"], f["y1"]])
    t_cand, _ = best_of(repeats, strtree_candidates, tree, f["x1"], f["y1"])
    t_rcand, _ = best_of(repeats, idx.intersection_v, xy, xy)
    t_lpt, lpt = best_of(1, per_fix_points, tree, f["x1"][:n], f["y1"][:n])
    t_lseg, lseg = best_of(1, per_fix_segments, tree, f["x0"][:n], f["y0"][:n], f["x1"][:n], f["y1"][:n])

    agree = (
        as_set(*pt) == as_set(*rpt)
        and as_set(*seg) == as_set(*rseg)
        and as_set(*pt, limit=n) == lpt
        and as_set(*seg, limit=n) == lseg
    )
    label = "simple shapes" if shape == "simple" else f"{shape}-vertex polygons"
    print(
        f"\n{n_zones} zones, {label}: load+build {build_s:.2f} s (rtree build {rtree_build_s:.2f} s); "
        f"{len(pt[0]) / n_fixes:.3f} point hits/fix, {len(seg[0]) / n_fixes:.3f} segment hits/fix; "
        f"results agree: {'yes' if agree else 'NO'}"
    )
    print(f"  {'us/fix':<12}{'ZoneIndex':>10}{'per-fix loop':>14}{'ratio':>8}{'rtree':>9}{'ratio':>8}")
    print(f"  {'project':<12}{t_proj * us:>10.3f}")
    print(f"  {'candidates':<12}{t_cand * us:>10.3f}{'':>22}{t_rcand * us:>9.3f}{t_rcand / t_cand:>7.1f}x")
    for name, t, t_loop, t_rtree in (("point", t_pt, t_lpt, t_rpt), ("segment", t_seg, t_lseg, t_rseg)):
        loop_us = t_loop * 1e6 / n
        print(
            f"  {name:<12}{t * us:>10.3f}{loop_us:>14.3f}{loop_us / (t * us):>7.1f}x"
            f"{t_rtree * us:>9.3f}{t_rtree / t:>7.1f}x"
        )
    if not agree:
        print("  RESULTS DISAGREE: the index, a baseline or this benchmark is wrong; figures are not comparable")
    return {
        "zones": n_zones, "shape": shape, "agree": agree, "build_s": build_s,
        "point_us": t_pt * us, "segment_us": t_seg * us,
        "loop_point_us": t_lpt * 1e6 / n, "loop_segment_us": t_lseg * 1e6 / n,
        "rtree_point_us": t_rpt * us, "rtree_segment_us": t_rseg * us,
    }


def summary(results: list[dict]) -> dict[str, float]:
    """Figures for the one-line summary: the largest zone count of each shape."""
    out: dict[str, float] = {}
    for shape in dict.fromkeys(r["shape"] for r in results):
        r = max((r for r in results if r["shape"] == shape), key=lambda r: r["zones"])
        tag = f"z{r['zones']}_{'simple' if shape == 'simple' else f'v{shape}'}"
        out[f"index_point_us_{tag}"] = r["point_us"]
        out[f"index_segment_us_{tag}"] = r["segment_us"]
        out[f"index_vs_loop_{tag}"] = r["loop_point_us"] / r["point_us"]
        out[f"index_vs_rtree_{tag}"] = r["rtree_point_us"] / r["point_us"]
    out["index_agree"] = float(all(r["agree"] for r in results))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small counts (100 and 1,000 zones, 20,000 fixes)")
    parser.add_argument("--fixes", type=int, help="fixes per vectorised run (default 100,000; quick 20,000)")
    parser.add_argument("--zones", help="comma-separated zone counts (default 100,1000,20000; quick 100,1000)")
    parser.add_argument("--shapes", default="simple,500",
                        help="comma-separated: simple (mixed 8-24-vertex polygons, circles, corridors) and/or "
                             "a vertex count for polygons of that many vertices")
    parser.add_argument("--loop-fixes", type=int, help="fixes for the per-fix loop baseline (default 10,000)")
    parser.add_argument("--repeats", type=int, help="vectorised runs per figure, best kept (default 3)")
    parser.add_argument("--seed", type=int, default=1)


def suite(args: argparse.Namespace) -> list[dict]:
    quick = getattr(args, "quick", False)
    fixes = args.fixes or (20_000 if quick else 100_000)
    loop = args.loop_fixes or (2_000 if quick else 10_000)
    repeats = args.repeats or (2 if quick else 3)
    zones = [int(z) for z in (args.zones or ("100,1000" if quick else "100,1000,20000")).split(",")]
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    if fixes < 1 or loop < 1 or any(s != "simple" and not s.isdigit() for s in shapes):
        raise SystemExit("--fixes and --loop-fixes must be positive; --shapes is simple and/or vertex counts")
    print(
        f"shapely {shapely.__version__} (GEOS {shapely.geos_version_string}), rtree {rtree.__version__}, "
        f"numpy {np.__version__}; {fixes} fixes, per-fix loop on {min(loop, fixes)}"
    )
    print(
        "candidates = bounding boxes only (STRtree.query incl. shapely.points vs rtree.intersection_v);\n"
        "ratio = baseline time / ZoneIndex time"
    )
    return [run(n, fixes, loop, repeats, args.seed, shape) for shape in shapes for n in zones]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    results = suite(parser.parse_args())
    print(" ".join(f"{k}={v:.4g}" for k, v in summary(results).items()))


if __name__ == "__main__":
    main()
