"""``python -m simulators.jt808``: JT/T 808 terminals (2013 and 2019) driving around Xiamen, against a gateway.

Each terminal connects, registers (0x0100; skipped once it holds an auth code, e.g. after a reconnect),
authenticates (0x0102), then reports its position (0x0200) every ``--interval-s`` along a route of
:mod:`simulators.routes` and sends a heartbeat (0x0002) every ``--heartbeat-s``. It waits for each answer and
records how long it took. ``--sos`` raises the emergency alarm (bit 0) on its 3rd to 5th reports, then clears
it (every terminal, or the first ``--sos-terminals``); ``--reupload`` sends, after its 6th report, a blind-area re-upload (0x0704 type 1) of five fixes it
"missed" ten to six minutes earlier. At the end it prints a JSON summary: connections held, fixes sent, replies
ok, p50/p99 reply latency (also on SIGINT/SIGTERM; ``--duration-s 0`` runs until one).

Built for benchmarks of 10,000 terminals per process: one event loop and one coroutine per terminal, connection
starts staggered over ``--ramp-s``, location and heartbeat frames assembled from a header prefix built once per
terminal and a packed body (the codec's layouts), the BCD time encoded once per second for every terminal.
``--write-registry FILE`` writes the terminals as a registry file (``jt808.terminals``) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import random
import resource
import signal
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.jt808.codec import decode_frame, encode_authentication, encode_batch, encode_registration
from engine.jt808.framing import FrameReader, wrap
from engine.jt808.header import FrameError, Header, encode_header
from engine.jt808.location import Location, encode_bcd_time
from engine.jt808.messages import (
    MSG_HEARTBEAT,
    MSG_LOCATION,
    Authentication,
    GeneralResponse,
    Registration,
    RegistrationResponse,
)
from simulators.routes import CITY_ROUTES, Route

_BODY = struct.Struct(">IIIIHHH6s")  # the 0x0200 fixed part (engine.jt808.location)
_BCD_CACHE: dict[int, bytes] = {}
CLASSES_CYCLE = ("hazmat", "taxi", "bus")
ALARM_SOS = 1 << 0
STATUS_ACC_VALID = 0b11


def bcd_now(ts: float) -> bytes:
    """The BCD time of ``ts``, encoded once per second for every terminal."""
    second = int(ts)
    raw = _BCD_CACHE.get(second)
    if raw is None:
        _BCD_CACHE.clear()
        raw = _BCD_CACHE[second] = encode_bcd_time(second)
    return raw


@dataclass
class Stats:
    connected: int = 0
    connect_failures: int = 0
    reconnects: int = 0
    registered: int = 0
    authenticated: int = 0
    frames_sent: int = 0
    fixes_sent: int = 0
    replies_ok: int = 0
    replies_failed: int = 0
    replies_missing: int = 0
    parked: int = 0                 # terminals holding their connection at the deadline
    slots_missed: int = 0           # planned reports not sent because an answer came after their time
    latencies: list[float] = field(default_factory=list)

    def summary(self, terminals: int, elapsed: float) -> dict[str, object]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None

        return {"terminals": terminals, "connections_held": self.connected, "connect_failures": self.connect_failures,
                "reconnects": self.reconnects, "registered": self.registered, "authenticated": self.authenticated,
                "frames_sent": self.frames_sent, "fixes_sent": self.fixes_sent, "replies_ok": self.replies_ok,
                "replies_failed": self.replies_failed, "replies_missing": self.replies_missing,
                "slots_missed": self.slots_missed,
                "p50_reply_ms": pct(0.50), "p99_reply_ms": pct(0.99),
                "max_reply_ms": round(lat[-1] * 1000, 2) if lat else None, "duration_s": round(elapsed, 1)}


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 6808
    terminals: int = 10
    first: int = 0                  # index of the first terminal (several processes: disjoint ranges)
    phone_base: int = 13900000000
    v2019_fraction: float = 0.5
    interval_s: float = 30.0
    heartbeat_s: float = 30.0
    duration_s: float = 60.0
    ramp_s: float | None = None     # None: terminals / 1000 s
    reply_timeout_s: float = 10.0
    sos: bool = False
    reupload: bool = False
    seed: int = 7
    sos_terminals: int = 0          # with sos: only the first this many raise it (0: every one)


def identity(i: int, o: Options) -> tuple[str, str, str]:
    """Terminal ``i``'s phone, plate (闽D + 5 digits) and class."""
    n = o.first + i
    return str(o.phone_base + n), f"闽D{n % 100000:05d}", CLASSES_CYCLE[n % len(CLASSES_CYCLE)]


class SimTerminal:
    def __init__(self, i: int, o: Options, stats: Stats, rng: random.Random):
        self.o, self.stats = o, stats
        self.index = o.first + i
        self.sos = o.sos and (o.sos_terminals <= 0 or i < o.sos_terminals)
        self.phone, self.plate, self.vclass = identity(i, o)
        self.version = 1 if rng.random() < o.v2019_fraction else None
        self.route: Route = rng.choice(CITY_ROUTES)
        self.speed_kmh = rng.uniform(25.0, 60.0)
        self.distance_m = rng.uniform(0.0, self.route.length_m)
        self.delay_s = (o.terminals / 1000.0 if o.ramp_s is None else o.ramp_s) * i / max(1, o.terminals)
        # The planned report times: one slot every interval, the terminals' slots spread evenly over it. They
        # do not move with when the connection or its authentication was answered (answers come in clumps
        # while terminals connect, and reports timed from them would clump the same way).
        self.phase_s = o.interval_s * i / max(1, o.terminals)
        self.code: str | None = None
        self.serial = 0
        self.reports = 0
        self._prefix = {m: encode_header(Header(m, self.phone, 0, self.version), n)[:-2]
                        for m, n in ((MSG_LOCATION, _BODY.size), (MSG_HEARTBEAT, 0))}

    def _next(self) -> int:
        self.serial = (self.serial + 1) & 0xFFFF
        return self.serial

    def _frame(self, msg_id: int, body: bytes) -> tuple[int, bytes]:
        serial = self._next()
        return serial, wrap(self._prefix[msg_id] + serial.to_bytes(2, "big") + body)

    def _location(self, now: float, elapsed: float) -> bytes:
        lon, lat, heading = self.route.bounce(self.distance_m + self.speed_kmh / 3.6 * elapsed)
        alarm = ALARM_SOS if self.sos and 2 <= self.reports <= 4 else 0
        return _BODY.pack(alarm, STATUS_ACC_VALID, round(lat * 1e6), round(lon * 1e6), 10,
                          round(self.speed_kmh * 10), heading, bcd_now(now))

    def _missed(self, now: float, elapsed: float) -> bytes:
        locs = []
        for k in range(5):
            back = 600 - 60 * k
            lon, lat, heading = self.route.bounce(self.distance_m + self.speed_kmh / 3.6 * max(0.0, elapsed - back))
            locs.append(Location(0, STATUS_ACC_VALID, lat, lon, 10, round(self.speed_kmh, 1), heading, now - back,
                                 True))
        return encode_batch(self.phone, self._next(), locs, kind=1, version=self.version)

    async def run(self, start: float, deadline: float, release: asyncio.Event) -> None:
        """Connect after the ramp delay, report until ``deadline``, hold the connection until ``release``."""
        self._release = release
        await asyncio.sleep(self.delay_s)
        while time.monotonic() < deadline:
            try:
                await self._session(start, deadline)
                return
            except (OSError, ConnectionError, asyncio.IncompleteReadError, FrameError):
                self.stats.reconnects += 1
                await asyncio.sleep(1.0)

    async def _session(self, start: float, deadline: float) -> None:
        try:
            reader, writer = await asyncio.open_connection(self.o.host, self.o.port)
        except OSError:
            self.stats.connect_failures += 1
            raise
        self._reader, self._writer, self._frames = reader, writer, FrameReader()
        self._inbox: list[bytes] = []
        self.stats.connected += 1
        try:
            if self.code is None:
                reg = Registration(35, 200, "CWSIM", "CW-SIM", f"{self.index:07d}"[-7:], 1, self.plate)
                serial = self._next()
                answer = await self._ask(serial, encode_registration(self.phone, serial, reg, version=self.version))
                if not isinstance(answer, RegistrationResponse) or answer.result != 0 or not answer.auth_code:
                    raise ConnectionError("registration refused")
                self.code = answer.auth_code
                self.stats.registered += 1
            auth = Authentication(self.code, "860000000000000", "sim-1") if self.version else self.code
            serial = self._next()
            answer = await self._ask(serial, encode_authentication(self.phone, serial, auth, version=self.version))
            if not isinstance(answer, GeneralResponse) or answer.result != 0:
                self.code = None  # register again next time
                raise ConnectionError("authentication refused")
            self.stats.authenticated += 1
            await self._report(start, deadline)
        finally:
            self.stats.connected -= 1
            writer.close()

    def _slot(self, start: float, after: float, period: float) -> float:
        """The first planned time at or after ``after``: ``start + phase + k * period``."""
        first = start + self.phase_s
        return first if after <= first else first + math.ceil((after - first) / period) * period

    async def _report(self, start: float, deadline: float) -> None:
        now_m = time.monotonic()
        next_fix = self._slot(start, now_m, self.o.interval_s)
        next_beat = self._slot(start, now_m, self.o.heartbeat_s) + self.o.heartbeat_s
        while True:
            now_m = time.monotonic()
            due = min(next_fix, next_beat)
            if due >= deadline:
                await asyncio.sleep(max(0.0, deadline - now_m))
                self.stats.parked += 1
                await self._release.wait()  # still connected when the summary counts
                return
            if due > now_m:
                await asyncio.sleep(due - now_m)
            now, elapsed = time.time(), time.monotonic() - start
            if next_fix <= next_beat:
                planned = next_fix
                serial, frame = self._frame(MSG_LOCATION, self._location(now, elapsed))
                self.reports += 1
                self.stats.fixes_sent += 1
                await self._ask(serial, frame)
                if self.o.reupload and self.reports == 6:
                    self.stats.fixes_sent += 5
                    frame = self._missed(now, elapsed)
                    await self._ask(self.serial, frame)
                # The next planned slot; one whose time passed while an answer was awaited is skipped, not
                # sent late in a burst (a terminal reports on its timer).
                next_fix = max(planned + self.o.interval_s, self._slot(start, time.monotonic(), self.o.interval_s))
                self.stats.slots_missed += round((next_fix - planned) / self.o.interval_s) - 1
            else:
                next_beat += self.o.heartbeat_s
                await self._ask(*self._frame(MSG_HEARTBEAT, b""))

    async def _ask(self, serial: int, frame: bytes) -> object:
        """Send ``frame`` and wait for the answer to ``serial``; None when none came in time."""
        sent = time.monotonic()
        self._writer.write(frame)
        self.stats.frames_sent += 1
        try:
            async with asyncio.timeout(self.o.reply_timeout_s):
                while True:
                    inbox, self._inbox = self._inbox, []
                    for raw in inbox:
                        _, body = decode_frame(raw)
                        if isinstance(body, (GeneralResponse, RegistrationResponse)) and body.reply_serial == serial:
                            self.stats.latencies.append(time.monotonic() - sent)
                            self.stats.replies_ok += body.result == 0
                            self.stats.replies_failed += body.result != 0
                            return body
                    data = await self._reader.read(4096)
                    if not data:
                        raise ConnectionError("the gateway closed the connection")
                    self._inbox = [f for f in self._frames.feed(data) if isinstance(f, bytes)]
        except TimeoutError:
            self.stats.replies_missing += 1
            return None


def raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def run(o: Options, stop: asyncio.Event | None = None) -> dict[str, object]:
    """Every terminal until ``duration_s`` (0: until ``stop`` is set) or ``stop``; the summary."""
    raise_open_files(o.terminals + 64)
    stats, rng = Stats(), random.Random(o.seed)
    terminals = [SimTerminal(i, o, stats, rng) for i in range(o.terminals)]
    start = time.monotonic()
    deadline = start + (o.duration_s or float("inf"))
    release, stop = asyncio.Event(), stop or asyncio.Event()
    tasks = [asyncio.create_task(t.run(start, deadline, release)) for t in terminals]
    held = 0
    try:
        try:
            async with asyncio.timeout(None if o.duration_s == 0 else o.duration_s):
                await stop.wait()
        except TimeoutError:  # the deadline: the last answers come, every terminal holds its connection
            late = time.monotonic() + o.reply_timeout_s
            while stats.parked + sum(t.done() for t in tasks) < len(tasks) and time.monotonic() < late:
                await asyncio.sleep(0.05)
        held = stats.connected
        release.set()
        if not stop.is_set():
            await asyncio.wait(tasks, timeout=2.0)  # parked terminals close their connections
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    out = stats.summary(o.terminals, time.monotonic() - start)
    out["connections_held"] = held
    return out


def write_registry(path: Path, o: Options) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "plate", "class"])
        w.writerows(identity(i, o) for i in range(o.terminals))


def parse_args(argv: list[str] | None) -> tuple[Options, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m simulators.jt808", description=__doc__.split("\n")[0])
    d = Options()
    p.add_argument("--host", default=d.host)
    p.add_argument("--port", type=int, default=d.port)
    p.add_argument("--terminals", type=int, default=d.terminals)
    p.add_argument("--first", type=int, default=d.first, help="index of the first terminal (default 0)")
    p.add_argument("--phone-base", type=int, default=d.phone_base)
    p.add_argument("--v2019-fraction", type=float, default=d.v2019_fraction, help="share of 2019 terminals")
    p.add_argument("--interval-s", type=float, default=d.interval_s)
    p.add_argument("--heartbeat-s", type=float, default=d.heartbeat_s)
    p.add_argument("--duration-s", type=float, default=d.duration_s, help="0: until SIGINT/SIGTERM")
    p.add_argument("--ramp-s", type=float, default=None, help="stagger connections over this long "
                                                             "(default: terminals / 1000)")
    p.add_argument("--reply-timeout-s", type=float, default=d.reply_timeout_s)
    p.add_argument("--sos", action="store_true", help="emergency alarm on reports 3-5")
    p.add_argument("--sos-terminals", type=int, default=0, help="with --sos: only the first N terminals (0: all)")
    p.add_argument("--reupload", action="store_true", help="a blind-area re-upload of 5 fixes after report 6")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--write-registry", metavar="FILE", default=None, help="write the registry file and exit")
    a = p.parse_args(argv)
    if a.terminals < 1 or a.interval_s <= 0 or a.heartbeat_s <= 0 or a.duration_s < 0:
        p.error("--terminals, --interval-s and --heartbeat-s must be positive, --duration-s not negative")
    o = Options(a.host, a.port, a.terminals, a.first, a.phone_base, a.v2019_fraction, a.interval_s, a.heartbeat_s,
                a.duration_s, a.ramp_s, a.reply_timeout_s, a.sos, a.reupload, a.seed, a.sos_terminals)
    return o, a


def main(argv: list[str] | None = None) -> int:
    o, a = parse_args(argv)
    if a.write_registry:
        write_registry(Path(a.write_registry), o)
        return 0

    async def until_signal() -> dict[str, object]:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        return await run(o, stop)

    summary = asyncio.run(until_signal())
    print(json.dumps(summary), flush=True)
    return 0 if summary["replies_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
