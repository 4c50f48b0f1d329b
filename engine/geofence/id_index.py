"""Vehicle id -> row of a fleet, in arrays: about 24 bytes an id besides the id itself.

A ``dict[str, int]`` costs ~100 bytes an entry here (its hash table slot and a
Python int per row); at a million vehicles that is a tenth of a gigabyte. This
index keeps the ids' 64-bit hashes sorted in one array with their rows beside
them, and the ids by row in an object array. A lookup hashes the batch's ids,
finds the candidates with ``searchsorted`` and checks each against the id
stored at its row, all vectorised, so two ids with one hash never share a
row: an id whose hash an earlier id already has is kept in a small dict
instead (with 64-bit hashes, about one id in 10^13 at a million vehicles).

Hashes are Python's (``hash(str)``, salted per process): the index lives in
memory and is rebuilt from the ids when a partition is restored.

>>> ix = IdIndex()
>>> ix.add(["闽D1", "闽D2", "闽D1"]).tolist()
[0, 1]
>>> ix.lookup(["闽D2", "nobody", "闽D1"]).tolist()
[1, -1, 0]
>>> ix["闽D2"], "闽D3" in ix, len(ix), list(ix.ids)
(1, False, 2, ['闽D1', '闽D2'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np


class IdIndex:
    """Rows ``0..len-1`` in the order ids were added."""

    def __init__(self, capacity: int = 1024, hash_of: Callable[[str], int] = hash):
        self._hash_of = hash_of   # tests pass a colliding one
        self._ids = np.empty(capacity, dtype=object)
        self._n = 0
        self._hash = np.empty(0, dtype=np.int64)   # sorted
        self._row = np.empty(0, dtype=np.intp)     # the row of each hash
        self._clash: dict[str, int] = {}          # ids whose hash an earlier id has

    def __len__(self) -> int:
        return self._n

    @property
    def ids(self) -> np.ndarray:
        """The id of each row (a view: append-only, so it stays valid until the next add)."""
        return self._ids[:self._n]

    def lookup(self, ids: Sequence[str]) -> np.ndarray:
        """The row of each id, -1 for an id not in the index."""
        m = len(ids)
        out = np.full(m, -1, dtype=np.intp)
        if not m or not self._n:
            return out
        h = self._hashes(ids)
        at = np.searchsorted(self._hash, h)
        np.minimum(at, len(self._hash) - 1, out=at)
        hit = np.flatnonzero(self._hash[at] == h)
        if len(hit):
            rows = self._row[at[hit]]
            wanted = np.empty(len(hit), dtype=object)
            wanted[:] = [ids[i] for i in hit.tolist()] if len(hit) < m else ids
            same = self._ids[rows] == wanted
            out[hit[same]] = rows[same]
        if self._clash:
            get = self._clash.get
            for i in np.flatnonzero(out < 0).tolist():
                out[i] = get(ids[i], -1)
        return out

    def get(self, vid: str, default: int | None = None) -> int | None:
        """One id's row (the per-fix path's lookup: no arrays built)."""
        n = len(self._hash)
        if n:
            h = self._hash_of(vid)
            i = int(self._hash.searchsorted(h))
            if i < n and self._hash[i] == h:
                r = int(self._row[i])
                if self._ids[r] == vid:
                    return r
        return self._clash.get(vid, default) if self._clash else default

    def __getitem__(self, vid: str) -> int:
        r = self.get(vid)
        if r is None:
            raise KeyError(vid)
        return r

    def __contains__(self, vid: object) -> bool:
        return isinstance(vid, str) and self.get(vid) is not None

    def add(self, ids: Iterable[str]) -> np.ndarray:
        """Rows for the ids not in the index yet (each once, in order); returns them."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return np.empty(0, dtype=np.intp)
        new = [v for v, r in zip(ids, self.lookup(ids).tolist()) if r < 0]
        start, k = self._n, len(new)
        if not k:
            return np.empty(0, dtype=np.intp)
        if start + k > len(self._ids):
            grown = np.empty(max(start + k, len(self._ids) + len(self._ids) // 2), dtype=object)
            grown[:start] = self._ids[:start]
            self._ids = grown
        self._ids[start:start + k] = new
        self._n = start + k
        rows = np.arange(start, start + k, dtype=np.intp)
        h = self._hashes(new)
        order = np.argsort(h, kind="stable")
        h, r = h[order], rows[order]
        taken = np.zeros(k, dtype=bool)
        taken[1:] = h[1:] == h[:-1]                                   # a second id with one hash in this batch
        at = np.searchsorted(self._hash, h)
        if len(self._hash):
            inside = at < len(self._hash)
            taken[inside] |= self._hash[at[inside]] == h[inside]       # a hash an earlier id has
        for i in np.flatnonzero(taken).tolist():
            self._clash[new[int(order[i])]] = int(r[i])
        keep = ~taken
        self._hash = np.insert(self._hash, at[keep], h[keep])
        self._row = np.insert(self._row, at[keep], r[keep])
        return rows

    def _hashes(self, ids: Sequence[str]) -> np.ndarray:
        return np.fromiter(map(self._hash_of, ids), dtype=np.int64, count=len(ids))

    def nbytes(self) -> int:
        """The index's arrays (not the id strings, which the fleet's records keep anyway)."""
        return int(self._ids.nbytes + self._hash.nbytes + self._row.nbytes)
