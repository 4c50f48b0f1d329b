"""The embedded MQTT broker: mosquitto with the project's config, else amqtt.

mosquitto (Debian package ``mosquitto``) is preferred: it is several times
faster than the pure-Python amqtt. Both are spawned as
child processes that die with the parent (see :mod:`engine.brokers.ports`).
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import sys
from pathlib import Path

from engine.brokers.mqtt_access import BrokerAccess, amqtt_access, broker_access
from engine.brokers.ports import SpawnedBroker, is_listening, require_embedded, spawn_broker
from engine.core.errors import BrokerStartError
from engine.mqtt.settings import MqttConfig

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
    max_queued_messages: int = 1_000_000,
    max_inflight_messages: int = 1000,
    sys_interval: int = 10,
    access: BrokerAccess | None = None,
) -> Path:
    """Write a mosquitto 2.0 config for one loopback listener; returns ``path``.

    ``access`` (:func:`engine.brokers.mqtt_access.broker_access`): password file and ACL (no
    anonymous access) and/or TLS on the listener; without it, anonymous access.

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
{_access_lines(access)}
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
# load in our runs) - and still acknowledges them to the publisher,
# so a gateway cannot know (mosquitto issue #3687). The bridge's session queue
# is where fixes wait while Kafka is down, so this is the outage the system
# rides out: 1,000,000 messages is ~50 min of a 10,000-vehicle fleet at one
# fix per 30 s, ~500 MB (measured ~500 B of broker memory per queued
# 170-byte fix). Drops are counted in $SYS (below), which the bridge shows as
# citywatch_bridge_broker_dropped_messages_total. The byte limit is off so only the
# message count applies. A mosquitto crash (not a restart) loses what was
# queued since its last autosave.
max_queued_messages {int(max_queued_messages)}
max_queued_bytes 0
# QoS 1/2 messages in flight (sent, not yet acked) per client. The default 20
# throttles a fast subscriber such as the bridge. Measured with mosquitto
# 2.0.11: once acknowledgements flow it does not hold a subscriber to this
# (1000 in flight with every PUBACK 200 ms late still gave 48,000 messages/s,
# where the limit would allow 5,000), so it does not bound the bridge's rate;
# the bridge bounds what it holds itself (bridge.max_in_flight) by not
# reading further, and what it has not read waits in the socket buffers.
max_inflight_messages {int(max_inflight_messages)}

# $SYS statistics (e.g. $SYS/broker/publish/messages/dropped) every this many seconds.
sys_interval {int(sys_interval)}

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


def _access_lines(access: BrokerAccess | None) -> str:
    lines = []
    if access is not None and access.certfile:
        lines += ["# TLS on this listener (mqtt.tls_cert_file / tls_key_file).",
                  f"certfile {access.certfile}", f"keyfile {access.keyfile}", ""]
    if access is not None and access.password_file is not None:
        lines += ["# Accounts and ACL from mqtt.auth (engine.brokers.mqtt_access): no anonymous access,",
                  "# every account may use only the topics listed for it.",
                  "allow_anonymous false", f"password_file {access.password_file}", f"acl_file {access.acl_file}"]
    else:
        lines += ["# No access control (mqtt.auth.enabled false, or a test's broker): anyone may connect.",
                  "allow_anonymous true"]
    return "\n".join(lines) + "\n"


def start_mosquitto(host: str, port: int, *, workdir: Path, timeout: float = 30.0,
                    access: BrokerAccess | None = None, **config: int) -> SpawnedBroker:
    """Spawn mosquitto on ``host:port`` with files in ``workdir``.

    Writes ``workdir/mosquitto.conf`` (``config``: the limits of
    :func:`write_mosquitto_config`), keeps persistence in ``workdir/data``
    and logs to ``workdir/mosquitto.log``. Raises :class:`BrokerStartError`
    if there is no binary, or it exits or does not listen within ``timeout``.
    Started again with the same ``workdir``, it restores the persistent
    sessions (and their queued messages) saved when it was stopped.
    """
    binary = mosquitto_binary()
    if binary is None:
        raise BrokerStartError("mosquitto: no mosquitto binary on PATH or at /usr/sbin/mosquitto")
    workdir = Path(workdir)
    conf = write_mosquitto_config(workdir / "mosquitto.conf", host, port, data_dir=workdir / "data", access=access,
                                  **config)
    return spawn_broker("mosquitto", [binary, "-c", str(conf)], host, port,
                        log_path=workdir / "mosquitto.log", timeout=timeout)


def start_amqtt(host: str, port: int, *, workdir: Path, timeout: float = 30.0,
                auth_file: Path | None = None) -> SpawnedBroker:
    """Spawn ``python -m engine.brokers.amqtt_main`` on ``host:port``; logs to ``workdir/amqtt.log``.

    amqtt keeps sessions in memory only: they do not survive a restart. ``auth_file``: the
    accounts and ACL written by :func:`engine.brokers.mqtt_access.amqtt_access`.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_SOURCE_ROOT), env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-m", "engine.brokers.amqtt_main", "--host", host, "--port", str(port)]
    if auth_file is not None:
        argv += ["--auth", str(auth_file)]
    return spawn_broker("amqtt", argv, host, port, log_path=Path(workdir) / "amqtt.log", timeout=timeout, env=env)


def start_mqtt_broker(host: str, port: int, *, workdir: Path, prefer: str = "auto",
                      timeout: float = 30.0, settings: MqttConfig | None = None) -> SpawnedBroker:
    """Start an MQTT broker: ``prefer`` is ``auto`` (mosquitto if installed, else amqtt),
    ``mosquitto`` or ``amqtt``. With ``settings``, access control and TLS come from ``mqtt.auth``
    and ``mqtt.tls_*`` (:mod:`engine.brokers.mqtt_access`); without, anonymous access."""
    if prefer == "auto":
        prefer = "mosquitto" if mosquitto_binary() else "amqtt"
        if prefer == "amqtt":
            log.warning("no mosquitto binary; falling back to the slower amqtt broker")
    if prefer == "mosquitto":
        access = broker_access(settings, Path(workdir)) if settings is not None else None
        return start_mosquitto(host, port, workdir=workdir, timeout=timeout, access=access)
    if prefer == "amqtt":
        require_embedded("amqtt", "amqtt", "MQTT broker amqtt")
        auth = amqtt_access(settings, Path(workdir)) if settings is not None else None
        return start_amqtt(host, port, workdir=workdir, timeout=timeout, auth_file=auth)
    raise BrokerStartError(f"unknown MQTT broker {prefer!r}: expected auto, mosquitto or amqtt")


def ensure_mqtt(host: str, port: int, *, workdir: Path, prefer: str = "auto",
                timeout: float = 30.0, settings: MqttConfig | None = None) -> SpawnedBroker:
    """Use whatever already listens on ``host:port`` (``proc`` None), else start a broker there."""
    if is_listening(host, port):
        log.info("reusing the MQTT broker already listening on %s:%s", host, port)
        return SpawnedBroker(name="mqtt", host=host, port=port, proc=None, log_path=None)
    return start_mqtt_broker(host, port, workdir=workdir, prefer=prefer, timeout=timeout, settings=settings)
