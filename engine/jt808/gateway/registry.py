"""The terminal registry file and :class:`Admission`: who may register, and the auth codes that let a terminal in.

The registry (``jt808.terminals``) is CSV in UTF-8 (a byte-order mark is accepted) with the header
``phone,plate,class``: the terminal's phone number (1-20 digits, the BCD of its message headers; leading zeros
do not count, as :attr:`engine.jt808.header.Header.phone_normalised`), its vehicle's plate (e.g. ``闽DH1234``:
the vehicle id of its fixes) and the vehicle class (:data:`engine.telemetry.models.CLASSES`). A phone or a
plate listed twice is an error; every error names the file, the line and the field.

Admission (0x0100): with a registry, a listed phone is admitted when the plate in its registration is the listed
one (else result 2, no such vehicle) and an unlisted phone is refused (result 4, no such terminal), unless
``jt808.open_registration`` is true: then an unlisted terminal with a usable plate is admitted with
``jt808.default_class`` (the ``citywatch up`` dev stack). Listed terminals are held to their entry either way.

Auth codes are stateless, so that any gateway process verifies any code: processes share one port
(SO_REUSEPORT) and a terminal may reconnect to another. A terminal that authenticates sends only its phone and
the code (0x0102), never its plate again, so the code carries the plate::

    code = hex(UTF-8 of the plate) "." tag        tag = HMAC-SHA256(jt808.hmac_key, phone "|" plate)[:16 hex]

The plate is no secret (it is painted on the vehicle); the tag is, and proves that this gateway (a process with
the same key) admitted this phone with this plate. Verifying splits the code, recomputes the tag for the
connecting phone, compares in constant time (:func:`hmac.compare_digest`) and gives the plate back; with a
registry the phone must still be listed with that plate, so removing a terminal from the file locks it out at
its next authentication. Changing ``jt808.hmac_key`` voids every code: terminals register again. Nothing is
stored, and no code is ever logged.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.core.errors import ConfigError
from engine.jt808.messages import RegistrationResult
from engine.jt808.settings import Jt808Settings
from engine.telemetry.models import CLASSES

DEV_HMAC_KEY = "citywatch-dev-only-jt808-key"  # used when jt808.hmac_key is empty; never for production
HEADER = ["phone", "plate", "class"]
TAG_CHARS = 16              # 64 bits of HMAC: each guess costs a TCP round trip and is counted
MAX_CODE_CHARS = 255        # a 2019 auth code's length is one byte
MAX_PLATE_CHARS = 32        # plates run to 8 characters, a VIN (plate colour 0) to 17
MAX_FILE_BYTES = 64 * 1024 * 1024
_DOMAIN = b"citywatch-jt808-auth\x00"
_PHONE = re.compile(r"[0-9]{1,20}")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")
_NOT_IN_PLATE = re.compile("[/+#|\x00-\x1f]")  # not in a vehicle id (MQTT topic levels) nor the tag's separator


@dataclass(frozen=True, slots=True)
class Terminal:
    """An admitted terminal: its normalised phone, its vehicle's plate (the fixes' vehicle id) and class."""

    phone: str
    plate: str
    vclass: str


def normalise_phone(digits: str) -> str:
    """Leading zeros stripped ("0" when all are zero), as the header's ``phone_normalised``."""
    return digits.lstrip("0") or "0"


def masked(phone: str) -> str:
    """A phone number for logs: its last 4 digits, the rest ``*`` (``*******5678``)."""
    return "*" * max(0, len(phone) - 4) + phone[-4:]


def plate_problem(plate: str) -> str:
    """What keeps ``plate`` from being a vehicle id ("" when nothing does)."""
    if not plate:
        return "is empty"
    if len(plate) > MAX_PLATE_CHARS:
        return f"has {len(plate)} characters, at most {MAX_PLATE_CHARS}"
    if _NOT_IN_PLATE.search(plate) or plate != plate.strip():
        return "holds a character a vehicle id cannot have (/ + # | a control character or edge spaces)"
    try:
        plate.encode("gbk")
    except UnicodeEncodeError:
        return "is not GBK text (a terminal could never send it)"
    return ""


def load_registry(path: str | Path) -> dict[str, Terminal]:
    """The registry file -> {normalised phone: Terminal}; :class:`ConfigError` naming file, line and field."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"terminal registry {p}: {size} bytes, at most {MAX_FILE_BYTES}")
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"terminal registry {p} (setting jt808.terminals): cannot read it "
                          f"({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"terminal registry {p}, line {line}: not UTF-8 text") from None
    return parse_registry(text, str(p))


def parse_registry(text: str, name: str = "<registry>") -> dict[str, Terminal]:
    """The registry's text (see :func:`load_registry`); ``name`` is the file named in errors."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    terminals: dict[str, Terminal] = {}
    line_of_phone: dict[str, int] = {}
    line_of_plate: dict[str, int] = {}

    def error(line: int, field: str | None, what: str) -> ConfigError:
        return ConfigError(f"terminal registry {name}, line {line}" + (f", field {field}" if field else "")
                           + f": {what}")

    try:
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header] != HEADER:
            raise error(1, None, f"the header must be {','.join(HEADER)}, got {','.join(header or [])[:80]!r}")
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(HEADER):
                raise error(line, None, f"expected {len(HEADER)} fields ({','.join(HEADER)}), got {len(row)}")
            phone, plate, vclass = (v.strip() for v in row)
            if not _PHONE.fullmatch(phone):
                raise error(line, "phone", f"{phone[:40]!r} is not 1-20 digits")
            problem = plate_problem(plate)
            if problem:
                raise error(line, "plate", f"{plate[:40]!r} {problem}")
            if vclass not in CLASSES:
                raise error(line, "class", f"{vclass[:40]!r} is not one of {', '.join(CLASSES)}")
            phone = normalise_phone(phone)
            if phone in line_of_phone:
                raise error(line, "phone", f"{phone} is listed already on line {line_of_phone[phone]}")
            if plate in line_of_plate:
                raise error(line, "plate", f"{plate} is listed already on line {line_of_plate[plate]}")
            line_of_phone[phone], line_of_plate[plate] = line, line
            terminals[phone] = Terminal(phone, plate, vclass)
    except csv.Error as exc:
        raise error(reader.line_num, None, f"not CSV: {exc}") from None
    return terminals


@dataclass(frozen=True, slots=True)
class Admitted:
    """The answer to a registration: the 0x8100 result, and the terminal with its code when it is 0."""

    result: RegistrationResult
    terminal: Terminal | None = None
    code: str = ""


class Admission:
    """Registration and authentication by the registry (``terminals``) and/or open registration."""

    def __init__(self, *, hmac_key: str, open_registration: bool, default_class: str = "other",
                 terminals: Mapping[str, Terminal] | None = None):
        if default_class not in CLASSES:
            raise ConfigError(f"setting jt808.default_class: {default_class!r} is not one of {', '.join(CLASSES)}")
        if not open_registration and terminals is None:
            raise ConfigError("setting jt808.terminals: a registry file is required unless "
                              "jt808.open_registration is true")
        self.open_registration, self.default_class = open_registration, default_class
        self.terminals: Mapping[str, Terminal] = terminals or {}
        self.is_dev_key = not hmac_key
        self._key = (hmac_key or DEV_HMAC_KEY).encode()

    @classmethod
    def from_settings(cls, s: Jt808Settings) -> Admission:
        terminals = load_registry(s.terminals) if s.terminals.strip() else None
        return cls(hmac_key=s.hmac_key, open_registration=s.open_registration, default_class=s.default_class,
                   terminals=terminals)

    def __repr__(self) -> str:
        return (f"Admission(open={self.open_registration}, terminals={len(self.terminals)}, "
                f"dev_key={self.is_dev_key})")

    def _tag(self, phone: str, plate: str) -> str:
        msg = _DOMAIN + phone.encode() + b"|" + plate.encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:TAG_CHARS]

    def issue(self, phone: str, plate: str) -> str:
        """The auth code of ``phone`` (normalised) with ``plate``."""
        return plate.encode().hex() + "." + self._tag(phone, plate)

    def _terminal(self, phone: str, plate: str) -> tuple[RegistrationResult, Terminal | None]:
        listed = self.terminals.get(phone)
        if listed is not None:
            if listed.plate != plate:
                return RegistrationResult.NO_SUCH_VEHICLE, None
            return RegistrationResult.OK, listed
        if not self.open_registration:
            return RegistrationResult.NO_SUCH_TERMINAL, None
        if plate_problem(plate):
            return RegistrationResult.NO_SUCH_VEHICLE, None
        return RegistrationResult.OK, Terminal(phone, plate, self.default_class)

    def register(self, phone: str, plate: str) -> Admitted:
        """0x0100 from ``phone`` (normalised) naming ``plate``: the result, and the terminal and code if OK."""
        result, terminal = self._terminal(phone, plate.strip())
        if terminal is None:
            return Admitted(result)
        return Admitted(result, terminal, self.issue(phone, terminal.plate))

    def authenticate(self, phone: str, code: str) -> Terminal | None:
        """The terminal ``code`` admits on ``phone`` (normalised), None if it does not (forged, another phone's,
        another key's, or a terminal no longer listed)."""
        if len(code) > MAX_CODE_CHARS:
            return None
        plate_hex, dot, tag = code.partition(".")
        if not dot or len(tag) != TAG_CHARS or not _HEX.fullmatch(plate_hex):
            return None
        try:
            plate = bytes.fromhex(plate_hex).decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not hmac.compare_digest(tag.encode(), self._tag(phone, plate).encode()):
            return None
        return self._terminal(phone, plate)[1]
