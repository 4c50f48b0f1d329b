"""MQTT access control for the broker ``citywatch up`` spawns: accounts, password file, ACL.

Who may do what (topics from settings; ``#`` also matches the level itself):

=====================  =============================================================
account                may
=====================  =============================================================
gateway ``<name>``     publish under its prefix only (``mqtt.auth.gateways.<name>.prefix``,
                       default ``<fixes_topic>/<name>``)
team ``<name>``        subscribe to ``<alerts_topic>/#`` only
``services.bridge``    subscribe to ``<fixes_topic>/#``
``services.worker``    publish ``<alerts_topic>/#``; read citizen reports on
                       ``<reports.mqtt_topic>/#`` and answer on ``.../answers/#``
``services.simulator`` publish ``<fixes_topic>/#`` (any vehicle) and reports
``services.console``   subscribe to ``<alerts_topic>/#`` (``citywatch up``'s alert lines)
=====================  =============================================================

Everything else is denied (mosquitto's ACL file is default-deny): a gateway
cannot publish into another gateway's prefix or into the alerts, a team
cannot read positions. Passwords are stored as mosquitto 2.0 reads them
(``$7$``: PBKDF2-HMAC-SHA512, as ``mosquitto_passwd`` writes), so no
password is ever written in clear or passed on a command line.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from engine.core.errors import ConfigError
from engine.mqtt.settings import MqttConfig
from engine.mqtt.sys_topics import SYS_DROPPED

PBKDF2_ITERATIONS = 1000  # mosquitto_passwd writes 101; mosquitto reads the count from each line


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    rules: tuple[tuple[str, str], ...]  # (read | write | readwrite, topic filter)
    kind: str  # service | gateway | team

    def __repr__(self) -> str:  # the password never appears in a repr
        return f"Account({self.username!r}, {self.kind}, {len(self.rules)} rules)"


@dataclass(frozen=True)
class BrokerAccess:
    """Files and TLS material for a mosquitto listener; all paths absolute."""

    password_file: Path | None = None
    acl_file: Path | None = None
    certfile: str = ""
    keyfile: str = ""


def accounts(settings: MqttConfig) -> list[Account]:
    """Every account of ``mqtt.auth``, with its ACL rules. Raises :class:`ConfigError` on a duplicate username."""
    m = settings.mqtt
    fixes, alerts = m.fixes_topic.rstrip("/"), m.alerts_topic.rstrip("/")
    reports = getattr(getattr(settings, "reports", None), "mqtt_topic", "").rstrip("/")
    svc = m.auth.services
    out = [
        # The bridge also reads the broker's drop counter (engine.telemetry.broker_drops).
        Account(*svc.bridge.login("bridge"), (("read", f"{fixes}/#"), ("read", SYS_DROPPED)), "service"),
        Account(*svc.worker.login("worker"), (("write", f"{alerts}/#"),)
                + ((("read", f"{reports}/#"), ("write", f"{reports}/answers/#")) if reports else ()), "service"),
        Account(*svc.simulator.login("simulator"), (("write", f"{fixes}/#"),)
                + ((("readwrite", f"{reports}/#"),) if reports else ()), "service"),
        Account(*svc.console.login("console"), (("read", f"{alerts}/#"),), "service"),
    ]
    out += [Account(name, gw.password, (("write", f"{m.gateway_prefix(name)}/#"),), "gateway")
            for name, gw in m.auth.gateways.items()]
    out += [Account(name, team.password, (("read", f"{alerts}/#"),), "team") for name, team in m.auth.teams.items()]
    seen: set[str] = set()
    for a in out:
        if not a.username or any(c.isspace() or c in ":#+/" for c in a.username):
            raise ConfigError(f"setting mqtt.auth: username {a.username!r} must be non-empty without spaces, ':', "
                              "'#', '+' or '/'")
        if a.username in seen:
            raise ConfigError(f"setting mqtt.auth: username {a.username!r} is used by two accounts")
        seen.add(a.username)
    return out


def password_line(username: str, password: str, *, salt: bytes | None = None,
                  iterations: int = PBKDF2_ITERATIONS) -> str:
    """One line of a mosquitto 2.0 password file: ``user:$7$<iterations>$<salt b64>$<hash b64>``."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, 64)
    return f"{username}:$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(accounts: list[Account]) -> str:
    lines = ["# mosquitto ACL written by engine.brokers.mqtt_access (Citywatch). Regenerated on every start.",
             "# Default deny: an account may do only what is listed under it."]
    for a in accounts:
        lines += ["", f"# {a.kind}", f"user {a.username}"] + [f"topic {access} {topic}" for access, topic in a.rules]
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)
    return path.resolve()


def _tls_files(settings: MqttConfig) -> tuple[str, str]:
    """The broker's certificate and key as absolute paths (``("", "")`` without TLS)."""
    m = settings.mqtt
    if not m.tls_cert_file:
        return "", ""
    files = str(Path(m.tls_cert_file).resolve()), str(Path(m.tls_key_file).resolve())
    for what, path in zip(("tls_cert_file", "tls_key_file"), files):
        if not Path(path).is_file():
            raise ConfigError(f"setting mqtt.{what}: {path} is not a readable file")
    return files


def broker_access(settings: MqttConfig, workdir: Path) -> BrokerAccess:
    """Write ``workdir/passwd`` and ``workdir/acl`` when ``mqtt.auth.enabled``; TLS files from settings."""
    m = settings.mqtt
    tls = _tls_files(settings)
    if not m.auth.enabled:
        return BrokerAccess(certfile=tls[0], keyfile=tls[1])
    accts = accounts(settings)
    workdir = Path(workdir)
    pw = _write_private(workdir / "passwd", "".join(password_line(a.username, a.password) + "\n" for a in accts))
    acl = _write_private(workdir / "acl", acl_text(accts))
    return BrokerAccess(password_file=pw, acl_file=acl, certfile=tls[0], keyfile=tls[1])


def amqtt_access(settings: MqttConfig, workdir: Path) -> Path | None:
    """The same accounts and ACL for the amqtt fallback: ``workdir/amqtt-auth.json`` (None when auth is off
    and there is no TLS).

    amqtt's ``FileAuthPlugin`` reads Argon2 hashes (``pwdlib``, an amqtt dependency); its
    ``TopicAccessControlListPlugin`` checks publishes and subscriptions per username, where
    ``a/#`` does not cover ``a`` itself, so both are listed.
    """
    import json

    m = settings.mqtt
    doc: dict[str, object] = {}
    tls = _tls_files(settings)
    if tls[0]:
        doc.update(certfile=tls[0], keyfile=tls[1])
    if m.auth.enabled:
        from pwdlib import PasswordHash
        from pwdlib.hashers.argon2 import Argon2Hasher

        hasher = PasswordHash((Argon2Hasher(),))
        accts = accounts(settings)
        pw = _write_private(Path(workdir) / "amqtt-passwd",
                            "".join(f"{a.username}:{hasher.hash(a.password)}\n" for a in accts))
        publish: dict[str, list[str]] = {}
        subscribe: dict[str, list[str]] = {}
        for a in accts:
            for rule, topic in a.rules:
                topics = [topic, topic[:-2]] if topic.endswith("/#") else [topic]
                if rule in ("write", "readwrite"):
                    publish.setdefault(a.username, []).extend(topics)
                if rule in ("read", "readwrite"):
                    subscribe.setdefault(a.username, []).extend(topics)
        doc.update(password_file=str(pw), publish_acl=publish, acl=subscribe)
    if not doc:
        return None
    return _write_private(Path(workdir) / "amqtt-auth.json", json.dumps(doc, indent=1))
