"""The one-map's HTTP routes, on the worker's web server (``web.port``).

* ``GET /`` (and ``/onemap``) -> the page; ``/onemap/static/...`` its assets (shipped in the package).
* ``GET /api/v1/onemap/stream`` -> server-sent events: a ``snapshot``, then a ``delta`` per tick.
* ``GET /api/v1/onemap/snapshot`` -> the snapshot as JSON (for scripts and checks).
* ``GET /api/v1/onemap/vehicles/{vehicle_id}/track`` -> the vehicle's recent fixes (memory only).

All read-only. The page and its assets are public (no data in them); the
stream, the snapshot and the tracks show where every vehicle is (personal
information under PIPL) and need an ``operator`` API key (or ``admin``;
:mod:`engine.web.auth`): in a header, or in the ``citywatch_key`` cookie the
page sets from its key form (EventSource cannot send headers; keys in URLs
are not accepted). 401 / 403 otherwise, counted in
``citywatch_http_refused_total{reason}``. :class:`Handlers` works on plain
aiohttp requests, so the same code serves the Faust worker (:func:`register`)
and the benchmark's bare aiohttp app (:func:`aiohttp_app`), both behind the
same :class:`~engine.web.guard.Guard`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import faust
import orjson
from aiohttp import web
from faust.web import View
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from engine.onemap.push import RESYNC, RETRY_MS, Hub
from engine.web.guard import Guard

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/api/v1/onemap"
HEARTBEAT_S = 15.0
MAX_ID_CHARS = 64
WATCH_ROLES = ("operator",)  # admin may too
WATCH_ACTION = "watch the one-map"


def watching(guard: Guard) -> Callable[[Any], Any]:
    """The check of every data route: an operator's (or admin's) key, in a header or the page's cookie."""
    return guard.requires(*WATCH_ROLES, action=WATCH_ACTION, key_in_cookie=True)


class Handlers:
    def __init__(self, hub: Hub):
        self.hub = hub
        self._index = (STATIC / "index.html").read_bytes()

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(body=self._index, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def snapshot(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.hub.view.snapshot()), content_type="application/json")

    async def track(self, request: web.Request, vehicle_id: str) -> web.Response:
        doc = self.hub.view.track(vehicle_id) if 0 < len(vehicle_id) <= MAX_ID_CHARS else None
        if doc is None:
            return web.json_response({"error": "not_found", "reason": "no such vehicle on the map"}, status=404)
        return web.Response(body=orjson.dumps(doc), content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        hub = self.hub
        client = hub.subscribe()
        if client is None:
            return web.json_response({"error": "unavailable", "reason": "too many browsers on this worker, or it "
                                      "is stopping; try again or use another worker"}, status=503)
        try:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                               "X-Accel-Buffering": "no"})
            await resp.prepare(request)
            retry = f"retry: {RETRY_MS}\n\n".encode()  # how long the browser waits before reconnecting
            hub.sent(retry)
            await resp.write(retry + hub.snapshot_message())
            while True:
                try:
                    msg = await asyncio.wait_for(client.queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    msg = b": keepalive\n\n"
                if msg is None:
                    break
                if msg is RESYNC:
                    msg = hub.snapshot_message()
                else:
                    hub.sent(msg)
                await resp.write(msg)
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        finally:
            hub.unsubscribe(client)
        return resp


def register(app: faust.App, handlers: Handlers, guard: Guard) -> None:
    """The routes on the Faust worker's web server (aiohttp driver); the data routes behind ``guard``."""
    watch = watching(guard)

    @app.page("/")
    class Page(View):
        async def get(self, request: web.Request) -> web.Response:
            return await handlers.index(request)

    @app.page("/onemap")
    class PageAlias(View):
        async def get(self, request: web.Request) -> web.Response:
            return await handlers.index(request)

    @app.page(f"{PREFIX}/stream")
    class Stream(View):
        @watch
        async def get(self, request: web.Request) -> web.StreamResponse:
            return await handlers.stream(request)

    @app.page(f"{PREFIX}/snapshot")
    class Snapshot(View):
        @watch
        async def get(self, request: web.Request) -> web.Response:
            return await handlers.snapshot(request)

    @app.page(f"{PREFIX}/vehicles/{{vehicle_id}}/track")
    class Track(View):
        @watch
        async def get(self, request: web.Request, vehicle_id: str) -> web.Response:
            return await handlers.track(request, vehicle_id)

    server = cast(AiohttpWeb, app.web)  # faust types app.web as its driver base; the workers run the aiohttp one
    server.add_static("/onemap/static/", STATIC)
    server.web_app.on_shutdown.append(handlers.hub.close)  # open streams end before the server waits for them


class _PlainView:
    """What :class:`Guard` needs of a faust ``View`` (its ``json`` answer), for bare aiohttp handlers."""

    @staticmethod
    def json(value: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response(value, status=status, headers=headers)


def _plain(guard: Guard, handler: Callable[..., Awaitable[web.StreamResponse]]) -> Any:
    @watching(guard)
    async def checked(view: Any, request: web.Request, **match: str) -> web.StreamResponse:
        return await handler(request, **match)

    async def route(request: web.Request) -> web.StreamResponse:
        return await checked(_PlainView, request, **request.match_info)

    return route


def aiohttp_app(handlers: Handlers, guard: Guard) -> web.Application:
    """The same routes on a bare aiohttp application (benchmarks, tests), behind the same ``guard``."""
    wa = web.Application()
    wa.router.add_get("/", handlers.index)
    wa.router.add_get(f"{PREFIX}/stream", _plain(guard, handlers.stream))
    wa.router.add_get(f"{PREFIX}/snapshot", _plain(guard, handlers.snapshot))
    wa.router.add_get(f"{PREFIX}/vehicles/{{vehicle_id}}/track", _plain(guard, handlers.track))
    wa.router.add_static("/onemap/static/", STATIC)
    wa.on_shutdown.append(handlers.hub.close)
    return wa
