"""Every worker's read model of all tasks, for Open311 reads: the compacted ``tasks`` topic, followed.

Any worker answers ``GET requests.json`` and ``GET requests/{id}.json`` from
here, whatever partitions it owns. It is a few milliseconds behind the
owners' tables; a worker that answers a POST or an event also folds the
outcome's copy of the task in at once, so a client reading back through the
same worker sees its own write. Updates of one task are ordered by their
``version``. ``tokens`` remembers which request each recent report became
(Open311 ``GET tokens/{token}.json``), from the outcomes this worker saw.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

TOKENS_KEPT = 100_000


class TaskDirectory:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.tokens: OrderedDict[str, str] = OrderedDict()
        self.ready = asyncio.Event()  # the topic was read to its end once

    def upsert(self, doc: dict[str, Any]) -> bool:
        """Keep ``doc`` unless an equal or newer version of the task is held; returns whether it was kept."""
        sid = doc.get("service_request_id")
        if not isinstance(sid, str):
            return False
        held = self.docs.get(sid)
        if held is not None and int(held.get("version", 0)) >= int(doc.get("version", 0)):
            return False
        self.docs[sid] = doc
        return True

    def remove(self, sid: str) -> None:
        self.docs.pop(sid, None)

    def get(self, sid: str) -> dict[str, Any] | None:
        return self.docs.get(sid)

    def all(self) -> Iterable[dict[str, Any]]:
        return self.docs.values()

    def remember_token(self, token: str, sid: str) -> None:
        self.tokens[token] = sid
        self.tokens.move_to_end(token)
        while len(self.tokens) > TOKENS_KEPT:
            self.tokens.popitem(last=False)

    def __len__(self) -> int:
        return len(self.docs)
