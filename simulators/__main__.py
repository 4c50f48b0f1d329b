"""``python -m simulators``: run the fleet simulator against an MQTT broker.

Credentials come from ``--username``/``--password`` or the environment
(``CITYWATCH_MQTT__USERNAME``, ``CITYWATCH_MQTT__PASSWORD``); the password is
never logged.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime

from simulators.fleet import Fleet, FleetConfig
from simulators.mqtt_publisher import MqttPublisher

log = logging.getLogger("simulators")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; broker defaults follow ``CITYWATCH_MQTT__HOST``/``__PORT``."""
    env = os.environ
    p = argparse.ArgumentParser(prog="python -m simulators",
                                description="Publish simulated Xiamen vehicle fixes over MQTT.")
    p.add_argument("--mqtt-host", default=env.get("CITYWATCH_MQTT__HOST", "127.0.0.1"))
    p.add_argument("--mqtt-port", type=int, default=int(env.get("CITYWATCH_MQTT__PORT", "1883")))
    p.add_argument("--vehicles", type=int, default=None,
                   help="total vehicles, default mix scaled to it (default: 25)")
    p.add_argument("--speedup", type=float, default=1.0,
                   help="simulated seconds per wall second (default: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many wall seconds (default: run until SIGINT/SIGTERM)")
    p.add_argument("--qos", type=int, choices=(0, 1, 2), default=1)
    p.add_argument("--no-scripted-violation", action="store_true",
                   help="leave out the hazmat truck driving into the Haicang Tunnel")
    p.add_argument("--client-id", default=None)
    p.add_argument("--username", default=env.get("CITYWATCH_MQTT__USERNAME"))
    p.add_argument("--password", default=None, help="prefer CITYWATCH_MQTT__PASSWORD")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if args.vehicles is not None and args.vehicles < 0:
        p.error("--vehicles must be >= 0")
    if args.speedup <= 0:
        p.error("--speedup must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run until ``--duration`` or a signal; exit 1 if any fix was not delivered."""
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = FleetConfig(seed=args.seed, speedup=args.speedup, qos=args.qos,
                         scripted_violation=not args.no_scripted_violation)
    if args.vehicles is not None:
        config = config.with_total(args.vehicles)
    password = args.password or os.environ.get("CITYWATCH_MQTT__PASSWORD")
    publisher = MqttPublisher(args.mqtt_host, args.mqtt_port,
                              args.client_id or f"citywatch-sim-{os.getpid()}",
                              username=args.username, password=password)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    fleet = Fleet(config, clock=lambda: datetime.now(UTC), publish=publisher.publish)
    try:
        fleet.run(stop, duration=args.duration)
    finally:
        publisher.close()
    ok = publisher.failed == 0 and publisher.pending <= 0
    log.info("done: sent %d, refused %d, failed %d", publisher.sent, publisher.refused,
             publisher.failed)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
