"""The embedded MQTT broker: mosquitto with the project's config, else amqtt.

mosquitto (Debian package ``mosquitto``) is preferred: it is several times
faster than the pure-Python amqtt (see BROKER-NOTES.md). Both are spawned as
child processes that die with the parent (see :mod:`engine.brokers.ports`).
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import sys
from pathlib import Path

from engine.brokers.ports import SpawnedBroker, is_listening, spawn_broker
from engine.errors import BrokerStartError

log = logging.getLogger(__name__)

_DEBIAN_MOSQUITTO = "/usr/sbin/mosquitto"
#: Directory holding the ``engine`` package, put on the amqtt child's PYTHONPATH.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def mosquitto_binary() -> str | None:
    """Path of a mosquitto executable (PATH, then Debian's /usr/sbin), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    if os.path.isfile(_DEBIAN_MOSQUITTO) and os.access(_DEBIAN_MOSQUITTO, os.X_OK):
        return _DEBIAN_MOSQUITTO
    return None


def _run_as_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry for this uid
        return "root" if os.geteuid() == 0 else str(os.geteuid())


def write_mosquitto_config(
    path: Path,
    host: str,
    port: int,
    *,
    data_dir: Path,
    max_queued_messages: int = 100000,
    max_inflight_messages: int = 1000,
) -> Path:
    """Write a mosquitto 2.0 config for one loopback listener; returns ``path``.

    Anonymous access for now, persistence in ``data_dir`` (QoS 1 sessions of
    clients with clean_session=False survive a broker restart), logs to
    stdout, queues sized so a slow QoS 1 subscriber is not silently dropped.
    """
    path, data_dir = Path(path), Path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    location = str(data_dir.resolve()).rstrip("/") + "/"
    text = f"""\
# mosquitto config written by engine.brokers.mqtt (Citywatch). Regenerated on every start.

# Run as the user who started us. When started as root, mosquitto otherwise
# switches to the 'mosquitto' user, which can neither write the data dir below
# nor keep the parent-death signal that stops it with its parent.
user {_run_as_user()}

# One listener, on the given address only (loopback for dev and tests).
per_listener_settings false
listener {port} {host}

# No authentication yet; access control comes later.
allow_anonymous true

# Persistence: sessions, subscriptions and queued QoS 1/2 messages of
# clients with clean_session=False are saved here on shutdown (and every
# autosave_interval seconds), so they survive a broker restart.
persistence true
persistence_location {location}
persistence_file mosquitto.db
autosave_interval 60
# Forget persistent sessions of clients gone this long, so stale queues do not grow forever.
persistent_client_expiration 7d

# Queue limits. Past max_queued_messages mosquitto DROPS QoS 1/2 messages for
# a subscriber that falls behind (default 1000, which lost messages under
# load, see BROKER-NOTES.md). Raised well above any expected backlog; the byte
# limit is off so only the message count applies.
max_queued_messages {int(max_queued_messages)}
max_queued_bytes 0
# QoS 1/2 messages in flight (sent, not yet acked) per client. The default 20
# throttles a fast subscriber such as the bridge; paho handles many in flight.
max_inflight_messages {int(max_inflight_messages)}

# Logs to stdout; the launcher redirects them to a file in the workdir.
log_dest stdout
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp true
log_timestamp_format %Y-%m-%dT%H:%M:%S
"""
    path.write_text(text)
    return path


def start_mosquitto(host: str, port: int, *, workdir: Path, timeout: float = 30.0) -> SpawnedBroker:
    """Spawn mosquitto on ``host:port`` with files in ``workdir``.

    Writes ``workdir/mosquitto.conf``, keeps persistence in ``workdir/data``
    and logs to ``workdir/mosquitto.log``. Raises :class:`BrokerStartError`
    if there is no binary, or it exits or does not listen within ``timeout``.
    """
    binary = mosquitto_binary()
    if binary is None:
        raise BrokerStartError("mosquitto: no mosquitto binary on PATH or at /usr/sbin/mosquitto")
    workdir = Path(workdir)
    conf = write_mosquitto_config(workdir / "mosquitto.conf", host, port, data_dir=workdir / "data")
    return spawn_broker("mosquitto", [binary, "-c", str(conf)], host, port,
                        log_path=workdir / "mosquitto.log", timeout=timeout)


def start_amqtt(host: str, port: int, *, workdir: Path, timeout: float = 30.0) -> SpawnedBroker:
    """Spawn ``python -m engine.brokers.amqtt_main`` on ``host:port``; logs to ``workdir/amqtt.log``.

    amqtt keeps sessions in memory only: they do not survive a restart.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_SOURCE_ROOT), env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-m", "engine.brokers.amqtt_main", "--host", host, "--port", str(port)]
    return spawn_broker("amqtt", argv, host, port, log_path=Path(workdir) / "amqtt.log", timeout=timeout, env=env)


def start_mqtt_broker(host: str, port: int, *, workdir: Path, prefer: str = "auto",
                      timeout: float = 30.0) -> SpawnedBroker:
    """Start an MQTT broker: ``prefer`` is ``auto`` (mosquitto if installed, else amqtt),
    ``mosquitto`` or ``amqtt``."""
    if prefer == "auto":
        prefer = "mosquitto" if mosquitto_binary() else "amqtt"
        if prefer == "amqtt":
            log.warning("no mosquitto binary; falling back to the slower amqtt broker")
    if prefer == "mosquitto":
        return start_mosquitto(host, port, workdir=workdir, timeout=timeout)
    if prefer == "amqtt":
        return start_amqtt(host, port, workdir=workdir, timeout=timeout)
    raise BrokerStartError(f"unknown MQTT broker {prefer!r}: expected auto, mosquitto or amqtt")


def ensure_mqtt(host: str, port: int, *, workdir: Path, prefer: str = "auto",
                timeout: float = 30.0) -> SpawnedBroker:
    """Use whatever already listens on ``host:port`` (``proc`` None), else start a broker there."""
    if is_listening(host, port):
        log.info("reusing the MQTT broker already listening on %s:%s", host, port)
        return SpawnedBroker(name="mqtt", host=host, port=port, proc=None, log_path=None)
    return start_mqtt_broker(host, port, workdir=workdir, prefer=prefer, timeout=timeout)
