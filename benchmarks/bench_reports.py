"""Citizen reports on the embedded stack: how fast a report gets its request id, and an event its answer.

One worker on Tansu and an MQTT broker (free ports). Measured over HTTP as a
client sees it: ``POST /open311/v2/requests.json`` until the answer with the
``service_request_id`` (report -> Kafka ``reports`` -> duplicate check ->
``tasks.commands`` -> task created -> ``tasks.outcomes`` -> answer), one at a
time and from several clients at once; then ``POST /api/v1/tasks/{id}/events``
(accept) until the answer. Ends with one ``key=value`` line.

    .venv/bin/python benchmarks/bench_reports.py [--reports 300] [--clients 8]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from _stack import Stack, free_port, wait_until

from engine.settings import load_settings

# The worker runs config.yaml's HTTP API keys: act with its admin key, as an operator's tool would (engine.web).
API_KEY = next((k.api_key for k in getattr(load_settings(env={}).web, "api_keys", {}).values() if k.role == "admin"),
               "")


def call(port: int, method: str, path: str, *, form: dict | None = None, body: dict | None = None) -> tuple[int, object]:
    data, headers = None, ({"X-API-Key": API_KEY} if API_KEY else {})
    if form is not None:
        data, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    elif body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def spot(rng: random.Random) -> dict:
    """A point in Siming/Huli, spread so that few reports are duplicates of each other."""
    return {"service_code": rng.choice(["obstruction", "road_damage", "manhole_cover", "streetlight"]),
            "lat": f"{rng.uniform(24.45, 24.53):.6f}", "long": f"{rng.uniform(118.09, 118.17):.6f}",
            "description": "benchmark report"}


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=int, default=300, help="reports posted one at a time")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients in the second phase")
    ap.add_argument("--per-client", type=int, default=40)
    args = ap.parse_args()
    rng = random.Random(1)
    work = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    stack = Stack(work).start_brokers()
    port = free_port()
    try:
        env = stack.env(CITYWATCH_WEB__PORT=str(port), CITYWATCH_WORKER__APP_ID="bench-reports",
                        CITYWATCH_WORKER__DATA_DIR=str(work / "worker"), CITYWATCH_TASKS__SLA_SCALE="1")
        worker = stack.spawn("worker", ["-m", "engine", "worker"], env, metrics_port=port)
        if not wait_until(lambda: worker.alive() and _ready(port), 120):
            raise SystemExit(f"worker not ready; log {worker.log}")
        for _ in range(10):  # warm up
            call(port, "POST", "/open311/v2/requests.json", form=spot(rng))

        one: list[float] = []
        ids: list[str] = []
        for _ in range(args.reports):
            t = time.perf_counter()
            status, body = call(port, "POST", "/open311/v2/requests.json", form=spot(rng))
            one.append(time.perf_counter() - t)
            assert status == 201, (status, body)
            ids.append(body[0]["service_request_id"])  # type: ignore[index]

        many: list[float] = []
        lock = threading.Lock()

        def client(seed: int) -> None:
            r = random.Random(seed)
            for _ in range(args.per_client):
                t = time.perf_counter()
                status, _ = call(port, "POST", "/open311/v2/requests.json", form=spot(r))
                with lock:
                    many.append(time.perf_counter() - t)
                assert status == 201

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(100 + i,)) for i in range(args.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0

        events: list[float] = []
        for sid in dict.fromkeys(ids[:100]):
            status, doc = call(port, "GET", f"/api/v1/tasks/{sid}")
            if status != 200 or doc["state"] != "dispatched":  # type: ignore[index]
                continue
            t = time.perf_counter()
            status, _ = call(port, "POST", f"/api/v1/tasks/{sid}/events",
                             body={"action": "accept", "department": doc["department"]})  # type: ignore[index]
            events.append(time.perf_counter() - t)
            assert status == 200
        m = worker.metrics()
        print(f"sequential reports: {len(one)}, answer p50 {pct(one, 50) * 1000:.0f} ms, p95 {pct(one, 95) * 1000:.0f} "
              f"ms, max {max(one) * 1000:.0f} ms")
        print(f"{args.clients} clients x {args.per_client}: {len(many) / wall:.0f} reports/s, answer p50 "
              f"{pct(many, 50) * 1000:.0f} ms, p95 {pct(many, 95) * 1000:.0f} ms")
        print(f"events (accept): {len(events)}, answer p50 {statistics.median(events) * 1000:.0f} ms, p95 "
              f"{pct(events, 95) * 1000:.0f} ms")
        print(f"report_p50_ms={pct(one, 50) * 1000:.0f} report_p95_ms={pct(one, 95) * 1000:.0f} "
              f"reports_per_s={len(many) / wall:.0f} event_p50_ms={statistics.median(events) * 1000:.0f} "
              f"tasks_new={m.get('citywatch_reports_total', 0):.0f}")
        return 0
    finally:
        stack.stop()


def _ready(port: int) -> bool:
    try:
        return call(port, "GET", "/open311/v2/requests.json")[0] == 200
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
