"""The push channel without brokers: the hub's ticks and queues, and the real SSE handler over HTTP
(the bare aiohttp app behind the same API-key guard as the worker's routes)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import orjson
from aiohttp import ClientSession, ClientTimeout
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, generate_latest

from engine.core.clock import FakeClock
from engine.core.metrics import WorkerMetrics
from engine.onemap.api import STATIC, Handlers, aiohttp_app
from engine.onemap.push import RESYNC, Hub, sse
from engine.onemap.settings import OneMapSettings
from engine.onemap.view import OneMapView
from engine.settings import Settings
from engine.telemetry.models import Fix
from engine.web.guard import Guard
from tests.conftest import metric_value

T0 = 1_788_832_800.0
OPERATOR, CLERK, ADMIN = "operator-key-0b1d8e2f", "clerk-key-5c7a9e31d2", "admin-key-e4f60a7b93"
WEB = Settings().replace(web={"api_keys": {"watch_1": {"api_key": OPERATOR, "role": "operator"},
                                           "clerk_1": {"api_key": CLERK, "role": "clerk"},
                                           "boss": {"api_key": ADMIN, "role": "admin"}}}).web
AUTH = {"X-API-Key": OPERATOR}


def hub(**cfg) -> tuple[Hub, FakeClock, WorkerMetrics]:
    clock = FakeClock(T0)
    metrics = WorkerMetrics(CollectorRegistry())
    return Hub(OneMapView(OneMapSettings(**cfg), clock=clock), metrics), clock, metrics


def move(h: Hub, vid: str, ts: float, lat: float = 24.5) -> None:
    h.view.apply_fixes([Fix(vehicle_id=vid, ts=ts, lat=lat, lon=118.1, vclass="taxi")])


def _text(metrics: WorkerMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def server(h: Hub, metrics: WorkerMetrics) -> TestServer:
    return TestServer(aiohttp_app(Handlers(h), Guard(WEB, lambda reason: metrics.http_refused.labels(reason).inc())))


def events(raw: bytes) -> list[tuple[str, dict]]:
    return [(m.group(1).decode(), orjson.loads(m.group(2)))
            for m in re.finditer(rb"event: (\w+)\ndata: (.*)\n\n", raw)]


def test_one_tick_encodes_one_delta_for_every_browser_and_nothing_when_idle():
    h, _, metrics = hub()
    a, b = h.subscribe(), h.subscribe()
    assert h.tick() is None and a.queue.empty()
    move(h, "闽DT0001", T0)
    msg = h.tick()
    assert a.queue.get_nowait() is msg and b.queue.get_nowait() is msg
    [(kind, delta)] = events(msg)
    assert kind == "delta" and delta["nv"] == [[0, "闽DT0001", 4]]
    assert metric_value(_text(metrics), "citywatch_onemap_clients") == 2
    assert metric_value(_text(metrics), "citywatch_onemap_vehicles") == 1


def test_a_browser_that_falls_behind_is_resynced_with_a_snapshot_not_buffered_without_bound():
    h, _, metrics = hub(client_queue=3)
    slow, fast = h.subscribe(), h.subscribe()
    for i in range(10):
        move(h, "闽DT0001", T0 + i)
        h.tick()
        while not fast.queue.empty():
            fast.queue.get_nowait()
    backlog = []
    while not slow.queue.empty():
        backlog.append(slow.queue.get_nowait())
    assert RESYNC in backlog and len(backlog) <= 4
    assert slow.resyncs >= 1 and fast.resyncs == 0
    assert metric_value(_text(metrics), "citywatch_onemap_client_resyncs_total") == slow.resyncs


def test_browsers_beyond_max_clients_are_refused_and_close_ends_every_stream():
    h, _, _ = hub(max_clients=2)
    a, b = h.subscribe(), h.subscribe()
    assert h.subscribe() is None
    h.unsubscribe(b)
    assert h.subscribe() is not None
    asyncio.run(h.close())
    assert a.queue.get_nowait() is None and h.subscribe() is None


def test_sse_framing_is_one_event_with_one_line_of_json():
    assert sse("delta", {"a": "x\ny"}) == b'event: delta\ndata: {"a":"x\\ny"}\n\n'


async def _read_until(resp, buf: bytearray, count: int) -> list[tuple[str, dict]]:
    while len(events(bytes(buf))) < count:
        buf.extend(await asyncio.wait_for(resp.content.readany(), 10))
    return events(bytes(buf))


def test_the_stream_sends_a_snapshot_then_deltas_and_counts_every_byte():
    async def run() -> None:
        h, clock, metrics = hub()
        move(h, "闽DT0001", T0)
        h.tick()
        srv = server(h, metrics)
        await srv.start_server()
        try:
            async with ClientSession(timeout=ClientTimeout(total=30)) as http:
                async with http.get(srv.make_url("/api/v1/onemap/stream"), headers=AUTH) as resp:
                    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
                    buf = bytearray()
                    [(kind, snap)] = await _read_until(resp, buf, 1)
                    assert kind == "snapshot" and snap["seq"] == 1 and snap["vehicles"][0][1] == "闽DT0001"
                    move(h, "闽DT0001", T0 + 1, lat=24.6)
                    clock.advance(1)
                    h.tick()
                    got = await _read_until(resp, buf, 2)
                    assert got[1][0] == "delta" and got[1][1]["seq"] == 2 and got[1][1]["v"][0][1] == 24.6
                    assert metric_value(_text(metrics), "citywatch_onemap_bytes_total") == len(buf)
                    assert metric_value(_text(metrics), "citywatch_onemap_messages_total", type="snapshot") == 1
                    assert metric_value(_text(metrics), "citywatch_onemap_messages_total", type="delta") == 1
                    await h.close()  # what the worker does on shutdown: the stream ends by itself
                    assert await asyncio.wait_for(resp.content.read(), 10) == b""
            assert h.clients == set()
        finally:
            await srv.close()

    asyncio.run(run())


def test_the_page_its_assets_and_a_vehicle_track_are_served():
    async def run() -> None:
        h, _, metrics = hub(track_fixes=2)
        for i in range(3):
            move(h, "闽DT0001", T0 + i, lat=24.5 + i / 100)
        srv = server(h, metrics)
        await srv.start_server()
        try:
            async with ClientSession(timeout=ClientTimeout(total=30)) as http:
                async with http.get(srv.make_url("/")) as r:  # the page and its assets: no key
                    page = await r.text()
                    assert r.status == 200 and r.content_type == "text/html" and "Citywatch one-map" in page
                assets = re.findall(r'(?:src|href)="(/onemap/static/[^"]+)"', page)
                assert len(assets) == 4
                for path in assets:
                    async with http.get(srv.make_url(path)) as r:
                        assert r.status == 200, path
                        assert await r.read() == (STATIC / path.removeprefix("/onemap/static/")).read_bytes()
                async with http.get(srv.make_url("/api/v1/onemap/vehicles/闽DT0001/track"), headers=AUTH) as r:
                    assert r.status == 200
                    assert (await r.json())["points"] == [[T0 + 1, 24.51, 118.1], [T0 + 2, 24.52, 118.1]]
                async with http.get(srv.make_url("/api/v1/onemap/vehicles/nobody/track"), headers=AUTH) as r:
                    assert r.status == 404 and (await r.json())["error"] == "not_found"
                async with http.get(srv.make_url("/api/v1/onemap/snapshot"), headers=AUTH) as r:
                    assert (await r.json())["vehicles"][0][1] == "闽DT0001"
            assert metric_value(_text(metrics), "citywatch_http_refused_total", reason="missing_credentials") == 0
        finally:
            await srv.close()

    asyncio.run(run())


def test_the_page_loads_nothing_from_outside_the_package():
    for f in (STATIC / "index.html", STATIC / "onemap.js", STATIC / "onemap.css"):
        text = f.read_text(encoding="utf-8")
        assert not re.search(r"(?:src|href)=\"(?:https?:)?//", text), f
        assert "cdn" not in text.lower(), f
    vendored = Path(STATIC / "vendor" / "leaflet")
    assert (vendored / "leaflet.js").stat().st_size > 100_000 and (vendored / "LICENSE").exists()


DATA = ("/api/v1/onemap/stream", "/api/v1/onemap/snapshot", "/api/v1/onemap/vehicles/闽DT0001/track")


def cookie(key: str) -> dict[str, str]:
    return {"Cookie": f"lang=zh-CN; citywatch_key={key}"}


def test_the_data_needs_an_operator_key_in_a_header_or_the_page_cookie_never_in_the_url():
    """401 without or with an unknown key, 403 for another role, 200 for operator/admin; headers win; counted."""

    async def run() -> None:
        h, _, metrics = hub()
        move(h, "闽DT0001", T0)
        h.tick()
        srv = server(h, metrics)
        await srv.start_server()
        got: dict[tuple[str, str], int] = {}
        cases = {"none": {}, "unknown": {"X-API-Key": "not-a-key-7f3e9a1c"}, "unknown cookie": cookie("nope-8d2c4b6a1e"),
                 "clerk": {"Authorization": f"Bearer {CLERK}"}, "clerk cookie": cookie(CLERK),
                 "operator": {"Authorization": f"Bearer {OPERATOR}"}, "operator x-api-key": AUTH,
                 "operator cookie": cookie(OPERATOR), "admin": {"X-API-Key": ADMIN}, "admin cookie": cookie(ADMIN),
                 "header wins": {**cookie(OPERATOR), "X-API-Key": "not-a-key-7f3e9a1c"},
                 "header wins over a bad cookie": {**cookie("nope-8d2c4b6a1e"), **AUTH}}
        try:
            async with ClientSession(timeout=ClientTimeout(total=30)) as http:
                for path in DATA:
                    for name, headers in cases.items():
                        async with http.get(srv.make_url(path), headers=headers) as r:
                            got[path, name] = r.status
                            if r.status == 200 and path.endswith("/stream"):
                                first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 10)
                                assert first.startswith(b"retry: "), first
                            elif r.status != 200:
                                doc = await r.json()
                                assert doc["error"] == {401: "unauthorized", 403: "forbidden"}[r.status], doc
                                assert OPERATOR not in str(doc) and "nope" not in str(doc)
                                if r.status == 401:
                                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
                                else:
                                    assert "needs operator" in doc["reason"], doc
                    for query in (f"?api_key={OPERATOR}", f"?key={OPERATOR}", f"?citywatch_key={OPERATOR}"):
                        async with http.get(srv.make_url(path + query)) as r:
                            got[path, query] = r.status
        finally:
            await srv.close()
        for path in DATA:
            assert {name: got[path, name] for name in cases} == {
                "none": 401, "unknown": 401, "unknown cookie": 401, "clerk": 403, "clerk cookie": 403,
                "operator": 200, "operator x-api-key": 200, "operator cookie": 200, "admin": 200,
                "admin cookie": 200, "header wins": 401, "header wins over a bad cookie": 200}, path
            assert [got[path, q] for q in (f"?api_key={OPERATOR}", f"?key={OPERATOR}",
                                           f"?citywatch_key={OPERATOR}")] == [401, 401, 401], path
        text = _text(metrics)
        assert metric_value(text, "citywatch_http_refused_total", reason="missing_credentials") == 3 * (1 + 3)
        assert metric_value(text, "citywatch_http_refused_total", reason="unknown_credentials") == 3 * 3
        assert metric_value(text, "citywatch_http_refused_total", reason="forbidden") == 3 * 2
        assert h.clients == set()  # no refused request ever subscribed

    asyncio.run(run())
