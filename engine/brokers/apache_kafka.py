"""Apache Kafka on loopback: a pinned 4.x broker in KRaft mode, fetched with Maven.

The jars come from Maven Central through ``apache/pom.xml`` (nothing is built:
``mvn dependency:build-classpath`` resolves them into the local Maven
repository, ``~/.m2``, and writes their classpath, which is cached under
``$XDG_CACHE_HOME/citywatch``, by default ``~/.cache/citywatch``). Each node
is one JVM acting as broker and controller (``process.roles=broker,controller``)
with a small heap; its storage is formatted once per log directory, so a node
killed and started again keeps its logs like a real one.

:func:`start_apache_kafka` starts one node for ``citywatch up --kafka apache``
and the tests; :func:`apache_cluster` starts several that form one cluster
(static controller quorum, every internal topic replicated), for the fault
tests of a replicated cluster.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.brokers.kafka_ready import wait_kafka_ready
from engine.brokers.ports import SpawnedBroker, await_broker, free_port, launch_broker
from engine.core.errors import BrokerStartError

log = logging.getLogger(__name__)

CONTROLLER_PORT_ATTEMPTS = 3

KAFKA_VERSION = "4.1.1"        # as in apache/pom.xml
MIN_JAVA = 17                  # the Kafka 4 broker's floor
HEAP = ("-Xms128m", "-Xmx512m")
_HERE = Path(__file__).with_name("apache")
POM = _HERE / "pom.xml"
LOG4J = _HERE / "log4j2.properties"


def cache_dir() -> Path:
    """Where the resolved classpath of this Kafka version is kept."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "citywatch" / f"apache-kafka-{KAFKA_VERSION}"


def java_binary() -> str | None:
    """The ``java`` of ``JAVA_HOME``, else the one on ``PATH``; None if there is none."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def java_major(java: str) -> int | None:
    """The major version ``java -version`` reports (17 for "17.0.15", 8 for "1.8.0"), None if unreadable."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _cached_classpath() -> str | None:
    path = cache_dir() / "classpath.txt"
    try:
        cp = path.read_text().strip()
    except OSError:
        return None
    jars = cp.split(os.pathsep)
    return cp if jars and all(Path(j).is_file() for j in jars) else None


def unavailable_reason() -> str | None:
    """Why Apache Kafka cannot start here (no Java 17+, neither Maven nor a cached classpath), or None."""
    java = java_binary()
    if java is None:
        return "no java on PATH or in JAVA_HOME (Apache Kafka needs Java 17 or newer)"
    major = java_major(java)
    if major is None or major < MIN_JAVA:
        return f"{java} is Java {major or '?'}; Apache Kafka {KAFKA_VERSION} needs Java {MIN_JAVA} or newer"
    if _cached_classpath() is None and shutil.which("mvn") is None:
        return "no mvn on PATH to fetch the Apache Kafka jars from Maven Central (and none cached)"
    return None


def classpath() -> str:
    """The broker's classpath, resolved with Maven on first use and cached."""
    cached = _cached_classpath()
    if cached:
        return cached
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerStartError("apache-kafka: no mvn on PATH to fetch the Kafka jars from Maven Central")
    out_file = cache_dir() / "classpath.txt"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_suffix(".tmp")
    log.info("fetching Apache Kafka %s with Maven (once; cached in ~/.m2)", KAFKA_VERSION)
    argv = [mvn, "-q", "-B", "-f", str(POM), "dependency:build-classpath", f"-Dmdep.outputFile={tmp}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BrokerStartError(f"apache-kafka: running Maven failed: {exc}") from exc
    if done.returncode != 0 or not tmp.is_file():
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise BrokerStartError(f"apache-kafka: Maven could not resolve Kafka {KAFKA_VERSION} "
                               f"(exit {done.returncode}):\n{tail}")
    tmp.replace(out_file)
    return out_file.read_text().strip()


@dataclass(frozen=True)
class Node:
    """One combined broker+controller: its id, client and controller ports, and log directory."""

    node_id: int
    host: str
    port: int
    controller_port: int
    log_dir: Path

    @property
    def voter(self) -> str:
        return f"{self.node_id}@{self.host}:{self.controller_port}"


def server_properties(node: Node, voters: Sequence[Node]) -> str:
    """``server.properties`` of ``node`` in a cluster of ``voters`` (all nodes are controllers)."""
    n = len(voters)
    replicas, min_isr = min(3, n), min(2, n)
    props = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": ",".join(v.voter for v in voters),
        "listeners": f"PLAINTEXT://{node.host}:{node.port},CONTROLLER://{node.host}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{node.host}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": node.log_dir,
        "num.partitions": 1,
        "offsets.topic.num.partitions": 4,           # the default 50 makes the first group join slow
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": 0,        # a dev broker: no 3 s wait for more members
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _java_argv(cp: str, main: str, *args: str) -> list[str]:
    java = java_binary()
    if java is None:
        raise BrokerStartError("apache-kafka: no java on PATH or in JAVA_HOME (Kafka needs Java 17 or newer)")
    return [java, *HEAP, "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}", "-cp", cp, main, *args]


def cluster_id() -> str:
    """A new KRaft cluster id (16 random bytes, URL-safe base64 without padding, as Kafka prints them)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def _prepare(node: Node, voters: Sequence[Node], cid: str, cp: str) -> Path:
    """Write the node's properties and format its storage unless it already is; returns the properties."""
    node.log_dir.mkdir(parents=True, exist_ok=True)
    props = node.log_dir.parent / f"server-{node.node_id}.properties"
    props.write_text(server_properties(node, voters))
    if (node.log_dir / "meta.properties").is_file():
        return props
    argv = _java_argv(cp, "kafka.tools.StorageTool", "format", f"--cluster-id={cid}", f"--config={props}",
                      "--ignore-formatted")  # "=": a cluster id may begin with "-"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise BrokerStartError(f"apache-kafka: formatting {node.log_dir} failed (exit {done.returncode}):\n{tail}")
    return props


def _launch(node: Node, props: Path, cp: str, log_path: Path) -> SpawnedBroker:
    return launch_broker(f"apache-kafka-{node.node_id}", _java_argv(cp, "kafka.Kafka", str(props)),
                         node.host, node.port, log_path=log_path)


def start_apache_kafka(host: str, port: int, workdir: Path, *, log_path: Path | None = None,
                       controller_port: int | None = None, timeout: float = 90.0) -> SpawnedBroker:
    """Start a one-node Apache Kafka on ``host:port`` (logs under ``workdir``) and wait until it serves."""
    workdir = Path(workdir)
    cp = classpath()
    for attempt in range(CONTROLLER_PORT_ATTEMPTS):
        node = Node(1, host, port, controller_port or free_port(host), workdir / "node-1")
        props = _prepare(node, [node], cluster_id(), cp)
        broker = _launch(node, props, cp, Path(log_path or workdir / "apache-kafka.log"))
        try:
            return _await(broker, time.monotonic() + timeout)
        except BrokerStartError as exc:
            # The controller port was free when picked, but another process may bind it in the seconds a JVM
            # takes to start: pick another one (the broker's own port is the caller's to choose).
            taken = "Address already in use" in str(exc) and "CONTROLLER" in str(exc)
            if controller_port is not None or not taken or attempt == CONTROLLER_PORT_ATTEMPTS - 1:
                raise
            log.warning("apache-kafka: controller port %d was taken meanwhile; starting again on another",
                        node.controller_port)
            broker.stop()
            shutil.rmtree(node.log_dir, ignore_errors=True)
    raise AssertionError("unreachable")


def first_error(log_path: Path | None) -> str | None:
    """The first ERROR line of a Kafka log and the ``Caused by`` under it (a tail shows only the shutdown)."""
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines() if log_path else []
    except OSError:
        return None
    for i, line in enumerate(lines):
        if " ERROR " in line:
            cause = next((c.strip() for c in lines[i + 1:i + 40] if c.startswith("Caused by:")), "")
            return f"{line.strip()} {cause}".strip()
    return None


def _await(broker: SpawnedBroker, deadline: float) -> SpawnedBroker:
    try:
        return await_broker(broker, deadline, wait_kafka_ready)
    except BrokerStartError as exc:
        error = first_error(broker.log_path)
        if error:
            raise BrokerStartError(f"{exc}\nfirst error in the log: {error}") from exc
        raise


class Cluster:
    """Nodes of one Apache Kafka cluster on this machine, each its own JVM; ``kill``/``start`` one at a time."""

    def __init__(self, nodes: Sequence[Node], cp: str, cid: str, logs: Path):
        self.nodes = list(nodes)
        self._cp, self._cid, self._logs = cp, cid, logs
        self.procs: dict[int, SpawnedBroker] = {}

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{n.host}:{n.port}" for n in self.nodes)

    def node(self, node_id: int) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    def _launch(self, node: Node) -> SpawnedBroker:
        props = _prepare(node, self.nodes, self._cid, self._cp)
        broker = _launch(node, props, self._cp, self._logs / f"node-{node.node_id}.log")
        self.procs[node.node_id] = broker
        return broker

    def start_all(self, timeout: float = 120.0) -> None:
        """Launch every node at once (a quorum needs a majority up), then wait for each."""
        deadline = time.monotonic() + timeout
        launched = [self._launch(n) for n in self.nodes]
        for broker in launched:
            _await(broker, deadline)

    def start(self, node_id: int, timeout: float = 120.0) -> None:
        """Start one node again (same ports and log directory)."""
        _await(self._launch(self.node(node_id)), time.monotonic() + timeout)

    def kill(self, node_id: int) -> None:
        """SIGKILL one node, as a power cut would."""
        broker = self.procs.pop(node_id)
        if broker.proc is not None and broker.proc.poll() is None:
            log.info("killing apache-kafka-%s (pid %s)", node_id, broker.proc.pid)
            broker.proc.send_signal(signal.SIGKILL)
            broker.proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every node together (each waits for the others' quorum), SIGKILL stragglers."""
        live = [b for b in self.procs.values() if b.proc is not None and b.proc.poll() is None]
        for b in live:
            b.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        for b in live:
            try:
                b.proc.wait(timeout=max(0.1, deadline - time.monotonic()))  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                b.proc.kill()  # type: ignore[union-attr]
                b.proc.wait()  # type: ignore[union-attr]
        self.procs.clear()


@contextmanager
def apache_cluster(workdir: Path, size: int = 3, host: str = "127.0.0.1") -> Iterator[Cluster]:
    """``size`` Apache Kafka nodes on free loopback ports forming one cluster; stopped on exit."""
    workdir = Path(workdir)
    nodes = [Node(i, host, free_port(host), free_port(host), workdir / f"node-{i}") for i in range(1, size + 1)]
    cluster = Cluster(nodes, classpath(), cluster_id(), workdir)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.stop()
