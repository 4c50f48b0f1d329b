"""Fault-test fixtures: brokers of a test's own that it can stop, kill, pause and start again on the same port.

The session brokers (tests/conftest.py) are shared by every test, so a fault
test never stops those; it gets a private mosquitto (``own_mqtt``) or Tansu
(``own_kafka``) on a free port instead. ``fault_settings`` builds settings for
one test's own system against any pair of brokers, like ``make_settings``.
Helpers shared by the tests (gateways, counting, the summary line) are in
``tests/faults/helpers.py``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.brokers.mqtt import mosquitto_binary, start_mosquitto
from engine.brokers.ports import SpawnedBroker, free_port
from engine.settings import Settings
from tests.conftest import isolated_settings, start_test_kafka


class OwnBroker:
    """A broker process this test controls; ``start()`` again reuses its port (and mosquitto its data)."""

    def __init__(self, start: Callable[[], SpawnedBroker]):
        self._start = start
        self.broker = start()
        self.host, self.port = self.broker.host, self.broker.port
        self.paused = False

    @property
    def address(self) -> str:
        return self.broker.address

    @property
    def pid(self) -> int:
        assert self.broker.proc is not None
        return self.broker.proc.pid

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (mosquitto saves its sessions)."""
        self.resume()
        self.broker.stop(timeout=15)

    def kill(self) -> None:
        self.resume()
        assert self.broker.proc is not None
        self.broker.proc.kill()
        self.broker.proc.wait()

    def start(self) -> None:
        self.broker = self._start()

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the process is there (connections stay open) but answers nothing."""
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused:
            os.kill(self.pid, signal.SIGCONT)
            self.paused = False


@pytest.fixture
def own_mqtt(tmp_path: Path) -> Iterator[Callable[..., OwnBroker]]:
    """``own_mqtt(**limits)``: a private mosquitto (persistence on) with optional config limits."""
    if mosquitto_binary() is None:
        pytest.skip("fault tests need mosquitto (amqtt keeps no sessions across a restart)")
    made: list[OwnBroker] = []

    def make(**limits: int) -> OwnBroker:
        port, workdir = free_port(), tmp_path / f"mqtt-{len(made)}"
        b = OwnBroker(lambda: start_mosquitto("127.0.0.1", port, workdir=workdir, **limits))
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[OwnBroker]:
    """A private Kafka broker of the ``TEST_KAFKA`` kind. Tansu's storage is memory only, so outages pause it
    (SIGSTOP) rather than restart it."""
    port, controller_port = free_port(), free_port()
    b = OwnBroker(lambda: start_test_kafka(tmp_path / "kafka", port, controller_port=controller_port))
    yield b
    b.stop()


@pytest.fixture
def fault_settings(tmp_path: Path) -> Callable[..., Settings]:
    """``fault_settings(kafka=broker, mqtt=broker, **sections)``: fresh topics, group, client ids and ports."""

    def make(*, kafka, mqtt, **sections: dict) -> Settings:  # type: ignore[no-untyped-def]
        return isolated_settings(tmp_path, kafka, mqtt, **sections)

    return make

