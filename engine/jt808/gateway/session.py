"""One terminal connection's protocol logic, without sockets: bytes in, :class:`Outcome` s out.

The server feeds what it reads to :meth:`Session.receive` and does what each outcome says: write ``reply`` now;
hand ``fixes`` and ``rejections`` to Kafka and write ``durable_reply`` once Kafka has all of them (accepted and
rejected records alike); close after a logout or too many bad frames. Keeping this pure lets every rule be
tested with hand-built frames and no event loop.

Rules: 0x0100 -> 0x8100 (the auth code only with result 0); 0x0102 -> 0x8001 result 0 when the code verifies
for the header's phone, else 1; 0x0002 and 0x0003 -> 0x8001 result 0 (a logout then closes); 0x0200 and 0x0704
(normal or blind-area re-upload alike: the worker treats fixes older than a vehicle's newest as late) -> fixes,
once the connection authenticated as the phone in the header, else 0x8001 result 1 and
``citywatch_jt808_unauthenticated_total``. Each location goes through :func:`validate_fix`, the rules every
fix path answers to; a rejected one becomes a ``fixes.rejected`` record and does not fail its frame.

A frame that does not decode (every :data:`engine.jt808.header.REASONS`) is answered 0x8001 result 2 (3 for
``unknown_message``) when its header could be read, counted in ``citywatch_jt808_frames_rejected_total{reason}``
and written, as hex, to ``fixes.rejected`` (reason ``jt808_<reason>``; an authentication frame keeps only its
first bytes, never the code). ``jt808.max_bad_frames`` of them in a row close the connection. A well-formed
message this gateway does not handle (``unknown_message``) is answered and recorded but does not count towards
closing: it is a terminal speaking the protocol, not a client speaking garbage.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.core.clock import Clock
from engine.core.errors import FixRejected
from engine.core.metrics import Jt808Metrics
from engine.jt808.codec import build_registration_response, split_frame
from engine.jt808.framing import FrameReader, wrap
from engine.jt808.gateway.config import Jt808Config
from engine.jt808.gateway.registry import Admission, masked
from engine.jt808.header import FrameError, Header, encode_header
from engine.jt808.location import Location, LocationBatch
from engine.jt808.messages import (
    MSG_AUTHENTICATE,
    MSG_BATCH,
    MSG_GENERAL_RESPONSE,
    MSG_HEARTBEAT,
    MSG_LOCATION,
    MSG_LOGOUT,
    MSG_REGISTER,
    Authentication,
    Body,
    GeneralResult,
    Heartbeat,
    Logout,
    Registration,
    decode_body,
)
from engine.jt808.reassembly import Reassembler
from engine.telemetry.fix_rules import validate_fix
from engine.telemetry.models import Fix
from engine.telemetry.rejection import Rejection

log = logging.getLogger(__name__)

#: The terminal messages handled; any other id is ``unknown_message`` before it is reassembled.
HANDLED = frozenset({MSG_HEARTBEAT, MSG_LOGOUT, MSG_REGISTER, MSG_AUTHENTICATE, MSG_LOCATION, MSG_BATCH})
#: Reassembly per connection: at most 2 incomplete messages of 16 packets (a batch of some 300 fixes), 32 KB.
MAX_PACKETS, MAX_PENDING_MESSAGES = 16, 2
SOURCE = "jt808"
_GENERAL = struct.Struct(">HHB")  # 0x8001: reply serial, reply id, result
AUTH_KEEP_BYTES = 4  # of a bad authentication frame, only the message id and properties go to fixes.rejected


@dataclass(eq=False, slots=True)
class Outcome:
    """What one frame asks of its connection."""

    reply: bytes | None = None           # write now
    durable_reply: bytes | None = None   # write once every record below is in Kafka
    fixes: list[Fix] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    close: str = ""                      # close after the replies: "logout" or "bad_frames"

    @property
    def records(self) -> int:
        return len(self.fixes) + len(self.rejections)


def msg_label(msg_id: int) -> str:
    """The ``msg_id`` label: hex for the handled ids, ``other`` for the rest (bounded label values)."""
    return f"0x{msg_id:04x}" if msg_id in HANDLED else "other"


class Session:
    """One connection: who the terminal is once it authenticated, its serials, its reader and reassembler."""

    def __init__(self, settings: Jt808Config, admission: Admission, metrics: Jt808Metrics, clock: Clock):
        self.settings, self.admission, self.metrics, self.clock = settings, admission, metrics, clock
        cfg = settings.jt808
        self.phone: str | None = None      # normalised, once authenticated
        self.version: int | None = None    # the header version of the last good frame (None: 2013)
        self.plate: str | None = None
        self.vclass: str | None = None
        self.bad_in_row = 0
        self.closed = ""                   # set by the outcome that closes: nothing after it is handled
        self._serial = 0
        self._reader = FrameReader(cfg.max_frame_bytes)
        self._reassembler = Reassembler(max_packets=MAX_PACKETS, timeout_s=cfg.reassembly_timeout_s, clock=clock,
                                        max_pending=MAX_PENDING_MESSAGES)
        self._dropped = (0, 0)
        self._reply_prefix: dict[tuple[str, int | None], bytes] = {}

    @property
    def authenticated(self) -> bool:
        return self.phone is not None

    @property
    def who(self) -> str:
        """The terminal for logs: masked phone and plate (never more)."""
        return f"{masked(self.phone)} ({self.plate})" if self.phone else "unauthenticated terminal"

    def next_serial(self) -> int:
        serial, self._serial = self._serial, (self._serial + 1) & 0xFFFF
        return serial

    def receive(self, data: bytes) -> list[Outcome]:
        """The outcomes of the frames ``data`` completes, up to the first that closes the connection."""
        out: list[Outcome] = []
        for item in self.split(data):
            if self.closed:
                break
            out.append(self.take(item))
        return out

    def split(self, data: bytes) -> list[bytes | FrameError]:
        """The frames ``data`` completes (and the oversize ones dropped), to :meth:`take` one by one."""
        return [] if self.closed else self._reader.feed(data)

    def take(self, item: bytes | FrameError) -> Outcome:
        """One item of :meth:`split`; after one that closes, :attr:`closed` says why and nothing more is read."""
        outcome = self._bad(item, b"") if isinstance(item, FrameError) else self.handle(item)
        if outcome.close:
            self.closed = outcome.close
        return outcome

    def handle(self, frame: bytes) -> Outcome:
        """One frame's content (as :class:`~engine.jt808.framing.FrameReader` yields it, or with delimiters)."""
        header: Header | None = None
        try:
            header, body = split_frame(frame)
            if header.msg_id not in HANDLED:
                raise FrameError("unknown_message", f"message id 0x{header.msg_id:04x} is not handled", header)
            whole = self._reassemble(header, body)
            if whole is None:  # a packet of a message still incomplete: received
                self.bad_in_row = 0
                self.metrics.frames.labels(msg_label(header.msg_id)).inc()
                return Outcome(reply=self._general(header, GeneralResult.OK))
            message = decode_body(whole[0], whole[1])
        except FrameError as exc:
            if header is not None:
                exc.header = header  # answer the packet that came, not packet 1 of its message
            return self._bad(exc, frame)
        self.bad_in_row = 0
        self.version = header.version
        self.metrics.frames.labels(msg_label(header.msg_id)).inc()
        return self._dispatch(header, message)

    def _reassemble(self, header: Header, body: bytes) -> tuple[Header, bytes] | None:
        r = self._reassembler
        try:
            return r.add(header, body)
        finally:
            timeout, overflow = self._dropped
            if r.dropped_timeout > timeout:
                self.metrics.reassembly_dropped.labels("timeout").inc(r.dropped_timeout - timeout)
            if r.dropped_overflow > overflow:
                self.metrics.reassembly_dropped.labels("overflow").inc(r.dropped_overflow - overflow)
            self._dropped = (r.dropped_timeout, r.dropped_overflow)

    def _dispatch(self, header: Header, message: Body) -> Outcome:
        if isinstance(message, Location):
            return self._locations(header, (message,), batch=False)
        if isinstance(message, LocationBatch):
            return self._locations(header, message.locations, batch=True)
        if isinstance(message, Heartbeat):
            return Outcome(reply=self._general(header, GeneralResult.OK))
        if isinstance(message, Registration):
            return self._register(header, message)
        if isinstance(message, Authentication):
            return self._authenticate(header, message)
        if isinstance(message, Logout):
            log.debug("jt808: %s logged out", self.who)
            return Outcome(reply=self._general(header, GeneralResult.OK), close="logout")
        raise AssertionError(f"HANDLED lists 0x{header.msg_id:04x} but it decoded to {type(message).__name__}")

    def _general(self, header: Header, result: GeneralResult) -> bytes:
        """0x8001 answering ``header``: :func:`~engine.jt808.codec.build_general_response`'s frame, with the
        header's fixed part encoded once per phone (a sixth of its cost; every frame is answered)."""
        key = (header.phone, header.version)
        prefix = self._reply_prefix.get(key)
        if prefix is None:
            if len(self._reply_prefix) >= 4:  # one terminal per connection; a few phones at most
                self._reply_prefix.clear()
            prefix = self._reply_prefix[key] = encode_header(Header(MSG_GENERAL_RESPONSE, header.phone, 0,
                                                                    header.version), 5)[:-2]
        body = _GENERAL.pack(header.serial, header.msg_id, result)
        return wrap(prefix + self.next_serial().to_bytes(2, "big") + body)

    def _register(self, header: Header, reg: Registration) -> Outcome:
        phone = header.phone_normalised
        admitted = self.admission.register(phone, reg.plate)
        self.metrics.registrations.labels(admitted.result.name.lower()).inc()
        if admitted.terminal is None:
            log.info("jt808: registration of %s (%r) refused: %s", masked(phone), reg.plate[:32],
                     admitted.result.name.lower())
        else:
            log.debug("jt808: %s (%s) registered", masked(phone), admitted.terminal.plate)
        return Outcome(reply=build_registration_response(header, self.next_serial(), admitted.result, admitted.code))

    def _authenticate(self, header: Header, auth: Authentication) -> Outcome:
        phone = header.phone_normalised
        terminal = self.admission.authenticate(phone, auth.code)
        if terminal is None:
            self.metrics.authentications.labels("failed").inc()
            log.info("jt808: authentication of %s failed", masked(phone))
            return Outcome(reply=self._general(header, GeneralResult.FAILURE))
        self.metrics.authentications.labels("ok").inc()
        self.phone, self.plate, self.vclass = terminal.phone, terminal.plate, terminal.vclass
        log.debug("jt808: %s authenticated", self.who)
        return Outcome(reply=self._general(header, GeneralResult.OK))

    def _locations(self, header: Header, locations: Sequence[Location], *, batch: bool) -> Outcome:
        if self.phone is None or header.phone_normalised != self.phone:
            self.metrics.unauthenticated.inc()
            return Outcome(reply=self._general(header, GeneralResult.FAILURE))
        now = self.clock.now()
        fixes, rejections = [], []
        for i, loc in enumerate(locations):
            obj: dict[str, Any] = {
                "vehicle_id": self.plate, "ts": loc.ts, "lat": loc.lat, "lon": loc.lon, "speed_kmh": loc.speed_kmh,
                "heading": loc.heading, "class": self.vclass, "alarm_flags": loc.alarm, "status_flags": loc.status,
                "valid": loc.valid}
            try:
                fix = validate_fix(obj, topic_vehicle=None, settings=self.settings, now=now)
            except FixRejected as exc:
                self.metrics.fixes_rejected.labels(exc.reason).inc()
                rejections.append(Rejection(exc.reason, exc.detail, orjson.dumps(obj), topic=SOURCE,
                                            vehicle_id=self.plate, index=i if batch else None, received_at=now,
                                            source=SOURCE, extra={"msg_id": f"0x{header.msg_id:04x}"}))
                continue
            fix.source = SOURCE
            fixes.append(fix)
        return Outcome(durable_reply=self._general(header, GeneralResult.OK), fixes=fixes, rejections=rejections)

    def _bad(self, exc: FrameError, frame: bytes) -> Outcome:
        """A frame that does not decode: answered if it can be, counted, recorded; enough in a row close."""
        self.metrics.frames_rejected.labels(exc.reason).inc()
        unknown = exc.reason == "unknown_message"
        if not unknown:
            self.bad_in_row += 1
        reply = None
        if exc.header is not None:
            result = GeneralResult.UNSUPPORTED if unknown else GeneralResult.MESSAGE_ERROR
            try:
                reply = self._general(exc.header, result)
            except ValueError:  # a header whose phone is not BCD cannot be answered
                reply = None
        raw, extra = _raw(frame, exc.header)
        # the codec's detail may quote the body's bytes: of an authentication frame, that is (part of) its code
        detail = "an authentication frame (detail withheld)" if "raw_withheld" in extra else exc.detail[:300]
        rejection = Rejection(f"jt808_{exc.reason}", detail, raw, topic=SOURCE, vehicle_id=self.plate,
                              received_at=self.clock.now(), source=SOURCE, extra=extra)
        close = "bad_frames" if self.bad_in_row >= self.settings.jt808.max_bad_frames else ""
        if close:
            log.info("jt808: closing the connection of %s after %d bad frames in a row (last: %s)", self.who,
                     self.bad_in_row, exc.reason)
        return Outcome(reply=reply, rejections=[rejection], close=close)


def _raw(frame: bytes, header: Header | None) -> tuple[bytes, dict[str, Any]]:
    """The frame as the terminal sent it, in hex (ASCII bytes), and the rejection's extra fields."""
    content = frame[1:-1] if frame[:1] == b"\x7e" and frame[-1:] == b"\x7e" and len(frame) > 1 else frame
    extra: dict[str, Any] = {}
    if header is not None:
        extra["msg_id"] = f"0x{header.msg_id:04x}"
    msg_id = header.msg_id if header is not None else int.from_bytes(content[:2], "big") if len(content) >= 2 else -1
    if msg_id == MSG_AUTHENTICATE:
        extra["raw_withheld"] = f"an authentication frame: only its first {AUTH_KEEP_BYTES} bytes are kept"
        return b"7e" + content[:AUTH_KEEP_BYTES].hex().encode(), extra
    return (b"7e" + content.hex().encode() + b"7e") if content else b"", extra
