"""The one-map's push channel with 10,000 moving vehicles: what one browser receives, and what it costs.

A load process produces fixes of ``--vehicles`` vehicles, each reporting every
``--interval`` seconds (staggered, random walks inside the city), to a fresh
``fixes`` topic on an embedded Tansu broker, 500 fixes per record as the
bridge writes them. This process runs the one-map exactly as a worker does -
the group-less follower, the view, the hub ticking every ``--tick-ms`` and
the SSE route on aiohttp behind the same API-key guard - but without the
Faust worker around it, so its CPU is the one-map's alone. The server has one
operator key, made up for the run: the client sends it in a header, the
browser types it into the page's key form. A client process reads the stream as a browser
would and counts events and bytes. Optionally (``--browser``, needs the
Debian chromium + chromium-driver), headless Chromium loads the page from this
server and reports how long drawing 10,000 vehicles takes.

Prints messages/s and bytes/s to one browser, the snapshot size, the server's
CPU per tick and in total, and ends with one ``key=value`` line. Figures are
reported, never asserted; every wait is bounded (about 1 minute per run, 2
with ``--browser``).

    .venv/bin/python benchmarks/bench_push.py
    .venv/bin/python benchmarks/bench_push.py --interval 1 --browser
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiohttp import ClientSession, ClientTimeout, web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.brokers.kafka import start_tansu  # noqa: E402
from engine.brokers.ports import free_port  # noqa: E402
from engine.core.clock import SystemClock  # noqa: E402
from engine.kafka.admin import create_topics  # noqa: E402
from engine.kafka.follow import END, Source, follow  # noqa: E402
from engine.onemap.agents import Feeds, page_config  # noqa: E402
from engine.onemap.api import Handlers, aiohttp_app  # noqa: E402
from engine.onemap.push import Hub  # noqa: E402
from engine.onemap.view import OneMapView  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.web.guard import Guard  # noqa: E402

TOPIC = "fixes"
PARTITIONS = 4
BATCH = 500
CLASSES = ("hazmat", "police", "fire", "ambulance", "taxi", "bus", "ride_hailing", "other")


# ---------------------------------------------------------------- load: vehicles moving, fixes to Kafka
def load(bootstrap: str, vehicles: int, interval: float, seconds: float, ready) -> None:  # type: ignore[no-untyped-def]
    import random

    from aiokafka import AIOKafkaProducer

    rnd = random.Random(8)
    pos = [[rnd.uniform(24.40, 24.85), rnd.uniform(117.95, 118.40)] for _ in range(vehicles)]
    ids = [f"闽D{i:05d}" for i in range(vehicles)]

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=4_000_000)
        await producer.start()
        ready.set()
        start = time.time()
        sent, k = 0, 0
        try:
            while time.time() - start < seconds:
                due = int((time.time() - start) / interval * vehicles)  # fixes owed so far, spread evenly
                batch = []
                while sent < due:
                    v = sent % vehicles
                    p = pos[v]
                    p[0] = min(24.88, max(24.39, p[0] + rnd.uniform(-3e-4, 3e-4)))
                    p[1] = min(118.42, max(117.89, p[1] + rnd.uniform(-3e-4, 3e-4)))
                    batch.append({"vehicle_id": ids[v], "class": CLASSES[v % len(CLASSES)], "ts": time.time(),
                                  "lat": p[0], "lon": p[1], "speed_kmh": 40.0, "heading": 90.0})
                    sent += 1
                    if len(batch) == BATCH:
                        await producer.send(TOPIC, orjson.dumps(batch), partition=k % PARTITIONS)
                        batch, k = [], k + 1
                if batch:
                    await producer.send(TOPIC, orjson.dumps(batch), partition=k % PARTITIONS)
                    k += 1
                await asyncio.sleep(0.05)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(run())


# ---------------------------------------------------------------- client: one browser's stream
def client(url: str, key: str, seconds: float, warmup: float, out) -> None:  # type: ignore[no-untyped-def]
    async def run() -> dict:
        n_events, n_bytes, snapshot_bytes, deltas = 0, 0, 0, []
        async with ClientSession(timeout=ClientTimeout(total=seconds + 60)) as http:
            async with http.get(url, headers={"X-API-Key": key}) as resp:
                resp.raise_for_status()
                start = time.monotonic()
                buf = b""
                while time.monotonic() - start < seconds:
                    chunk = await resp.content.readany()
                    if not chunk:
                        break
                    buf += chunk
                    while b"\n\n" in buf:
                        event, buf = buf.split(b"\n\n", 1)
                        size = len(event) + 2
                        if event.startswith(b"event: snapshot"):
                            snapshot_bytes = size
                        elif event.startswith(b"event: delta") and time.monotonic() - start >= warmup:
                            n_events += 1
                            n_bytes += size
                            deltas.append(size)
        measured = seconds - warmup
        return {"msgs_per_s": n_events / measured, "bytes_per_s": n_bytes / measured, "snapshot_bytes": snapshot_bytes,
                "delta_bytes_mean": statistics.mean(deltas) if deltas else 0.0,
                "delta_bytes_max": max(deltas) if deltas else 0}

    out.put(asyncio.run(run()))


# ---------------------------------------------------------------- server: the one-map as a worker runs it
class TimedHub(Hub):
    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.tick_cpu: list[float] = []

    def tick(self):  # type: ignore[no-untyped-def]
        t = time.process_time()
        msg = super().tick()
        self.tick_cpu.append(time.process_time() - t)
        return msg


def browser_stats(url: str, key: str, seconds: float) -> dict | None:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        print("browser: selenium not installed; skipped")
        return None
    if not Path("/usr/bin/chromium").exists() or not Path("/usr/bin/chromedriver").exists():
        print("browser: no /usr/bin/chromium or /usr/bin/chromedriver; skipped")
        return None
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--window-size=1400,900", f"--user-data-dir={tempfile.mkdtemp(prefix='cw-bench-')}"):
        o.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    try:
        d.get(url)
        time.sleep(1)
        d.find_element("id", "signin-key").send_keys(key + "\n")  # the page's key form
        time.sleep(2)
        d.execute_script("window.onemap.stats.deltas0 = window.onemap.stats.deltas;")
        times = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            times.append(d.execute_script("const t = performance.now(); window.onemap.drawNow();"
                                          "return performance.now() - t;"))
            time.sleep(0.5)
        st = d.execute_script("const s = window.onemap.stats; return {deltas: s.deltas - s.deltas0, "
                              "vehicles: window.onemap.state.vehicles.size, drawn: s.vehiclesDrawn};")
        return {"draw_ms_median": statistics.median(times), "draw_ms_max": max(times), **st,
                "deltas_per_s": st["deltas"] / seconds}
    finally:
        d.quit()


async def serve(args: argparse.Namespace, bootstrap: str) -> dict:
    settings = Settings().replace(onemap={"push_interval_ms": args.tick_ms, "stale_s": 0},
                                  web={"api_keys": {"bench": {"api_key": args.key, "role": "operator"}}})
    view = OneMapView(settings.onemap, clock=SystemClock(), page_config=page_config(settings))
    hub = TimedHub(view)
    feeds = Feeds(view, settings)
    runner = web.AppRunner(aiohttp_app(Handlers(hub), Guard(settings.web)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    tasks = [asyncio.create_task(follow([bootstrap], [Source(TOPIC, END, feeds.fixes)], name="onemap",
                                        max_records=5000, retry_fetch_errors=True)),
             asyncio.create_task(hub.run())]
    ctx = mp.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    loader = ctx.Process(target=load, args=(bootstrap, args.vehicles, args.interval, args.seconds + 30, ready))
    loader.start()
    await asyncio.to_thread(ready.wait, 60)
    await asyncio.sleep(min(args.interval, 5) + 2)  # every vehicle has reported once
    cpu0, wall0, ticks0 = time.process_time(), time.monotonic(), len(hub.tick_cpu)
    reader = ctx.Process(target=client, args=(f"http://127.0.0.1:{port}/api/v1/onemap/stream", args.key,
                                              args.seconds, args.warmup, out))
    reader.start()
    figures = await asyncio.to_thread(out.get, True, args.seconds + 90)
    cpu, wall, ticks = time.process_time() - cpu0, time.monotonic() - wall0, hub.tick_cpu[ticks0:]
    figures.update(vehicles_on_map=view.vehicle_count(), server_cpu_pct=100 * cpu / wall,
                   tick_cpu_ms_mean=1000 * statistics.mean(ticks), tick_cpu_ms_max=1000 * max(ticks))
    if args.browser:
        b = await asyncio.to_thread(browser_stats, f"http://127.0.0.1:{port}/", args.key, 10)
        if b:
            figures.update({f"browser_{k}": v for k, v in b.items()})
    reader.join(10)
    loader.terminate()
    loader.join(10)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await runner.cleanup()
    return figures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vehicles", type=int, default=10_000)
    p.add_argument("--interval", type=float, default=5.0, help="seconds between a vehicle's fixes (default 5)")
    p.add_argument("--tick-ms", type=float, default=500.0)
    p.add_argument("--seconds", type=float, default=20.0, help="measured stream duration (default 20)")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--browser", action="store_true", help="also measure drawing in headless Chromium")
    args = p.parse_args()
    args.key = f"bench-operator-{secrets.token_hex(16)}"  # this run's server knows only this key
    workdir = Path(tempfile.mkdtemp(prefix="cw-bench-push-"))
    kafka = start_tansu("127.0.0.1", free_port(), log_path=workdir / "tansu.log")
    try:
        create_topics(kafka.address, {TOPIC: (PARTITIONS, {})})
        f = asyncio.run(serve(args, kafka.address))
    finally:
        kafka.stop()
    print(f"one-map push: {args.vehicles} vehicles, a fix each every {args.interval:g} s "
          f"({args.vehicles / args.interval:,.0f} fixes/s), tick {args.tick_ms:g} ms, one browser")
    print(f"  to the browser   {f['msgs_per_s']:.2f} messages/s, {f['bytes_per_s'] / 1024:,.1f} KiB/s "
          f"(delta mean {f['delta_bytes_mean'] / 1024:,.1f} KiB, max {f['delta_bytes_max'] / 1024:,.1f} KiB); "
          f"snapshot {f['snapshot_bytes'] / 1024:,.0f} KiB for {f['vehicles_on_map']} vehicles")
    print(f"  server           {f['server_cpu_pct']:.1f} % of one core in total (Kafka follow + decode + ticks); "
          f"per tick {f['tick_cpu_ms_mean']:.2f} ms mean, {f['tick_cpu_ms_max']:.2f} ms max CPU")
    if "browser_draw_ms_median" in f:
        print(f"  headless Chromium draws {f['browser_drawn']} of {f['browser_vehicles']} vehicles in "
              f"{f['browser_draw_ms_median']:.1f} ms (median; max {f['browser_draw_ms_max']:.1f} ms), "
              f"applied {f['browser_deltas_per_s']:.2f} deltas/s")
    keys = ("msgs_per_s", "bytes_per_s", "snapshot_bytes", "delta_bytes_mean", "server_cpu_pct", "tick_cpu_ms_mean",
            "tick_cpu_ms_max", "vehicles_on_map", "browser_draw_ms_median", "browser_draw_ms_max")
    print(" ".join(f"{k}={f[k]:.2f}" if isinstance(f.get(k), float) else f"{k}={f.get(k, 'nan')}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
