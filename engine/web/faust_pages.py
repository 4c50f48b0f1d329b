"""Faust's own web pages are off on every worker: they answer anyone, without an API key.

Faust mounts ``/table/`` (table names and contents: ``/table/tracks/<plate>/`` is a vehicle's live
position), ``/router/`` (every worker's address and partitions), ``/graph`` (the service tree), the
statistics (``/``, ``/assignment/``) and ``/performance/``. :data:`OFF` (settings for ``faust.App``)
turns each of them off. With the statistics off Faust puts a ``{"status": "OK"}`` index at ``/``
instead, where the one-map page is; :class:`Web` leaves that out too. Workers answer each other's
table lookups by forwarding the request itself (``app.router.route_req``), not through these pages.
"""

from __future__ import annotations

from typing import Any

from faust.web.drivers.aiohttp import Web as AiohttpWeb

OFF: dict[str, Any] = dict(web_router_enabled=False, web_tables_enabled=False, web_graph_enabled=False,
                           web_stats_enabled=False, web_metrics_enabled=False)


class Web(AiohttpWeb):
    """Faust's aiohttp web server without its production index at ``/``."""

    production_blueprints = ()
