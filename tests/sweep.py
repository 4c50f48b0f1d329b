"""The privacy sweep: gather everything a run emitted, then look for secrets and raw ID numbers in it.

Used by the vetting integration test and the access/secret scan (tests/access): add every output
(HTTP bodies, MQTT payloads, Kafka topics, /metrics, logs, files a run wrote), then
:meth:`Sweep.assert_clean` with what must not appear. A failure names the secret's label and where it
was found, never the secret itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from pathlib import Path


def id_variants(id_number: str) -> list[str]:
    """Forms of a raw ID number that must never be written: as given, lower-case, its first 17 digits."""
    return sorted({id_number, id_number.lower(), id_number[:17]})


class Sweep:
    def __init__(self) -> None:
        self.outputs: list[tuple[str, str]] = []

    def add(self, where: str, text: str | bytes | None) -> None:
        if text is None:
            return
        self.outputs.append((where, text.decode("utf-8", "replace") if isinstance(text, bytes) else text))

    def add_many(self, where: str, texts: Iterable[str | bytes]) -> None:
        for i, t in enumerate(texts):
            self.add(f"{where}[{i}]", t)

    def add_topics(self, bootstrap: str, topics: Iterable[str], timeout: float = 30) -> int:
        """Every record (key and value) of each topic, from the start to its end; returns how many."""
        records = read_to_end(bootstrap, list(topics), timeout)
        for name, i, k, v in records:
            self.add(f"kafka {name}[{i}]", (k or b"") + b" " + (v or b""))
        return len(records)

    def add_all_topics(self, bootstrap: str, timeout: float = 30) -> list[str]:
        """Every topic the broker has (its own run's broker: other tests' topics would be swept too)."""
        names = sorted(all_topics(bootstrap))
        self.add_topics(bootstrap, names, timeout)
        return names

    def add_files(self, root: Path) -> int:
        """Every file under ``root`` (logs, generated configs); returns how many."""
        files = [p for p in sorted(Path(root).rglob("*")) if p.is_file()]
        for p in files:
            self.add(f"file {p}", p.read_bytes())
        return len(files)

    def leaks(self, secrets: Mapping[str, str]) -> list[str]:
        """``"<label> in <where>"`` for every secret found (labels only: the report must not leak either)."""
        found = []
        for label, secret in secrets.items():
            assert len(secret) >= 8, f"secret {label} is too short to sweep for meaningfully"
            found += [f"{label} in {where}" for where, text in self.outputs if secret in text]
        return found

    def assert_clean(self, secrets: Mapping[str, str]) -> None:
        assert self.outputs, "nothing was collected to sweep"
        leaks = self.leaks(secrets)
        assert not leaks, "secret or raw ID number written: " + "; ".join(leaks[:20])


def all_topics(bootstrap: str) -> set[str]:
    from aiokafka import AIOKafkaConsumer

    async def run() -> set[str]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        try:
            return set(await consumer.topics())
        finally:
            await consumer.stop()

    return asyncio.run(run())


def read_to_end(bootstrap: str, topics: list[str], timeout: float) -> list[tuple[str, int, bytes | None, bytes | None]]:
    """``(topic, index, key, value)`` of every record of ``topics``, up to the end offsets seen at the start."""
    from aiokafka import AIOKafkaConsumer

    from engine.kafka.metadata import partitions_of

    async def run() -> list[tuple[str, int, bytes | None, bytes | None]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        out: list[tuple[str, int, bytes | None, bytes | None]] = []
        try:
            tps = [tp for t in topics for tp in await partitions_of(consumer, t)]
            if not tps:
                return out
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            counts = dict.fromkeys(topics, 0)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps)):
                    break
                for tp, recs in (await consumer.getmany(timeout_ms=500)).items():
                    for r in recs:
                        out.append((tp.topic, counts[tp.topic], r.key, r.value))
                        counts[tp.topic] += 1
            else:
                raise AssertionError(f"could not read {topics} to their end within {timeout} s")
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())

