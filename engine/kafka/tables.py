"""Faust tables keyed by raw bytes, seen as ``str``-keyed mappings.

Faust serialises a table's ``str`` keys as JSON (``b'"key"'``) whatever the
``Schema`` passed to it says, so with ``use_partitioner=True`` a key's
changelog partition would be the hash of the quoted key, not the partition
its records are produced to: state would be written, restored and routed
(``app.router``) on a different worker than the one that processes the
key (a person in vetting, a task or a grid cell in casework). A
``key_type=bytes`` table uses the raw key, and this adapter lets the
domains keep using ``str`` keys.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any


class StrKeys(MutableMapping[str, Any]):
    """``table`` with ``str`` keys, stored as their UTF-8 bytes."""

    def __init__(self, table: MutableMapping[bytes, Any]):
        self.table = table

    def __getitem__(self, key: str) -> Any:
        value = self.table.get(key.encode())
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self.table.get(key.encode())
        return default if value is None else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        return (k.decode() if isinstance(k, bytes) else str(k) for k in list(self.table.keys()))

    def __len__(self) -> int:
        return len(self.table)
