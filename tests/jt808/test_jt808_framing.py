"""Escaping, the check code, and FrameReader over a TCP stream cut anywhere."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.jt808.codec import decode_frame
from engine.jt808.framing import FrameReader, check_code, escape, unescape
from engine.jt808.header import FrameError
from tests.jt808.helpers import PHONE_2013, header_2013, location_body, on_wire, stuff, xor_all

PROPERTY = settings(max_examples=200, deadline=None)


def _frames() -> list[bytes]:
    """Three frames: a heartbeat, a location whose serial is 0x7e, a location whose altitude is 0x7d."""
    out = [on_wire(header_2013(0x0002, 0, PHONE_2013, 1))]
    for serial, altitude in ((0x7E, 10), (3, 0x7D)):
        body = location_body(altitude=altitude)
        out.append(on_wire(header_2013(0x0200, len(body), PHONE_2013, serial) + body))
    return out


FRAMES = _frames()
INNER = [f[1:-1] for f in FRAMES]
GARBAGE = b"\x00\x11GET / HTTP/1.1\r\n\x7d\x7d"  # no 0x7e: all skipped before the first delimiter
STREAM = GARBAGE + b"".join(FRAMES)


def _feed(reader: FrameReader, chunks: list[bytes]) -> list[bytes | FrameError]:
    return [out for chunk in chunks for out in reader.feed(chunk)]


@given(st.binary(max_size=300))
@PROPERTY
def test_escape_matches_hand_stuffing_and_unescape_reverses_it(data):
    assert escape(data) == stuff(data)
    assert 0x7E not in escape(data)
    assert unescape(escape(data)) == data
    assert check_code(data) == xor_all(data)


def test_whole_stream_gives_the_frames_and_counts_the_garbage():
    reader = FrameReader()
    assert reader.feed(STREAM) == INNER
    assert reader.garbage_bytes == len(GARBAGE) and reader.buffered == 0
    assert [decode_frame(f)[0].serial for f in INNER] == [1, 0x7E, 3]


def test_byte_by_byte_gives_the_same_frames():
    reader = FrameReader()
    assert _feed(reader, [STREAM[i:i + 1] for i in range(len(STREAM))]) == INNER


@given(st.lists(st.integers(0, len(STREAM)), max_size=40))
@PROPERTY
def test_any_chunking_gives_the_same_frames(cuts):
    points = sorted(set(cuts) | {0, len(STREAM)})
    chunks = [STREAM[a:b] for a, b in zip(points, points[1:])]
    assert _feed(FrameReader(), chunks) == INNER


def test_random_chunkings_with_a_fixed_seed():
    rng = random.Random(808)
    for _ in range(300):
        at, chunks = 0, []
        while at < len(STREAM):
            n = rng.randint(1, 25)
            chunks.append(STREAM[at:at + n])
            at += n
        assert _feed(FrameReader(), chunks) == INNER


def test_shared_and_doubled_delimiters():
    a, b, c = INNER
    # one 0x7e closing a and opening b; empty frames between doubled delimiters are skipped
    stream = b"\x7e\x7e" + a + b"\x7e" + b + b"\x7e\x7e\x7e" + c + b"\x7e\x7e"
    assert FrameReader().feed(stream) == INNER


def test_joining_mid_frame_resynchronises():
    """A connection read from the middle of a frame: its tail before the first 0x7e is garbage."""
    stream = FRAMES[0][5:] + FRAMES[1] + FRAMES[2]
    out = FrameReader().feed(stream)
    assert out == INNER[1:]


def test_oversize_is_reported_once_and_never_buffered():
    limit = 64
    big = b"\x7e" + bytes(range(1, 100)) * 3 + b"\x7e"  # 297 bytes of content, no 0x7e inside
    stream = big + FRAMES[1] + big[:-1] + FRAMES[2]  # the second big frame shares its closing delimiter
    assert all(len(f) - 2 <= limit for f in FRAMES[1:])
    reader = FrameReader(max_frame_bytes=limit)
    out: list[bytes | FrameError] = []
    for i in range(len(stream)):
        out += reader.feed(stream[i:i + 1])
        assert reader.buffered <= limit
    assert [o.reason if isinstance(o, FrameError) else o for o in out] == ["oversize", INNER[1], "oversize",
                                                                            INNER[2]]
    whole = FrameReader(max_frame_bytes=limit).feed(stream)
    assert [o.reason if isinstance(o, FrameError) else o for o in whole] == ["oversize", INNER[1], "oversize",
                                                                              INNER[2]]


def test_a_frame_exactly_at_the_limit_passes():
    inner = INNER[2]
    assert FrameReader(max_frame_bytes=len(inner)).feed(FRAMES[2]) == [inner]
    out = FrameReader(max_frame_bytes=len(inner) - 1).feed(FRAMES[2])
    assert len(out) == 1 and isinstance(out[0], FrameError) and out[0].reason == "oversize"


def test_garbage_only_buffers_nothing():
    reader = FrameReader(max_frame_bytes=16)
    assert reader.feed(bytes(10_000)) == [] and reader.buffered == 0 and reader.garbage_bytes == 10_000


def test_max_frame_bytes_must_be_positive():
    with pytest.raises(ValueError):
        FrameReader(max_frame_bytes=0)
