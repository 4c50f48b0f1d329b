"""End-to-end throughput: MQTT publish -> bridge -> Kafka -> one worker's zone checks.

Starts its own Tansu and MQTT broker on free loopback ports, one bridge and one
worker (real processes), publishes ``--fixes`` fixes from ``--vehicles``
vehicles at QoS 1 (``--per-message`` fixes per MQTT message), and reports how
fast the bridge produced them and the worker checked them. Bounded: gives up
after ``--timeout`` seconds.

    .venv/bin/python benchmarks/bench_end_to_end.py --fixes 20000 --per-message 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.brokers.kafka import start_tansu  # noqa: E402
from engine.brokers.mqtt import start_mqtt_broker  # noqa: E402
from engine.brokers.ports import free_port  # noqa: E402


def metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return -1.0
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name)


def wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixes", type=int, default=20000)
    ap.add_argument("--vehicles", type=int, default=500)
    ap.add_argument("--per-message", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    kafka = start_tansu("127.0.0.1", free_port(), log_path=work / "tansu.log")
    broker = start_mqtt_broker("127.0.0.1", free_port(), workdir=work / "mqtt")
    web, bridge_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), CITYWATCH_KAFKA__BOOTSTRAP=kafka.address,
               CITYWATCH_MQTT__PORT=str(broker.port), CITYWATCH_WEB__PORT=str(web),
               CITYWATCH_BRIDGE__METRICS_PORT=str(bridge_port), CITYWATCH_WORKER__DATA_DIR=str(work / "worker"),
               CITYWATCH_ZONES__DIR=str(ROOT / "zones"), CITYWATCH_LOG__LEVEL=os.environ.get("BENCH_LOG_LEVEL", "warning"))
    procs = [subprocess.Popen([sys.executable, "-m", "engine", cmd], env=env, cwd=ROOT,
                              stdout=open(work / f"{cmd}.log", "wb"), stderr=subprocess.STDOUT)
             for cmd in ("worker", "bridge")]
    try:
        if not wait(lambda: metric(bridge_port, "citywatch_bridge_mqtt_connected") == 1, 60):
            print("bridge did not subscribe; logs in", work)
            return 1
        if not wait(lambda: metric(web, "citywatch_zones_loaded") > 0, 60):
            print("worker did not start; logs in", work)
            return 1
        time.sleep(3)  # let the worker finish joining its group
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-gateway")
        client.max_inflight_messages_set(1000)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        t0 = time.time() - 3600
        # Vehicles on a grid over Haicang / the island, one fix per vehicle every 5 s of event time.
        fixes = [{"vehicle_id": f"闽DB{i % args.vehicles:05d}", "class": "hazmat" if i % 5 == 0 else "taxi",
                  "ts": t0 + 5 * (i // args.vehicles), "lat": 24.44 + (i % args.vehicles) * 0.0002,
                  "lon": 118.03 + (i // args.vehicles) * 0.0005 % 0.15} for i in range(args.fixes)]
        start = time.monotonic()
        infos = []
        for j in range(0, len(fixes), args.per_message):
            chunk = fixes[j:j + args.per_message]
            payload = orjson.dumps(chunk[0] if args.per_message == 1 else chunk)
            topic = f"citywatch/fixes/{chunk[0]['vehicle_id']}" if args.per_message == 1 else "citywatch/fixes"
            while True:
                info = client.publish(topic, payload, qos=1)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    infos.append(info)
                    break
                time.sleep(0.01)
        for info in infos:
            info.wait_for_publish(60)
        published = time.monotonic() - start
        ok_bridge = wait(lambda: metric(bridge_port, "citywatch_bridge_fixes_produced_total") >= args.fixes,
                         args.timeout)
        bridged = time.monotonic() - start
        ok = wait(lambda: metric(web, "citywatch_fixes_received_total") >= args.fixes, args.timeout)
        checked = time.monotonic() - start
        rejected = metric(web, "citywatch_fixes_rejected_total")
        n = args.fixes
        print(f"fixes {n}, vehicles {args.vehicles}, fixes per MQTT message {args.per_message}, "
              f"MQTT broker {broker.name}")
        print(f"  published (QoS 1 acked) {published:7.2f} s  {n / published:9.0f} fixes/s")
        print(f"  bridged to Kafka        {bridged:7.2f} s  {n / bridged:9.0f} fixes/s{'' if ok_bridge else '  INCOMPLETE'}")
        print(f"  processed by worker     {checked:7.2f} s  {n / checked:9.0f} fixes/s{'' if ok else '  INCOMPLETE'}"
              f"  (zone checks {metric(web, 'citywatch_zone_checks_total'):.0f}, rejected {rejected:.0f})")
        print(f"  worker / bridge ratio   {bridged / checked:.2f}")
        client.disconnect()
        client.loop_stop()
        return 0 if ok and ok_bridge else 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
        kafka.stop()


if __name__ == "__main__":
    raise SystemExit(main())
