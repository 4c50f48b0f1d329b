"""``GET /health`` on every worker's web server: is this worker ready to take its share of the work?

* ``200 {"status": "ready", "partitions": [...], "zones": n}`` once the consumer group has given it
  partitions and it is not rebalancing (Faust counts restoring its tables as part of that);
  ``partitions`` are the partition numbers it owns, ``zones`` how many zones its index holds. The
  zones topic is read to its end before the web server starts, so a worker that answers has its zones;
  a city with no zones loaded yet is still ready (vetting, reports and offline checks need none) and
  says ``"zones": 0``.
* ``503 {"status": "starting" | "rebalancing" | "stopping", "why": ..., ...}`` otherwise.

Public (no API key): load balancers and orchestrators probe it. It shows counts and partition
numbers only, no data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.web import Request, Response, View

PATH = "/health"


Counts = Callable[[], dict[str, Any]]  # what the worker holds, e.g. {"zones": n}: added to every answer


def readiness(app: faust.App, counts: Counts) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body of ``GET /health`` for ``app`` now."""
    assigned = app.assignor.assigned_actives()
    doc: dict[str, Any] = {"partitions": sorted({tp.partition for tp in assigned}), **counts()}
    if app.should_stop:
        return 503, {"status": "stopping", "why": "the worker is shutting down", **doc}
    if not assigned:
        return 503, {"status": "starting", "why": "no partitions assigned yet (joining the consumer group "
                     f"{app.conf.id!r})", **doc}
    if app.rebalancing:
        return 503, {"status": "rebalancing", "why": "partitions are moving between workers or tables are "
                     "being restored", **doc}
    return 200, {"status": "ready", **doc}


def register(app: faust.App, counts: Counts) -> None:
    @app.page(PATH)
    class Health(View):
        async def get(self, request: Request) -> Response:
            status, doc = readiness(app, counts)
            return self.json(doc, status=status)
