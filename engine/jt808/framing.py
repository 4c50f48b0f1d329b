"""JT/T 808 frames on a byte stream: 0x7e delimiters, 0x7d escaping, the XOR check code, and ``FrameReader``.

On the wire a frame is ``7e <escaped(header + body + check code)> 7e``; the check code is the XOR of every
unescaped header and body byte. Escaping turns 0x7d into 0x7d 0x01 and 0x7e into 0x7d 0x02, so the content
between two delimiters never holds a 0x7e.
"""

from __future__ import annotations

from functools import reduce
from operator import xor

from engine.jt808.header import MAX_BODY_LENGTH, MAX_HEADER_BYTES, FrameError

FLAG = 0x7E
ESCAPE = 0x7D
_FLAG_BYTE = b"\x7e"

#: The longest escaped content between two delimiters a valid frame can have: every byte of the longest
#: header, body and check code escaped to two.
DEFAULT_MAX_FRAME_BYTES = 2 * (MAX_HEADER_BYTES + MAX_BODY_LENGTH + 1)


def check_code(data: bytes) -> int:
    """The XOR of every byte of ``data`` (unescaped header + body).

    >>> check_code(bytes([0x01, 0x02, 0x04]))
    7
    """
    return reduce(xor, data, 0)


def escape(data: bytes) -> bytes:
    """0x7d -> 0x7d 0x01, then 0x7e -> 0x7d 0x02.

    >>> escape(bytes.fromhex("307e087d55")).hex()
    '307d02087d0155'
    """
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def unescape_prefix(data: bytes) -> tuple[bytes, str]:
    """``data`` unescaped up to its first bad escape, and what is wrong there ("" when nothing is).

    A bad escape is 0x7d followed by anything but 0x01/0x02, a 0x7d at the end, or a bare 0x7e.
    """
    flag = data.find(FLAG)
    limit = len(data) if flag < 0 else flag
    out = bytearray()
    at = 0
    while True:
        j = data.find(ESCAPE, at, limit)
        if j < 0:
            out += data[at:limit]
            break
        out += data[at:j]
        if j + 1 >= len(data):
            return bytes(out), f"trailing 0x7d at offset {j}"
        follower = data[j + 1]
        if follower == 0x01:
            out.append(ESCAPE)
        elif follower == 0x02:
            out.append(FLAG)
        else:
            return bytes(out), f"0x7d followed by 0x{follower:02x} at offset {j}"
        at = j + 2
    if flag >= 0:
        return bytes(out), f"unescaped 0x7e at offset {flag}"
    return bytes(out), ""


def unescape(data: bytes) -> bytes:
    """The reverse of :func:`escape`; ``FrameError`` ``bad_escape`` on a bad escape.

    >>> unescape(bytes.fromhex("307d02087d0155")).hex()
    '307e087d55'
    """
    out, problem = unescape_prefix(data)
    if problem:
        raise FrameError("bad_escape", problem)
    return out


def wrap(payload: bytes) -> bytes:
    """The wire frame of an unescaped header + body: check code appended, escaped, between delimiters."""
    return _FLAG_BYTE + escape(payload + bytes([check_code(payload)])) + _FLAG_BYTE


class FrameReader:
    """Splits a TCP byte stream into frames: ``feed(chunk)`` -> the escaped contents of the frames it completed
    (bytes, without the delimiters) and ``FrameError("oversize")`` for each frame above ``max_frame_bytes``.

    Bytes before the first 0x7e are skipped (counted in ``garbage_bytes``). After that every 0x7e is a boundary:
    the content between two is a frame, an empty one (a closing 0x7e followed by the next opening 0x7e) is
    skipped. A frame whose content passes ``max_frame_bytes`` is reported as soon as it does and dropped; the
    reader holds none of it and starts again after the next 0x7e, so it never buffers more than
    ``max_frame_bytes``. Stray bytes between a closing and the next opening 0x7e come out as a frame that fails
    to decode.

    >>> r = FrameReader()
    >>> r.feed(bytes.fromhex("ff7e0102")), r.feed(bytes.fromhex("037e7e04057e"))
    ([], [b'\\x01\\x02\\x03', b'\\x04\\x05'])
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
        if max_frame_bytes < 1:
            raise ValueError(f"max_frame_bytes {max_frame_bytes}: at least 1")
        self.max_frame_bytes = max_frame_bytes
        self.garbage_bytes = 0
        self._buf = bytearray()
        self._synced = False  # an opening 0x7e has been seen
        self._discarding = False  # inside an oversize frame, waiting for the next 0x7e

    @property
    def buffered(self) -> int:
        """Bytes of the frame in progress held by the reader."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        out: list[bytes | FrameError] = []
        at, n = 0, len(data)
        if not self._synced:
            first = data.find(FLAG)
            if first < 0:
                self.garbage_bytes += n
                return out
            self.garbage_bytes += first
            self._synced = True
            at = first + 1
        while at <= n:
            j = data.find(FLAG, at)
            end = n if j < 0 else j
            if not self._discarding and end > at:
                if len(self._buf) + end - at > self.max_frame_bytes:
                    out.append(FrameError("oversize", f"frame content above {self.max_frame_bytes} bytes"))
                    self._buf.clear()
                    self._discarding = True
                else:
                    self._buf += data[at:end]
            if j < 0:
                break
            if self._discarding:
                self._discarding = False
            elif self._buf:
                out.append(bytes(self._buf))
                self._buf.clear()
            at = j + 1
        return out
