"""The ``citywatch`` command line: a thin entry that hands settings to each part."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from engine.errors import CitywatchError
from engine.runtime import tune_gc
from engine.settings import Settings, load_settings

log = logging.getLogger("citywatch")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    if getattr(args, "zones", None):
        settings = settings.replace(zones={"dir": args.zones})
    if args.log_level:
        settings = settings.replace(log={"level": args.log_level})
    logging.getLogger().setLevel(settings.log.level.upper())
    return settings


def _logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_up(args: argparse.Namespace) -> int:
    from engine.up import run_up

    return run_up(_settings(args), config_path=args.config, simulator=not args.no_simulator)


def cmd_worker(args: argparse.Namespace) -> int:
    from faust import Worker

    from engine.app import create_app
    from engine.kafka.topics import ensure_topics
    from engine.zones_cli import seed_zones_if_empty

    settings = _settings(args)
    ensure_topics(settings)
    seed_zones_if_empty(settings)
    app = create_app(settings)
    tune_gc()
    worker = Worker(app, loglevel=settings.log.level, quiet=True, override_logging=False)
    worker.execute_from_commandline()
    return 0


def _run_async(main) -> int:  # type: ignore[no-untyped-def]
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())
    return 0


def cmd_bridge(args: argparse.Namespace) -> int:
    from engine.telemetry.bridge import Bridge

    bridge = Bridge(_settings(args))
    tune_gc()
    return _run_async(bridge.run)


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulators.__main__ import main as sim_main

    s = _settings(args).replace()
    argv = ["--mqtt-host", s.mqtt.host, "--mqtt-port", str(s.mqtt.port), "--vehicles", str(s.simulator.vehicles),
            "--speedup", str(s.simulator.speedup), "--seed", str(s.simulator.seed)]
    if not s.simulator.scripted_violation:
        argv.append("--no-scripted-violation")
    return int(sim_main(argv) or 0)


def cmd_simulate_reports(args: argparse.Namespace) -> int:
    from simulators.reports import main as reports_main

    return reports_main([*(["--url", args.url] if args.url else [])], settings=_settings(args))


def cmd_zones(args: argparse.Namespace) -> int:
    from engine import zones_cli

    settings = _settings(args)
    if args.action == "load":
        loaded, removed = zones_cli.load_zones(settings, args.path, replace=args.replace)
        print(f"loaded {loaded} zones from {args.path}" + (f", removed {removed}" if args.replace else "")
              + f" (topic {settings.kafka.topics.zones}); workers apply them within seconds")
        return 0
    if args.action == "remove":
        missing = zones_cli.remove_zones(settings, args.ids)
        for zid in missing:
            print(f"citywatch: no zone {zid!r} on topic {settings.kafka.topics.zones}", file=sys.stderr)
        print(f"removed {len(args.ids) - len(missing)} zones")
        return 1 if missing else 0
    zones_cli.list_zones(settings, as_json=args.json)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="citywatch", description="Citywatch telemetry and geofence engine")
    p.add_argument("--log-level", default=None, help="overrides log.level")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, func, help: str) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
        sp = sub.add_parser(name, help=help)
        sp.add_argument("--config", default=None, help="settings file (default: config.yaml)")
        sp.add_argument("--zones", default=None, help="zone folder or file (overrides zones.dir)")
        sp.set_defaults(func=func)
        return sp

    up = add("up", cmd_up, "run the whole system on embedded defaults")
    up.add_argument("--no-simulator", action="store_true", help="do not start the fleet simulator")
    add("worker", cmd_worker, "run one Faust worker against the configured brokers")
    add("bridge", cmd_bridge, "run the MQTT-to-Kafka bridge alone")
    add("simulate", cmd_simulate, "run the fleet simulator against the configured MQTT broker")
    sr = add("simulate-reports", cmd_simulate_reports,
             "citizens reporting hazards and departments answering them (some late) against a running worker")
    sr.add_argument("--url", default=None, help="the worker's web server (default: web.host:web.port)")
    zones = add("zones", cmd_zones, "manage the zones every worker holds (compacted Kafka topic)")
    zsub = zones.add_subparsers(dest="action", required=True)
    zl = zsub.add_parser("load", help="validate zone files and publish them; a bad file changes nothing")
    zl.add_argument("path", help="a zone file or a folder of *.geojson")
    zl.add_argument("--replace", action="store_true", help="also remove zones that are not in PATH")
    zr = zsub.add_parser("remove", help="remove zones by id (open incidents close with reason zone_removed)")
    zr.add_argument("ids", nargs="+")
    zls = zsub.add_parser("list", help="show the zones on the topic and whether their schedule is open now")
    zls.add_argument("--json", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _logging("info")
    try:
        return int(args.func(args) or 0)
    except CitywatchError as exc:
        print(f"citywatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
