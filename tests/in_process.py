"""For tests that run agents in-process under Faust's ``test_context()``: what the app sent, by topic."""

from __future__ import annotations

import asyncio

import orjson


class Captured:
    """What left the app, by topic name; :meth:`record` stands where a send would reach the broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    def record(self, topic: str, key: bytes | None, value: bytes | None) -> asyncio.Future:
        self.sent.append((topic, key, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def on(self, topic: str) -> list[dict]:
        return [orjson.loads(v) for t, _, v in self.sent if t == topic]
