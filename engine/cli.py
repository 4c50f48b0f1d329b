"""The ``citywatch`` command line: a thin entry that hands settings to each part."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.core.errors import BrokerUnreachable, CitywatchError
from engine.runtime import tune_gc
from engine.settings import CONFIG_ENV, Settings, load_settings, resolve_config_path

log = logging.getLogger("citywatch")

ONE_SHOT_COMMANDS = frozenset({"zones"})  # print a result: they log warnings and errors only unless --log-level


def version() -> str:
    """The installed distribution's version, else the source tree's ``engine.__version__``."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("citywatch")
    except PackageNotFoundError:
        from engine import __version__

        return __version__


def _load(args: argparse.Namespace) -> tuple[Settings, Path]:
    """The settings the command runs with and the file they came from (logged, with why that file)."""
    path, reason = resolve_config_path(args.config, os.environ, Path.cwd())
    settings = load_settings(path)
    if getattr(args, "zones", None):
        settings = settings.replace(zones={"dir": args.zones})
    if args.log_level:
        settings = settings.replace(log={"level": args.log_level})
    args.loaded_settings = settings  # for main's last-resort error mapping
    one_shot = args.command in ONE_SHOT_COMMANDS
    level = settings.log.level.upper() if args.log_level or not one_shot else "WARNING"
    logging.getLogger().setLevel(level)
    if one_shot and level != "DEBUG":  # its connection errors become one clear line (BrokerUnreachable)
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    log.info("settings from %s (%s)", path, reason)
    return settings, path


def _settings(args: argparse.Namespace) -> Settings:
    return _load(args)[0]


def _logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_up(args: argparse.Namespace) -> int:
    from engine.up import run_up

    settings, path = _load(args)  # the children read the same file
    if args.kafka:
        settings = settings.replace(up={"kafka": args.kafka})
    return run_up(settings, config_path=str(path), simulator=not args.no_simulator)


def cmd_worker(args: argparse.Namespace) -> int:
    from faust import Worker

    from engine.app import create_app
    from engine.topology import ensure_all_topics
    from engine.zones_cli import seed_zones_if_empty

    settings = _settings(args)
    ensure_all_topics(settings)
    seed_zones_if_empty(settings)
    app = create_app(settings)
    tune_gc()
    worker = Worker(app, loglevel=settings.log.level, quiet=True, override_logging=False)
    worker.execute_from_commandline()
    return 0


def _run_async(main) -> int:
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
    from engine.topology import topic_specs

    settings = _settings(args)
    bridge = Bridge(settings, topic_specs=topic_specs(settings))
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


def cmd_jt808(args: argparse.Namespace) -> int:
    from engine.jt808.gateway.server import run_gateway
    from engine.topology import topic_specs

    settings = _settings(args)
    if args.open_registration:
        settings = settings.replace(jt808={"open_registration": True})
    tune_gc()
    return run_gateway(settings, topic_specs=topic_specs(settings))


def cmd_simulate_jt808(args: argparse.Namespace) -> int:
    from simulators.jt808 import main as jt808_main

    s = _settings(args).jt808
    host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "") else s.host  # listening everywhere: connect locally
    argv = ["--host", host, "--port", str(s.port), "--terminals", str(args.terminals),
            "--interval-s", str(args.interval_s), "--heartbeat-s", str(s.heartbeat_s),
            "--duration-s", str(args.duration_s), "--sos-terminals", str(args.sos_terminals)]
    argv += ["--sos"] * args.sos + ["--reupload"] * args.reupload
    return int(jt808_main(argv) or 0)


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


def _common_options(*, top: bool) -> argparse.ArgumentParser:
    """``--config`` and ``--log-level``, before or after the subcommand.

    The top parser holds the defaults; a subcommand's copies default to SUPPRESS so that a value
    given before the subcommand is not overwritten by the subcommand's default.
    """
    p = argparse.ArgumentParser(add_help=False)
    default = None if top else argparse.SUPPRESS
    p.add_argument("--config", metavar="FILE", default=default,
                   help=f"settings file (default: ${CONFIG_ENV}, else ./config.yaml, else the packaged defaults)")
    p.add_argument("--log-level", metavar="LEVEL", default=default,
                   help="debug, info, warning or error (overrides log.level; zones commands default to warning)")
    return p


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="citywatch", description="Citywatch telemetry and geofence engine",
                                parents=[_common_options(top=True)])
    p.add_argument("--version", action="version", version=f"citywatch {version()}")
    p.add_argument("--zones", metavar="PATH", default=None, help=argparse.SUPPRESS)  # documented on up/worker
    common = _common_options(top=False)
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, func, help: str, *, zones: bool = False,
            parent: argparse._SubParsersAction | None = None) -> argparse.ArgumentParser:
        sp = (parent or sub).add_parser(name, help=help, parents=[common])
        if zones:
            sp.add_argument("--zones", metavar="PATH", default=argparse.SUPPRESS,
                            help="zone folder or file (overrides zones.dir)")
        sp.set_defaults(func=func, takes_zones=zones)
        return sp

    up = add("up", cmd_up, "run the whole system on embedded defaults", zones=True)
    up.add_argument("--no-simulator", action="store_true", help="do not start the fleet simulator")
    up.add_argument("--kafka", choices=("tansu", "apache"), default=None,
                    help="the Kafka broker to start where none listens (setting up.kafka; default tansu)")
    add("worker", cmd_worker, "run one Faust worker against the configured brokers", zones=True)
    add("bridge", cmd_bridge, "run the MQTT-to-Kafka bridge alone")
    add("simulate", cmd_simulate, "run the fleet simulator against the configured MQTT broker")
    jt = add("jt808", cmd_jt808, "run the JT/T 808 gateway: terminals over TCP in, Kafka fixes out")
    jt.add_argument("--open-registration", action="store_true",
                    help="admit any terminal with a plate, as jt808.default_class (sets jt808.open_registration)")
    sj = add("simulate-jt808", cmd_simulate_jt808, "JT/T 808 terminals (2013 and 2019) against the gateway at "
                                                   "jt808.host:jt808.port; prints a JSON summary")
    sj.add_argument("--terminals", type=int, default=20, help="terminals to simulate (default 20)")
    sj.add_argument("--interval-s", type=float, default=30.0, help="seconds between location reports (default 30)")
    sj.add_argument("--duration-s", type=float, default=0.0, help="stop after this long (default 0: until Ctrl-C)")
    sj.add_argument("--sos", action="store_true", help="terminals press SOS on their 3rd-5th reports")
    sj.add_argument("--sos-terminals", type=int, default=0, help="with --sos: only the first N terminals (0: all)")
    sj.add_argument("--reupload", action="store_true", help="each terminal re-uploads 5 missed fixes once (0x0704)")
    sr = add("simulate-reports", cmd_simulate_reports,
             "citizens reporting hazards and departments answering them (some late) against a running worker")
    sr.add_argument("--url", default=None, help="the worker's web server (default: web.host:web.port)")
    zones = add("zones", cmd_zones, "manage the zones every worker holds (compacted Kafka topic)")
    zsub = zones.add_subparsers(dest="action", required=True)
    zl = add("load", cmd_zones, "validate zone files and publish them; a bad file changes nothing", parent=zsub)
    zl.add_argument("path", help="a zone file or a folder of *.geojson")
    zl.add_argument("--replace", action="store_true", help="also remove zones that are not in PATH")
    zr = add("remove", cmd_zones, "remove zones by id (open incidents close with reason zone_removed)", parent=zsub)
    zr.add_argument("ids", nargs="+")
    zls = add("list", cmd_zones, "show the zones on the topic and whether their schedule is open now", parent=zsub)
    zls.add_argument("--json", action="store_true")
    return p


def _unreachable(exc: BaseException, args: argparse.Namespace) -> BrokerUnreachable | None:
    """A Kafka connection failure that escaped the parts' own handling, as the one clear error."""
    from aiokafka.errors import KafkaConnectionError

    if not isinstance(exc, KafkaConnectionError):
        return None
    settings = getattr(args, "loaded_settings", None)
    return BrokerUnreachable("Kafka", settings.kafka.bootstrap if settings else "?", "kafka.bootstrap")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.zones is not None and not args.takes_zones:
        parser.error(f"--zones applies to `citywatch up` and `citywatch worker`, not `citywatch {args.command}`")
    _logging("info")
    try:
        return int(args.func(args) or 0)
    except CitywatchError as exc:
        print(f"citywatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        unreachable = _unreachable(exc, args)
        if unreachable is None:
            raise
        print(f"citywatch: {unreachable}", file=sys.stderr)
        return 2
