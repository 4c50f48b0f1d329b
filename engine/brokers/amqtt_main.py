"""Run the pure-Python amqtt broker in its own process.

    python -m engine.brokers.amqtt_main --host 127.0.0.1 --port 1883 [--auth FILE]

The fallback MQTT broker where no mosquitto binary is available; spawned and
stopped like mosquitto by :func:`engine.brokers.mqtt.start_amqtt`. Logs go to
stderr. SIGTERM or SIGINT shut it down cleanly (exit code 0); a failure to
start (e.g. the port is taken) exits with code 1. ``--auth`` names the JSON file
written by :func:`engine.brokers.mqtt_access.amqtt_access`: accounts, ACL, TLS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any

log = logging.getLogger("engine.brokers.amqtt_main")


def broker_config(host: str, port: int, auth: dict[str, Any] | None = None) -> dict[str, Any]:
    """amqtt 0.12 broker config: one TCP listener; anonymous clients and no topic checks without ``auth``.

    amqtt 0.12 configures auth and topic checking through ``plugins`` (the old
    ``auth`` / ``topic-check`` sections are deprecated). Without ``auth``:
    ``AnonymousAuthPlugin`` with ``allow_anonymous: true`` and no topic plugin.
    With ``auth`` (``password_file``, ``publish_acl``, ``acl``, optional
    ``certfile``/``keyfile``): ``FileAuthPlugin`` (no anonymous access) and
    ``TopicAccessControlListPlugin``, and TLS on the listener when a certificate is given.
    """
    auth = auth or {}
    listener: dict[str, Any] = {"type": "tcp", "bind": f"{host}:{port}"}
    if auth.get("certfile"):
        listener.update(ssl=True, certfile=auth["certfile"], keyfile=auth["keyfile"])
    if not auth.get("password_file"):
        plugins: dict[str, Any] = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    else:
        plugins = {
            "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": auth["password_file"]},
            "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": {
                "publish_acl": auth.get("publish_acl", {}), "acl": auth.get("acl", {})},
        }
    return {"listeners": {"default": listener}, "plugins": plugins}


async def serve(host: str, port: int, auth: dict[str, Any] | None = None) -> int:
    """Start the broker, run until SIGTERM/SIGINT, shut it down; returns the exit code."""
    from amqtt.broker import Broker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = Broker(broker_config(host, port, auth))
    try:
        await broker.start()
    except Exception as exc:
        log.error("amqtt broker failed to start on %s:%s: %s", host, port, exc)
        return 1
    log.info("amqtt broker listening on %s:%s", host, port)
    await stop.wait()
    log.info("amqtt broker shutting down")
    try:
        await asyncio.wait_for(broker.shutdown(), timeout=10)
    except Exception as exc:  # shut down as far as possible, still exit
        log.warning("amqtt shutdown incomplete: %r", exc)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.brokers.amqtt_main", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--auth", default=None, help="accounts/ACL/TLS JSON (engine.brokers.mqtt_access)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)
    auth = json.loads(open(args.auth, encoding="utf-8").read()) if args.auth else None
    return asyncio.run(serve(args.host, args.port, auth))


if __name__ == "__main__":
    sys.exit(main())
