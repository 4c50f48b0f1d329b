"""Citizens reporting hazards and departments answering them, some of them late (``citywatch simulate-reports``).

:class:`Citizens` reports at ``reports.simulator.reports_per_min`` over Open311
HTTP (form-encoded) and MQTT (``mqtt_share``), at busy spots of the sample
grid; ``duplicate_share`` of the reports repeat a recent one a few metres away
(merged into its task). :class:`Departments` follow ``tasks.dispatch`` like a
department's system: each notified task is accepted, worked on and resolved,
then verified and closed by the grid office - on time, or (``late_share``)
after the deadline so that ``citywatch up`` shows escalations; a few
(``return_share``) are returned as not theirs and re-dispatched to the
city-wide department. Delays are fractions of the deadlines the notifications
carry, so the same simulator fits demo SLAs of seconds and real ones of hours.
Both only act through the public interfaces (HTTP, MQTT, Kafka).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import logging
import random
import signal
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger("simulators.reports")

# (lat, lon, what is there): busy roads of the sample grid (zones/grid) and two places off it.
SPOTS = [(24.4705, 118.1113, "Hubin South Road by the railway station"), (24.4560, 118.0850, "Zhongshan Road"),
         (24.4780, 118.1850, "Huandao East Road by the exhibition centre"), (24.4860, 118.1400, "Lianqian Road"),
         (24.4480, 118.1050, "Siming South Road"), (24.5300, 118.1300, "Gaoqi airport approach road"),
         (24.5150, 118.1000, "Xianyue Road"), (24.6410, 118.0970, "Jimei Avenue"),
         (24.7890, 118.1520, "Tong'an Huanshan Road")]
SERVICES = {"obstruction": (5, ["A shipping container left on the road", "A fallen load blocking a lane",
                                "Construction debris on the carriageway"]),
            "road_damage": (3, ["A deep pothole in the right lane", "The road surface has sunk"]),
            "manhole_cover": (2, ["A manhole cover is missing", "A drain cover is broken"]),
            "traffic_signal": (2, ["The traffic lights are dark", "The pedestrian signal is stuck on red"]),
            "fallen_tree": (2, ["A tree is down across the road after the storm"]),
            "streetlight": (1, ["Three street lights are out"]),
            "illegal_dumping": (1, ["Building rubble dumped on the pavement"])}


@dataclass(frozen=True)
class SimConfig:
    url: str
    reports_per_min: float = 12.0
    mqtt_share: float = 0.3
    duplicate_share: float = 0.2
    late_share: float = 0.3
    return_share: float = 0.05
    seed: int = 11
    api_key: str = ""
    city_wide: dict[str, str] = field(default_factory=dict)  # service -> the city-wide department (re-dispatch)


class Http:
    def __init__(self, base: str, api_key: str = ""):
        self.base, self.api_key = base.rstrip("/"), api_key

    def call(self, method: str, path: str, *, form: dict | None = None, body: dict | None = None) -> tuple[int, Any]:
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        data = None
        if form is not None:
            data, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw or b"null")
        except ValueError:
            return status, {"reason": raw[:200].decode(errors="replace")}


class Citizens:
    """Produces reports; ``send_http`` / ``send_mqtt`` are injected (no broker in unit tests)."""

    def __init__(self, cfg: SimConfig, send_http: Callable[[dict], Any], send_mqtt: Callable[[dict], Any]):
        self.cfg, self.send_http, self.send_mqtt = cfg, send_http, send_mqtt
        self.rng = random.Random(cfg.seed)
        self.recent: list[dict] = []
        self.sent = 0

    def next_report(self) -> dict:
        r = self.rng
        if self.recent and r.random() < self.cfg.duplicate_share:
            base = r.choice(self.recent[-20:])
            lat, lon = base["lat"] + r.uniform(-1e-4, 1e-4), base["long"] + r.uniform(-1e-4, 1e-4)
            return {**base, "lat": round(lat, 6), "long": round(lon, 6),
                    "description": base["description"] + " (still there)"}
        lat, lon, place = r.choice(SPOTS)
        codes, weights = list(SERVICES), [SERVICES[c][0] for c in SERVICES]
        code = r.choices(codes, weights)[0]
        report = {"service_code": code, "lat": round(lat + r.uniform(-0.004, 0.004), 6),
                  "long": round(lon + r.uniform(-0.004, 0.004), 6),
                  "description": f"{r.choice(SERVICES[code][1])}, {place}", "address_string": place}
        self.recent.append(report)
        return report

    def step(self) -> None:
        report = self.next_report()
        self.sent += 1
        if self.rng.random() < self.cfg.mqtt_share:
            self.send_mqtt({**report, "token": f"sim-{self.cfg.seed}-{self.sent}"})
        else:
            self.send_http({k: str(v) for k, v in report.items()})

    def interval(self) -> float:
        return self.rng.expovariate(self.cfg.reports_per_min / 60.0)


class Departments:
    """Answers ``tasks.dispatch`` notifications through the task events API, on a timetable of its own."""

    def __init__(self, cfg: SimConfig, act: Callable[[str, dict], tuple[int, Any]], now: Callable[[], float]):
        self.cfg, self.act, self.now = cfg, act, now
        self.rng = random.Random(cfg.seed + 1)
        self._queue: list[tuple[float, int, Callable[[], object]]] = []
        self._n = itertools.count()
        self.answered = self.late = 0

    def later(self, delay: float, fn: Callable[[], object]) -> None:
        heapq.heappush(self._queue, (self.now() + max(0.0, delay), next(self._n), fn))

    def due(self) -> list[Callable[[], object]]:
        out = []
        while self._queue and self._queue[0][0] <= self.now():
            out.append(heapq.heappop(self._queue)[2])
        return out

    def window(self, note: dict, key: str = "due_datetime") -> float:
        try:
            return max(1.0, datetime.fromisoformat(note[key]).timestamp() - datetime.fromisoformat(note["sent_at"]).
                       timestamp())
        except (KeyError, TypeError, ValueError):
            return 10.0

    def delay(self, window: float) -> float:
        """On time (20-70 % of the window) or, ``late_share`` of the time, after it (110-250 %)."""
        if self.rng.random() < self.cfg.late_share:
            self.late += 1
            return window * self.rng.uniform(1.1, 2.5)
        return window * self.rng.uniform(0.2, 0.7)

    def on_dispatch(self, note: dict) -> None:
        if note.get("kind") not in ("dispatched", "redispatched"):
            return
        sid, dept, window = note["service_request_id"], note["department"], self.window(note)
        if note["kind"] == "dispatched" and self.rng.random() < self.cfg.return_share:
            other = self.cfg.city_wide.get(note.get("service_code", ""))
            if other and other != dept:
                self.later(window * 0.3, lambda: self._return(sid, dept, other, window))
                return
        self.later(self.delay(window), lambda: self._accept(sid, dept))

    def _return(self, sid: str, dept: str, other: str, window: float) -> None:
        self.act(sid, {"action": "return", "department": dept, "note": "Not on a road we look after"})
        self.later(window * 0.2, lambda: self.act(sid, {"action": "redispatch", "department": other,
                                                        "by": "grid office"}))

    def _accept(self, sid: str, dept: str) -> None:
        status, doc = self.act(sid, {"action": "accept", "department": dept})
        if status != 200:
            return
        window = self.window({"due_datetime": doc.get("due_datetime"), "sent_at": doc.get("updated_datetime")})
        self.later(window * 0.1, lambda: self.act(sid, {"action": "start", "department": dept}))
        self.later(self.delay(window), lambda: self._resolve(sid, dept, window))

    def _resolve(self, sid: str, dept: str, window: float) -> None:
        status, _ = self.act(sid, {"action": "resolve", "department": dept, "note": "Cleared and made safe"})
        if status == 200:
            self.answered += 1
            self.later(window * 0.1, lambda: self.act(sid, {"action": "verify", "by": "grid worker"}))
            self.later(window * 0.15, lambda: self.act(sid, {"action": "close", "by": "grid office"}))


async def run(settings: Any, cfg: SimConfig, stop: asyncio.Event) -> None:
    """Citizens and departments against a running system until ``stop`` is set."""
    from aiokafka import AIOKafkaConsumer

    from engine.mqtt import paho as mqttc

    loop = asyncio.get_running_loop()
    http = Http(cfg.url, cfg.api_key)
    client = mqttc.make_client(settings.mqtt, f"citywatch-reports-sim-{cfg.seed}")
    mqttc.start(client, settings.mqtt)
    topic = settings.reports.mqtt_topic

    def send_http(form: dict) -> None:
        status, body = http.call("POST", "/open311/v2/requests.json", form=form)
        if status >= 400:
            log.warning("report refused (%s): %s", status, body)

    def send_mqtt(report: dict) -> None:
        client.publish(topic, json.dumps(report).encode(), qos=1)

    def act(sid: str, event: dict) -> tuple[int, Any]:
        status, body = http.call("POST", f"/api/v1/tasks/{sid}/events", body=event)
        if status not in (200, 202):
            log.info("%s %s: %s %s", event["action"], sid, status, (body or {}).get("reason"))
        return status, body

    citizens = Citizens(cfg, send_http, send_mqtt)
    departments = Departments(cfg, act, loop.time)
    consumer = AIOKafkaConsumer(settings.tasks.topics.dispatch, bootstrap_servers=settings.kafka.servers,
                                group_id=f"{settings.worker.app_id}-responders", auto_offset_reset="latest")

    async def report_loop() -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(citizens.step)
            except Exception as exc:  # noqa: BLE001 - the worker may not be up yet: keep going
                log.warning("could not report: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(), citizens.interval())
            except TimeoutError:
                pass

    async def answer_loop() -> None:
        while not stop.is_set():
            try:
                await consumer.start()
                break
            except Exception as exc:  # noqa: BLE001 - Kafka not there yet
                log.warning("cannot follow %s yet: %s", settings.tasks.topics.dispatch, exc)
                await asyncio.sleep(2.0)
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for rec in records:
                        try:
                            departments.on_dispatch(json.loads(rec.value))
                        except (ValueError, KeyError, TypeError):
                            log.warning("unreadable dispatch record at offset %s", rec.offset)
                for fn in departments.due():
                    try:
                        await asyncio.to_thread(fn)
                    except Exception as exc:  # noqa: BLE001 - one failed action must not stop the departments
                        log.warning("department action failed: %s", exc)
        finally:
            await consumer.stop()

    try:
        await asyncio.gather(report_loop(), answer_loop())
    finally:
        client.disconnect()
        client.loop_stop()
        log.info("done: %d reports, %d tasks resolved, %d late answers", citizens.sent, departments.answered,
                 departments.late)


def config_from(settings: Any, url: str | None = None, api_key: str | None = None) -> SimConfig:
    s = settings.reports.simulator
    city_wide = {code: d for d, dept in settings.tasks.departments.items() if not dept.area_codes
                 for code in dept.service_codes}
    if api_key is None:  # the admin key from settings, where HTTP API keys are configured (engine.web.auth)
        keys = getattr(settings.web, "api_keys", {}) or {}
        api_key = next((k.api_key for k in keys.values() if getattr(k, "role", "") == "admin"), "")
    return SimConfig(url=url or f"http://{settings.web.host}:{settings.web.port}", reports_per_min=s.reports_per_min,
                     mqtt_share=s.mqtt_share, duplicate_share=s.duplicate_share, late_share=s.late_share,
                     return_share=s.return_share, seed=s.seed, api_key=api_key, city_wide=city_wide)


def main(argv: list[str] | None = None, settings: Any = None) -> int:
    from engine.settings import load_settings

    p = argparse.ArgumentParser(prog="citywatch simulate-reports", description=__doc__.split("\n")[0])
    p.add_argument("--url", default=None, help="a worker's web server (default: web.host:web.port)")
    p.add_argument("--api-key", default=None, help="HTTP API key (default: the admin key in settings, if any)")
    args = p.parse_args(argv)
    settings = settings or load_settings()
    cfg = config_from(settings, args.url, args.api_key)

    async def runner() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await run(settings, cfg, stop)

    asyncio.run(runner())
    return 0
