"""Joining sub-packaged messages: ``Reassembler``, bounded in packets per message, pending messages and time.

A long message (a batch upload, say) comes as packets 1..total, each its own frame with its own serial; the
packets of one message have consecutive serials, so ``serial - index + 1`` (mod 2**16) is the serial of packet 1
and, with the phone number and message id, names the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core.clock import Clock
from engine.jt808.header import FrameError, Header

Key = tuple[str, int, int]  # phone, message id, serial of packet 1


@dataclass(slots=True)
class _Pending:
    started: float
    total: int
    parts: dict[int, tuple[Header, bytes]] = field(default_factory=dict)


class Reassembler:
    """``add(header, body)`` -> (header of packet 1, joined body) once every packet of a message has come, in
    any order; None while packets are missing. A frame that is not sub-packaged comes straight back.

    * ``max_packets``: the largest packet total accepted (a larger one is ``FrameError`` ``oversize``);
    * ``timeout_s``: a message not complete this long after its first packet came is dropped
      (``dropped_timeout`` counts them), checked on every ``add`` and by :meth:`expire`;
    * ``max_pending``: at most this many incomplete messages are held; beyond, the oldest is dropped
      (``dropped_overflow`` counts them).

    A packet seen twice keeps its first copy (``duplicates`` counts the others). Memory is bounded by
    ``max_pending * max_packets`` packets of at most 1023 body bytes.
    """

    def __init__(self, *, max_packets: int = 64, timeout_s: float = 60.0, clock: Clock, max_pending: int = 16):
        if max_packets < 1 or max_pending < 1 or timeout_s <= 0:
            raise ValueError("max_packets and max_pending at least 1, timeout_s above 0")
        self.max_packets, self.timeout_s, self.max_pending = max_packets, timeout_s, max_pending
        self.clock = clock
        self.dropped_timeout = 0
        self.dropped_overflow = 0
        self.duplicates = 0
        self._pending: dict[Key, _Pending] = {}  # insertion order is arrival order of the first packet

    @property
    def pending(self) -> int:
        """Incomplete messages held."""
        return len(self._pending)

    def expire(self) -> int:
        """Drop the messages older than ``timeout_s``; how many were dropped."""
        deadline = self.clock.now() - self.timeout_s
        stale = [key for key, p in self._pending.items() if p.started <= deadline]
        for key in stale:
            del self._pending[key]
        self.dropped_timeout += len(stale)
        return len(stale)

    def add(self, header: Header, body: bytes) -> tuple[Header, bytes] | None:
        if header.packet_total is None or header.packet_index is None:
            return header, body
        total, index = header.packet_total, header.packet_index
        if total > self.max_packets:
            raise FrameError("oversize", f"a message of {total} packets, at most {self.max_packets}", header)
        if not 1 <= index <= total:
            raise FrameError("bad_header", f"packet index {index} of total {total} (index counts from 1)", header)
        self.expire()
        key = (header.phone, header.msg_id, header.first_serial)
        pending = self._pending.get(key)
        if pending is None:
            while len(self._pending) >= self.max_pending:
                del self._pending[next(iter(self._pending))]
                self.dropped_overflow += 1
            pending = self._pending[key] = _Pending(self.clock.now(), total)
        elif pending.total != total:
            raise FrameError("bad_header", f"packet {index} gives a total of {total}, packet "
                                           f"{min(pending.parts)} gave {pending.total}", header)
        if index in pending.parts:
            self.duplicates += 1
        else:
            pending.parts[index] = (header, body)
        if len(pending.parts) < total:
            return None
        del self._pending[key]
        return pending.parts[1][0], b"".join(pending.parts[i][1] for i in range(1, total + 1))
