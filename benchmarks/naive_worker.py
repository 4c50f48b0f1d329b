"""The naive per-fix baseline, deliberately simple: what a first Faust geofence app looks like.

Two processes, configured like Citywatch's through ``CITYWATCH_*`` variables
(``KAFKA__BOOTSTRAP``, ``MQTT__HOST``/``MQTT__PORT``, ``ZONES__DIR``,
``WEB__PORT`` / ``BRIDGE__METRICS_PORT`` for /metrics, ``KAFKA__PARTITIONS``,
``KAFKA__TOPICS__FIXES``/``__ALERTS``, ``WORKER__APP_ID``, ``WORKER__DATA_DIR``):

``bridge``
    MQTT ``citywatch/fixes/#`` and ``citywatch/fixes`` (QoS 1) -> one Kafka
    message per fix, keyed by vehicle (an array is split into its fixes).
``worker [--lookup loop|strtree]``
    A per-event Faust agent: ``json`` decode, a shapely ``Point``, then
    ``zone.contains(point)`` for every zone (``loop``, the default) or a
    per-fix ``STRtree.query`` (``strtree``: the same per-fix structure with
    an index, a harder baseline); one alert message per zone entry or exit
    and one ``table[vehicle] = ...`` write (a changelog message) per fix.

It serves the same metric names as Citywatch (``citywatch_fixes_received_total``,
``citywatch_zone_checks_total``, ``citywatch_alerts_total``,
``citywatch_zones_loaded``; the bridge ``citywatch_bridge_*``) so the
benchmark reads both alike. It runs on the same broker tuning as Citywatch
(short group timeouts and the Tansu fetch-wait correction): the comparison is
about per-fix work, not broker settings. Geometry is tested in WGS-84 degrees.

    .venv/bin/python benchmarks/naive_worker.py worker --lookup loop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import faust
import paho.mqtt.client as mqtt
import shapely
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from shapely.geometry import Point, shape

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.kafka.admin import create_topics  # noqa: E402
from engine.kafka.tansu import TansuTransport  # noqa: E402

M_PER_DEG = 111_000.0


def env(key: str, default: str) -> str:
    return os.environ.get(f"CITYWATCH_{key}", default)


def settings() -> dict:
    return {
        "bootstrap": env("KAFKA__BOOTSTRAP", "127.0.0.1:9092"),
        "partitions": int(env("KAFKA__PARTITIONS", "4")),
        "fixes": env("KAFKA__TOPICS__FIXES", "fixes"),
        "alerts": env("KAFKA__TOPICS__ALERTS", "alerts"),
        "mqtt_host": env("MQTT__HOST", "127.0.0.1"),
        "mqtt_port": int(env("MQTT__PORT", "1883")),
        "zones_dir": env("ZONES__DIR", str(ROOT / "zones")),
        "web_port": int(env("WEB__PORT", "6066")),
        "bridge_port": int(env("BRIDGE__METRICS_PORT", "6067")),
        "app_id": env("WORKER__APP_ID", "naive"),
        "data_dir": env("WORKER__DATA_DIR", "var/naive"),
    }


def load_zones(folder: str) -> list[tuple[str, shapely.Geometry]]:
    """(id, lon/lat shape) of every feature in ``folder/*.geojson``; circles and corridors buffered in degrees."""
    zones = []
    for f in sorted(Path(folder).glob("*.geojson")):
        for feat in json.loads(f.read_text(encoding="utf-8"))["features"]:
            props, geom = feat["properties"], shape(feat["geometry"])
            if props.get("radius_m"):
                geom = geom.buffer(props["radius_m"] / M_PER_DEG)
            elif props.get("width_m"):
                geom = geom.buffer(props["width_m"] / 2 / M_PER_DEG)
            zones.append((props["id"], geom))
    return zones


def ensure_topics(s: dict) -> None:
    create_topics(s["bootstrap"], {s["fixes"]: (s["partitions"], {}), s["alerts"]: (s["partitions"], {})})


# -- worker ---------------------------------------------------------------------------------

class NaiveApp(faust.App):
    def _new_transport(self):  # type: ignore[no-untyped-def]
        return TansuTransport(self.conf.broker_consumer, self)


def make_app(s: dict, lookup: str) -> faust.App:
    app = NaiveApp(s["app_id"], broker=f"kafka://{s['bootstrap']}", store="memory://", datadir=s["data_dir"],
                   autodiscover=False, web_enabled=False, topic_partitions=s["partitions"],
                   topic_replication_factor=1, consumer_auto_offset_reset="earliest",
                   broker_session_timeout=3.0, broker_heartbeat_interval=0.5, broker_commit_interval=0.2,
                   producer_linger=0.005, stream_wait_empty=False)
    registry = CollectorRegistry()
    received = Counter("citywatch_fixes_received_total", "fixes received", ["source"], registry=registry)
    checks = Counter("citywatch_zone_checks_total", "fixes checked", registry=registry)
    alerts_total = Counter("citywatch_alerts_total", "alerts", ["kind", "severity"], registry=registry)
    loaded = Gauge("citywatch_zones_loaded", "zones", registry=registry)
    zones = load_zones(s["zones_dir"])
    ids = [zid for zid, _ in zones]
    tree = shapely.STRtree([g for _, g in zones])
    fixes = app.topic(s["fixes"], key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    alerts = app.topic(s["alerts"], key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    tracks = app.Table("naive_tracks", default=None, partitions=s["partitions"])

    @app.agent(fixes, name="naive_check_zones")
    async def check_zones(stream):
        async for event in stream.events():
            fix = json.loads(event.value)
            received.labels("mqtt").inc()
            pt = Point(fix["lon"], fix["lat"])
            if lookup == "loop":
                inside = [zid for zid, zone in zones if zone.contains(pt)]
            else:
                inside = [ids[i] for i in tree.query(pt, predicate="within")]
            checks.inc()
            vid = fix["vehicle_id"]
            prev = tracks.get(vid)
            before = set(prev["zones"]) if prev else set()
            for kind, zids in (("zone.exit", sorted(before - set(inside))), ("zone.enter", inside)):
                for zid in zids:
                    if kind == "zone.enter" and zid in before:
                        continue
                    alert = {"kind": kind, "vehicle_id": vid, "zone_id": zid, "ts": fix["ts"]}
                    await alerts.send(key=vid.encode(), value=json.dumps(alert).encode())
                    alerts_total.labels(kind, "critical").inc()
            tracks[vid] = {"ts": fix["ts"], "lat": fix["lat"], "lon": fix["lon"], "zones": inside}

    @app.task
    async def serve_metrics() -> None:
        start_http_server(s["web_port"], addr="127.0.0.1", registry=registry)
        loaded.set(len(zones))

    return app


def run_worker(lookup: str) -> int:
    from faust import Worker

    s = settings()
    ensure_topics(s)
    app = make_app(s, lookup)
    Worker(app, loglevel="warning", quiet=True, override_logging=False).execute_from_commandline()
    return 0


# -- bridge ---------------------------------------------------------------------------------

async def bridge_main(s: dict) -> None:
    registry = CollectorRegistry()
    messages = Counter("citywatch_bridge_messages_total", "MQTT messages", registry=registry)
    produced = Counter("citywatch_bridge_fixes_produced_total", "fixes produced", registry=registry)
    connected = Gauge("citywatch_bridge_mqtt_connected", "subscribed", registry=registry)
    start_http_server(s["bridge_port"], addr="127.0.0.1", registry=registry)
    await asyncio.to_thread(ensure_topics, s)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    producer = AIOKafkaProducer(bootstrap_servers=s["bootstrap"], acks="all", linger_ms=5)
    await producer.start()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"naive-bridge-{os.getpid()}",
                         protocol=mqtt.MQTTv311, clean_session=True)
    client.max_inflight_messages_set(1000)
    client.on_connect = lambda c, u, f, rc, p=None: c.subscribe([("citywatch/fixes/#", 1), ("citywatch/fixes", 1)])
    client.on_subscribe = lambda c, u, mid, rcs, p=None: connected.set(1)
    client.on_message = lambda c, u, msg: loop.call_soon_threadsafe(queue.put_nowait, msg.payload)
    client.connect(s["mqtt_host"], s["mqtt_port"], keepalive=30)
    client.loop_start()

    async def pump() -> None:
        while True:
            payload = await queue.get()
            messages.inc()
            try:
                obj = json.loads(payload)
            except ValueError:
                continue
            for fix in obj if isinstance(obj, list) else [obj]:
                await producer.send(s["fixes"], json.dumps(fix).encode(), key=str(fix["vehicle_id"]).encode())
                produced.inc()

    task = asyncio.create_task(pump())
    try:
        await stop.wait()
    finally:
        task.cancel()
        client.disconnect()
        client.loop_stop()
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--lookup", choices=("loop", "strtree"), default="loop")
    sub.add_parser("bridge")
    args = ap.parse_args(argv)
    if args.cmd == "worker":
        return run_worker(args.lookup)
    asyncio.run(bridge_main(settings()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
