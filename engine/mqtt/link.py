"""One TCP (or TLS) connection of an asyncio MQTT client: the :class:`asyncio.Protocol` and its batched writes.

What is written in one turn of the event loop goes out in one ``transport.write``: the subscriber's
acknowledgements of one batch, the publisher's publishes of one turn, a PINGREQ, leave together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Link(asyncio.Protocol):
    """Hands its bytes and its end to the session that made it (``on_data``, ``on_lost``)."""

    def __init__(self, on_data: Callable[[Link, bytes], None], on_lost: Callable[[Link, Exception | None], None]):
        self._on_data, self._on_lost = on_data, on_lost
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reason: str | None = None  # why it ended (logged by the session)
        self.last_out = 0.0             # when something was last written (keepalive)
        self._out: list[bytes] = []     # written at the end of this turn of the event loop, in one write
        self._flush_due = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._on_lost(self, exc)

    def write(self, data: bytes) -> None:
        """Queue ``data``: what is queued in one turn of the event loop goes out in one write."""
        self._out.append(data)
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write what is queued now (dropped if the connection is not open)."""
        self._flush_due = False
        out, self._out = self._out, []
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))
            self.last_out = time.monotonic()

    def drop(self, reason: str) -> None:
        """Abort the connection, saying why."""
        self.reason = reason
        if self.transport is not None:
            self.transport.abort()
