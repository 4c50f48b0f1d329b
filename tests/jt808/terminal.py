"""A JT/T 808 terminal for the tests, speaking through engine.jt808's codec over TCP."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.jt808.codec import decode_frame, encode_authentication, encode_location, encode_registration
from engine.jt808.framing import FrameReader
from engine.jt808.location import Location
from engine.jt808.messages import Authentication, GeneralResponse, Registration, RegistrationResponse


class Client:
    """A terminal speaking through the codec; ``ask`` sends a frame and returns the answer to its serial."""

    def __init__(self, port: int, phone: str, version: int | None = None, wait_s: float = 20.0):
        self.port, self.phone, self.version, self.serial, self.wait_s = port, phone, version, 0, wait_s
        self.frames = FrameReader()
        self.inbox: list[bytes] = []

    async def __aenter__(self) -> Client:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    def next(self) -> int:
        self.serial += 1
        return self.serial

    async def ask(self, frame: bytes, serial: int | None = None) -> Any:
        serial = self.serial if serial is None else serial
        self.writer.write(frame)
        async with asyncio.timeout(self.wait_s):
            while True:
                for raw in self.inbox:
                    _, body = decode_frame(raw)
                    if isinstance(body, (GeneralResponse, RegistrationResponse)) and body.reply_serial == serial:
                        self.inbox.remove(raw)
                        return body
                data = await self.reader.read(4096)
                if not data:
                    raise ConnectionError("closed by the gateway")
                self.inbox += [f for f in self.frames.feed(data) if isinstance(f, bytes)]

    async def closed(self) -> bool:
        """True once the gateway closed the connection (replies before it are read and dropped)."""
        async with asyncio.timeout(self.wait_s):
            try:
                while await self.reader.read(4096):
                    pass
            except ConnectionResetError:  # closed at once (abort): a reset rather than an end of stream
                pass
        return True

    async def login(self, plate: str) -> None:
        """Register with ``plate`` and authenticate with the code the gateway answered."""
        reg = Registration(35, 200, "CW", "CW-T1", "T1", 1, plate)
        answer = await self.ask(encode_registration(self.phone, self.next(), reg, version=self.version))
        assert isinstance(answer, RegistrationResponse) and answer.result == 0 and answer.auth_code
        auth = Authentication(answer.auth_code, "860000000000001", "1.0") if self.version else answer.auth_code
        answer = await self.ask(encode_authentication(self.phone, self.next(), auth, version=self.version))
        assert answer.result == 0

    async def report(self, loc: Location) -> Any:
        return await self.ask(encode_location(self.phone, self.next(), loc, version=self.version))


def fix_at(ts: float, lon: float, lat: float, speed_kmh: float = 30.0) -> Location:
    """A valid location report (status: ACC on, fix valid) at whole second ``ts``."""
    return Location(alarm=0, status=0b11, lat=lat, lon=lon, altitude_m=5, speed_kmh=speed_kmh, heading=90,
                    ts=float(int(ts)), valid=True)


async def drive(port: int, phone: str, plate: str, track: list[tuple[float, float, float]]) -> None:
    """Register, authenticate, then report each ``(ts, lon, lat)`` of ``track``; every report answered 0."""
    async with Client(port, phone) as c:
        await c.login(plate)
        for ts, lon, lat in track:
            assert await c.report(fix_at(ts, lon, lat)) == GeneralResponse(c.serial, 0x0200, 0)
