"""The fleet's id -> row index against a dict: same rows for any adds and lookups, colliding hashes included."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.geofence.id_index import IdIndex

IDS = st.text(alphabet="闽DAB0123", min_size=1, max_size=4)
STEPS = st.lists(st.tuples(st.booleans(), st.lists(IDS, max_size=12)), max_size=30)


def collide(vid: str) -> int:
    return len(vid) % 3   # most ids share a hash with others


def run(index: IdIndex, steps: list[tuple[bool, list[str]]]) -> None:
    ref: dict[str, int] = {}
    for is_add, ids in steps:
        if is_add:
            fresh = [v for v in dict.fromkeys(ids) if v not in ref]
            rows = index.add(ids).tolist()
            assert rows == list(range(len(ref), len(ref) + len(fresh)))
            ref.update(zip(fresh, rows))
        assert index.lookup(ids).tolist() == [ref.get(v, -1) for v in ids]
        assert [index.get(v) for v in ids] == [ref.get(v) for v in ids]
        assert all((v in index) == (v in ref) for v in ids)
        assert len(index) == len(ref) and list(index.ids) == list(ref)


@settings(max_examples=150, deadline=None)
@given(STEPS)
def test_rows_match_a_dict(steps):
    run(IdIndex(capacity=2), steps)


@settings(max_examples=150, deadline=None)
@given(STEPS)
def test_rows_match_a_dict_when_hashes_collide(steps):
    run(IdIndex(capacity=2, hash_of=collide), steps)


def test_a_missing_id_is_a_key_error():
    index = IdIndex()
    index.add(["闽D1"])
    with pytest.raises(KeyError, match="闽D2"):
        index["闽D2"]
