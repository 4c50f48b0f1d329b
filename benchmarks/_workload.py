"""The end-to-end workload: a zone grid, a deterministic fleet, MQTT publishers and an alert listener.

Zones: ``n`` rectangles (``forbid``, every class) on a regular grid over
Xiamen, one per cell, each ``zone_frac`` of its cell wide and tall, centred.

Fleet: vehicle ``v`` drives along the centre line of grid row ``v % rows``
(through the zones' centres) and back, ``step`` cells per fix (a triangle
wave, so there is never a jump). Its ``k``-th fix is a pure function of
``(v, k)``, so positions, inside/outside and zone entries are known exactly:
a vehicle enters one zone per cell it crosses, i.e. ``step`` = the fraction
of fixes that enter a zone. Fix positions sit on half-steps, never on a zone
edge. Fixes are stamped with the wall-clock time they are published
(ISO 8601, +08:00, milliseconds), strictly increasing per vehicle.

Publishers are processes (QoS 1), each owning every ``n``-th vehicle and
visiting them round-robin, either at a fixed offered rate or gated by a
shared allowance the harness raises as the worker catches up (closed loop:
sustained throughput with a bounded backlog). Two kinds, same fixes:

``raw`` (default)
    :mod:`_mqtt_wire` on a raw socket: fix JSON from per-vehicle byte
    templates (byte for byte what orjson makes of the fix dict), PUBLISH
    packets encoded in bulk, up to ``BATCH_FIXES`` fixes per ``send`` with
    one wall-clock stamp per batch (~1 ms of encoding), at most 10,000
    messages unacknowledged, PUBACKs counted from the byte stream. It costs a
    fraction of what it loads, so it is not the limit.
``paho``
    paho-mqtt 2.x, one ``publish()`` per message, at most 2,000
    unacknowledged (paho refuses publishes past its in-flight bound and says
    so only in ``publish()``'s return code, which is checked and counted).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import paho.mqtt.client as mqtt
from _mqtt_wire import WirePublisher, publish_batch, utf8_field

CST = timezone(timedelta(hours=8))
# A margin inside the city bounds of config.yaml (fixes outside are rejected as out_of_area).
LON0, LON1, LAT0, LAT1 = 117.90, 118.41, 24.40, 24.88
CLASSES = ("taxi", "taxi", "taxi", "ride_hailing", "ride_hailing", "bus", "hazmat", "other", "police", "taxi")
FIXES_TOPIC = "citywatch/fixes"
ALERTS_TOPIC = "citywatch/alerts"


@dataclass(frozen=True)
class Grid:
    """``rows`` x ``cols`` cells over the city; zones fill the first ``n_zones`` cells row by row."""

    n_zones: int
    zone_frac: float = 0.2

    @property
    def cols(self) -> int:
        return max(1, math.ceil(math.sqrt(self.n_zones)))

    @property
    def rows(self) -> int:
        return max(1, math.ceil(self.n_zones / self.cols))

    @property
    def full_rows(self) -> int:
        """Rows with a zone in every cell (vehicles drive only along these)."""
        return max(1, self.n_zones // self.cols)

    @property
    def pitch(self) -> tuple[float, float]:
        return (LON1 - LON0) / self.cols, (LAT1 - LAT0) / self.rows

    def write(self, folder: Path) -> Path:
        """Write the zones as one GeoJSON FeatureCollection in ``folder``; returns the folder."""
        folder.mkdir(parents=True, exist_ok=True)
        dlon, dlat = self.pitch
        hw, hh = dlon * self.zone_frac / 2, dlat * self.zone_frac / 2
        features = []
        for i in range(self.n_zones):
            r, c = divmod(i, self.cols)
            cx, cy = LON0 + (c + 0.5) * dlon, LAT0 + (r + 0.5) * dlat
            ring = [[cx - hw, cy - hh], [cx + hw, cy - hh], [cx + hw, cy + hh], [cx - hw, cy + hh], [cx - hw, cy - hh]]
            features.append({"type": "Feature",
                             "properties": {"id": f"bz{i:05d}", "name": f"bench zone {r}/{c}", "rule": "forbid",
                                            "severity": "critical"},
                             "geometry": {"type": "Polygon", "coordinates": [[[round(x, 7), round(y, 7)]
                                                                              for x, y in ring]]}})
        (folder / "bench-zones.geojson").write_bytes(orjson.dumps({"type": "FeatureCollection",
                                                                   "features": features}))
        return folder


@dataclass(frozen=True)
class Fleet:
    """Vehicles ``prefix + 000000 ..``; see the module docstring. ``step`` is in cells per fix."""

    grid: Grid
    n_vehicles: int
    step: float = 0.01
    prefix: str = "闽DB"
    parked: bool = False   # parked vehicles sit outside every zone, one fix each (memory runs)

    def vehicle_id(self, v: int) -> str:
        return f"{self.prefix}{v:06d}"

    def _u(self, v: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Distance driven in cells, modulo one round trip (there and back along the row), on half-steps."""
        period = max(2, round(2 * self.grid.cols / self.step))
        return ((v * 7919 + k) % period + 0.5) * self.step

    def _along(self, u: np.ndarray) -> np.ndarray:
        """Position along the row (0..cols cells) of round-trip distance ``u``: a triangle wave."""
        return np.where(u < self.grid.cols, u, 2 * self.grid.cols - u)

    def inside(self, v: np.ndarray, k: np.ndarray) -> np.ndarray:
        if self.parked:
            return np.zeros(np.shape(v), dtype=bool)
        frac = self._along(self._u(v, k)) % 1.0
        return np.abs(frac - 0.5) < self.grid.zone_frac / 2

    def positions(self, v: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lon, lat, eastbound) of fix ``k`` of vehicles ``v``."""
        dlon, dlat = self.grid.pitch
        row = v % self.grid.full_rows
        if self.parked:  # near a cell's corner: 5 % of a cell from the edge, far from its zone
            col = (v // self.grid.full_rows) % self.grid.cols
            return LON0 + (col + 0.05) * dlon, LAT0 + (row + 0.05) * dlat, np.ones(np.shape(v), dtype=bool)
        u = self._u(v, k)
        return LON0 + self._along(u) * dlon, LAT0 + (row + 0.5) * dlat, u < self.grid.cols

    def enters(self, v: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Whether fix ``k`` of ``v`` enters a zone (inside now, outside at the fix before or first fix)."""
        now = self.inside(v, k)
        before = np.where(k > 0, self.inside(v, np.maximum(k - 1, 0)), False)
        return now & ~before


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, CST).isoformat(timespec="milliseconds")


# -- publisher process ----------------------------------------------------------------------

PUBLISHERS = ("raw", "paho")
MAX_PENDING = {"raw": 10_000, "paho": 2000}   # MQTT messages in flight (published, not yet acknowledged)
BATCH_FIXES = 500   # raw publisher: fixes per send() (one wall-clock stamp each, ~1 ms of encoding)


@dataclass
class PublisherSpec:
    """What one publisher process does in one phase (picklable)."""

    index: int
    n_publishers: int
    fleet: Fleet
    mqtt_port: int
    shape: str                      # "single" (citywatch/fixes/{vid}) | "array" (bare topic)
    per_message: int                # fixes per array message
    duration_s: float
    rate: float | None              # fixes/s for this publisher; None = gated by ``allowed``
    k_start: np.ndarray | None = None  # fixes each of its vehicles sent before (positions continue from there)
    cursor: int = 0                 # round-robin position left by the previous phase
    limit: int | None = None        # stop after this many fixes (e.g. one fix per vehicle)
    max_pending: int | None = None  # MQTT messages published but not yet acknowledged (None: MAX_PENDING)
    measure_from: float = 0.0       # wall time: count entries from fixes stamped at or after it
    publisher: str = "raw"          # "raw" (_mqtt_wire, packets encoded in bulk) | "paho" (paho-mqtt)

    @property
    def per(self) -> int:
        return self.per_message if self.shape == "array" else 1

    @property
    def pending_bound(self) -> int:
        return self.max_pending or MAX_PENDING[self.publisher]


def _vehicles_of(spec: PublisherSpec) -> np.ndarray:
    return np.arange(spec.index, spec.fleet.n_vehicles, spec.n_publishers, dtype=np.int64)


class _Blocks:
    """The fixes a publisher sends next, computed with numpy a block at a time, in round-robin order."""

    def __init__(self, spec: PublisherSpec):
        per = spec.per
        self.fleet = spec.fleet
        self.vehicles = _vehicles_of(spec)
        nv = len(self.vehicles)
        if nv < per:
            raise RuntimeError(f"{per} fixes per message but only {nv} vehicles per publisher")
        self.size = per * max(1, min(2000 // per, nv // per))   # <= nv: a vehicle at most once per block
        self.vids = [spec.fleet.vehicle_id(int(v)) for v in self.vehicles]
        self.classes = [CLASSES[int(v) % len(CLASSES)] for v in self.vehicles]
        self.k = np.zeros(nv, dtype=np.int64) if spec.k_start is None else spec.k_start.astype(np.int64).copy()
        self.last_ms = [0] * nv
        self.cursor = spec.cursor
        self.pos = self.size
        self.idx: list[int] = []

    def take(self, n: int) -> tuple[list[int], list[float], list[float], list[int], int]:
        """Up to ``n`` fixes (not past the block's end): local vehicle indexes, lon, lat, heading, entries."""
        if self.pos >= self.size:
            self._next_block()
        a, b = self.pos, min(self.pos + n, self.size)
        self.pos = b
        self.cursor += b - a
        self.k[self._idx_np[a:b]] += 1
        return self.idx[a:b], self.lon[a:b], self.lat[a:b], self.heading[a:b], int(self._enter_cum[b] - self._enter_cum[a])

    def stamp(self, idx: list[int], now_ms: int) -> list[int]:
        """Timestamps (epoch ms) of fixes of vehicles ``idx`` published at ``now_ms``: the clock, or one
        past the vehicle's previous fix, so they are strictly increasing per vehicle."""
        last, out = self.last_ms, []
        for i in idx:
            t = last[i] + 1
            if t < now_ms:
                t = now_ms
            last[i] = t
            out.append(t)
        return out

    def _next_block(self) -> None:
        nv = len(self.vehicles)
        idx = (self.cursor + np.arange(self.size)) % nv
        v, k = self.vehicles[idx], self.k[idx]
        lon, lat, east = self.fleet.positions(v, k)
        self._idx_np, self.idx = idx, idx.tolist()
        self.lon = np.broadcast_to(lon, v.shape).round(7).tolist()
        self.lat = np.broadcast_to(lat, v.shape).round(7).tolist()
        self.heading = np.where(east, 90, 270).tolist()
        self._enter_cum = np.concatenate([[0], np.cumsum(self.fleet.enters(v, k))])
        self.pos = 0


class IsoStamps:
    """:func:`iso_ms` of timestamps (as bytes if ``as_bytes``), converting each distinct one once; the last
    is kept, as the next messages usually share it."""

    def __init__(self, as_bytes: bool = False):
        self.as_bytes = as_bytes
        self._last: tuple[int, Any] = (-1, "")

    def one(self, ms: int) -> Any:
        if ms != self._last[0]:
            text = iso_ms(ms)
            self._last = (ms, text.encode() if self.as_bytes else text)
        return self._last[1]

    def __call__(self, ms: list[int]) -> list[Any]:
        if ms and min(ms) == max(ms):   # the usual case: one clock reading, no vehicle twice
            return [self.one(ms[0])] * len(ms)
        return [self.one(t) for t in ms]


class FixBytes:
    """A publisher's fixes as JSON bytes from per-vehicle templates: byte for byte what ``orjson.dumps``
    makes of the fix dict (see :func:`_fix_dict`), without a dict or a dumps per fix."""

    def __init__(self, blocks: _Blocks, speed: float):
        self.heads = [orjson.dumps({"vehicle_id": vid, "class": cls, "ts": ""})[:-2]  # ... "ts":"
                      for vid, cls in zip(blocks.vids, blocks.classes)]
        self.tails = {h: orjson.dumps({"speed_kmh": speed, "heading": h, "accuracy_m": 5, "alarm_flags": 0})[1:]
                      for h in (90, 270)}

    def encode(self, idx: list[int], ts: list[bytes], lat: list[float], lon: list[float],
               heading: list[int]) -> list[bytes]:
        heads, tails = self.heads, self.tails
        return [b'%s%s","lat":%r,"lon":%r,%s' % (heads[i], t, la, lo, tails[h])
                for i, t, la, lo, h in zip(idx, ts, lat, lon, heading)]


def _fix_dict(blocks: _Blocks, i: int, ts: str, lat: float, lon: float, heading: int, speed: float) -> dict:
    return {"vehicle_id": blocks.vids[i], "class": blocks.classes[i], "ts": ts, "lat": lat, "lon": lon,
            "speed_kmh": speed, "heading": heading, "accuracy_m": 5, "alarm_flags": 0}


@dataclass
class _Tally:
    """What a publisher did in one phase (its result, with the block state)."""

    sent_msgs: int = 0
    sent_fixes: int = 0
    acked_msgs: int = 0
    refused: int = 0
    enters: int = 0
    enters_measured: int = 0
    t_first: float = 0.0            # wall time of the first and last publish
    t_last: float = 0.0
    gated_s: float = 0.0            # waiting for the closed-loop allowance (the system is behind)
    full_s: float = 0.0             # waiting for PUBACKs (the MQTT broker is behind)
    paced_s: float = 0.0            # waiting for the next message of a fixed rate
    pub_cpu_s: float = 0.0          # CPU and wall time from connected to every message acknowledged
    pub_wall_s: float = 0.0

    def sent(self, msgs: int, fixes: int, entries: int, stamped_ms: int, measure_from: float) -> None:
        self.t_last = time.time()
        self.t_first = self.t_first or self.t_last
        self.sent_msgs += msgs
        self.sent_fixes += fixes
        self.enters += entries
        if stamped_ms / 1000 >= measure_from:
            self.enters_measured += entries


def publisher_main(spec: PublisherSpec, allowed: Any, sent: Any, stop: Any, results: Any) -> None:
    """Publish until ``duration_s``, ``limit`` or ``stop``; then wait for acks and put a result dict."""
    blocks = _Blocks(spec)
    tally = _Tally()
    out: dict[str, Any] = {"index": spec.index, "error": None}
    publish = _publish_raw if spec.publisher == "raw" else _publish_paho
    try:
        publish(spec, blocks, tally, allowed, sent, stop)
    except Exception as exc:  # noqa: BLE001 - reported to the harness
        out["error"] = f"{type(exc).__name__}: {exc}"
    out.update(vars(tally), k=blocks.k, cursor=blocks.cursor, cpu_s=time.process_time())
    results.put(out)


class RawMessages:
    """The next messages of a raw publisher as (length-prefixed topic, JSON payload) bytes."""

    def __init__(self, spec: PublisherSpec, blocks: _Blocks):
        self.blocks, self.per, self.single = blocks, spec.per, spec.shape != "array"
        self.fixes = FixBytes(blocks, 0.0 if spec.fleet.parked else 40.0)
        self.iso = IsoStamps(as_bytes=True)
        self.topics = [utf8_field(f"{FIXES_TOPIC}/{vid}") for vid in blocks.vids]
        self.bare = utf8_field(FIXES_TOPIC)

    def _take(self, n: int, now_ms: int) -> tuple[list[int], list[bytes], int]:
        idx, lon, lat, heading, entries = self.blocks.take(n)
        ts = self.iso(self.blocks.stamp(idx, now_ms))
        return idx, self.fixes.encode(idx, ts, lat, lon, heading), entries

    def next(self, n: int, now_ms: int, max_fixes: int | None) -> tuple[list[bytes], list[bytes], int, int]:
        """Up to ``n`` messages (and ``max_fixes`` fixes) stamped ``now_ms``: topics, payloads, fixes, entries."""
        topics: list[bytes] = []
        payloads: list[bytes] = []
        fixes = entries = 0
        budget = n * self.per if max_fixes is None else min(n * self.per, max_fixes)
        while fixes < budget:
            if self.single:
                idx, encoded, ent = self._take(budget - fixes, now_ms)
                topics += [self.topics[i] for i in idx]
                payloads += encoded
            else:
                idx, encoded, ent = self._take(min(self.per, budget - fixes), now_ms)
                topics.append(self.bare)
                payloads.append(b"[" + b",".join(encoded) + b"]")
            fixes += len(idx)
            entries += ent
        return topics, payloads, fixes, entries


def _publish_raw(spec: PublisherSpec, blocks: _Blocks, tally: _Tally, allowed: Any, sent: Any, stop: Any) -> None:
    """Batches of up to BATCH_FIXES fixes, each stamped with one wall-clock time, encoded in bulk and written
    with one send; at most ``pending_bound`` messages unacknowledged."""
    per, bound = spec.per, spec.pending_bound
    messages = RawMessages(spec, blocks)
    wire = WirePublisher("127.0.0.1", spec.mqtt_port, f"bench-raw-{spec.index}-{time.time_ns()}")
    try:
        start, cpu0 = time.monotonic(), time.process_time()
        end, packet_id = start + spec.duration_s, 1
        while not stop.is_set():
            now = time.monotonic()
            left = None if spec.limit is None else spec.limit - tally.sent_fixes
            if now >= end or (left is not None and left <= 0):
                break
            wire.read_acks()
            room = bound - (tally.sent_msgs - wire.acked)
            if spec.rate:  # message k is due at start + k * per / rate
                due = int((now - start) * spec.rate / per) + 1 - tally.sent_msgs
            else:  # messages until the allowance is reached
                due = -(-(allowed.value - tally.sent_fixes) // per)
            n = min(due, room, max(1, BATCH_FIXES // per))
            if n <= 0:
                if room <= 0:  # the MQTT broker is behind: wait for acks
                    wire.read_acks(0.001)
                    tally.full_s += time.monotonic() - now
                elif spec.rate:
                    wire.read_acks(min(start + tally.sent_msgs * per / spec.rate - now, 0.005))
                    tally.paced_s += time.monotonic() - now
                else:  # the worker is behind by the whole window: wait
                    wire.read_acks(0.002)
                    tally.gated_s += time.monotonic() - now
                continue
            now_ms = time.time_ns() // 1_000_000
            topics, payloads, n_fixes, entries = messages.next(n, now_ms, left)
            data, packet_id = publish_batch(topics, payloads, packet_id)
            wire.send(data)
            tally.sent(len(payloads), n_fixes, entries, now_ms, spec.measure_from)
            sent.value = tally.sent_fixes
        t_drain = time.monotonic()
        wire.wait_acked(tally.sent_msgs, 60)
        tally.full_s += time.monotonic() - t_drain
        tally.pub_cpu_s, tally.pub_wall_s = time.process_time() - cpu0, time.monotonic() - start
    finally:
        tally.acked_msgs = wire.acked
        wire.close()


def _publish_paho(spec: PublisherSpec, blocks: _Blocks, tally: _Tally, allowed: Any, sent: Any, stop: Any) -> None:
    """One paho publish() per message; paho refuses publishes past ``max_inflight`` (its return code is
    checked and counted)."""
    acked = [0]

    def on_publish(client, userdata, mid, reason_code=None, properties=None):
        acked[0] += 1

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{spec.index}-{time.time_ns()}",
                         protocol=mqtt.MQTTv311, clean_session=True)
    client.max_inflight_messages_set(spec.pending_bound)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    # No network thread: publish() then writes the packet at once from this thread, and PUBACKs are read
    # by net() below. With loop_start() every publish wakes paho's thread through a socket pair, which
    # costs more than the publish itself (measured: ~5k vs ~12k messages/s per process).
    client.connect("127.0.0.1", spec.mqtt_port, keepalive=60)
    last_misc = [time.monotonic()]

    def net(timeout: float = 0.0) -> None:
        if timeout > 0:
            client.loop(timeout)
        else:
            client.loop_read(1000)
        if time.monotonic() - last_misc[0] > 1.0:  # keepalive pings
            client.loop_misc()
            last_misc[0] = time.monotonic()

    per = spec.per
    speed = 0.0 if spec.fleet.parked else 40.0
    iso = IsoStamps()
    pending = None   # a message paho refused, to retry
    try:
        deadline = time.monotonic() + 10
        while not client.is_connected() and time.monotonic() < deadline:
            client.loop(0.05)
        if not client.is_connected():
            raise RuntimeError(f"publisher could not connect to MQTT at 127.0.0.1:{spec.mqtt_port}")
        start, cpu0 = time.monotonic(), time.process_time()
        end = start + spec.duration_s
        interval = per / spec.rate if spec.rate else 0.0
        next_due = start
        while not stop.is_set():
            now_m = time.monotonic()
            if now_m >= end or (spec.limit is not None and tally.sent_fixes >= spec.limit and pending is None):
                break
            if spec.rate:
                if now_m < next_due:
                    net(min(next_due - now_m, 0.005))
                    tally.paced_s += time.monotonic() - now_m
                    continue
            elif tally.sent_fixes >= allowed.value:  # the worker is behind by the whole window: wait
                net(0.002)
                tally.gated_s += time.monotonic() - now_m
                continue
            if tally.sent_msgs - acked[0] >= spec.pending_bound:  # the MQTT broker is behind: wait for acks
                net(0.001)
                tally.full_s += time.monotonic() - now_m
                continue
            if pending is None:
                n = per if spec.limit is None else min(per, spec.limit - tally.sent_fixes)
                idx, lon, lat, heading, n_ent = blocks.take(n)
                now_ms = time.time_ns() // 1_000_000
                ts = iso(blocks.stamp(idx, now_ms))
                fixes = [_fix_dict(blocks, i, ts[j], lat[j], lon[j], heading[j], speed) for j, i in enumerate(idx)]
                if spec.shape == "array":
                    pending = (FIXES_TOPIC, orjson.dumps(fixes), len(fixes), n_ent, now_ms)
                else:
                    pending = (f"{FIXES_TOPIC}/{fixes[0]['vehicle_id']}", orjson.dumps(fixes[0]), 1, n_ent, now_ms)
            topic, payload, n, n_ent, now_ms = pending
            info = client.publish(topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:  # refused (queue full / not connected): retry this message
                tally.refused += 1
                net(0.01)
                continue
            pending = None
            if tally.sent_msgs % 16 == 0:
                net()
            tally.sent(1, n, n_ent, now_ms, spec.measure_from)
            sent.value = tally.sent_fixes
            next_due += interval
        t_drain = time.monotonic()
        while acked[0] < tally.sent_msgs and time.monotonic() < t_drain + 60:
            net(0.01)
        tally.full_s += time.monotonic() - t_drain
        tally.pub_cpu_s, tally.pub_wall_s = time.process_time() - cpu0, time.monotonic() - start
    finally:
        tally.acked_msgs = acked[0]
        client.disconnect()
        client.loop(0.1)


class Publishers:
    """``n`` publisher processes for one phase; :meth:`run` blocks until they are done.

    ``on_tick(published_so_far)`` is called every ``tick_s`` while they run;
    for a gated phase it returns the new total allowance (fixes, all publishers).
    """

    def __init__(self, fleet: Fleet, mqtt_port: int, publisher: str = "raw"):
        if publisher not in PUBLISHERS:
            raise ValueError(f"publisher {publisher!r}: expected one of {', '.join(PUBLISHERS)}")
        self.fleet, self.mqtt_port, self.publisher = fleet, mqtt_port, publisher
        self.k = np.zeros(fleet.n_vehicles, dtype=np.int64)   # fixes sent per vehicle, across phases
        self.cursors: dict[tuple[int, int], int] = {}           # (publishers, index) -> round-robin position
        self._ctx = mp.get_context("spawn")
        self.pids: dict[str, int] = {}

    def run(self, *, n: int, shape: str, per_message: int, duration_s: float, rate: float | None = None,
            limit: int | None = None, measure_from: float = 0.0, gated: bool = False, on_tick=None,
            tick_s: float = 0.25, stop_if=None) -> dict[str, Any]:
        """Run ``n`` publisher processes for one phase; returns their summed counts, and in ``procs`` each
        one's result (CPU and wall seconds while publishing: ``pub_cpu_s``, ``pub_wall_s``).

        ``gated``: publish only up to the allowance ``on_tick()`` returns (total fixes, all publishers).
        ``stop_if(published_so_far)``: checked every tick; True ends the phase early.
        """
        self.n = n
        stop = self._ctx.Event()
        results = self._ctx.Queue()
        allowed = [self._ctx.Value("q", 0, lock=False) for _ in range(self.n)]
        sent = [self._ctx.Value("q", 0, lock=False) for _ in range(self.n)]
        procs = []
        for i in range(self.n):
            share = None if limit is None else limit // self.n + (1 if i < limit % self.n else 0)
            spec = PublisherSpec(i, self.n, self.fleet, self.mqtt_port, shape, per_message, duration_s,
                                 None if rate is None else rate / self.n,
                                 k_start=self.k[i::self.n].copy(), cursor=self.cursors.get((n, i), 0),
                                 limit=share, measure_from=measure_from, publisher=self.publisher)
            allowed[i].value = 0 if gated else 1 << 62
            p = self._ctx.Process(target=publisher_main, args=(spec, allowed[i], sent[i], stop, results),
                                  name=f"bench-publisher-{i}", daemon=True)
            p.start()
            procs.append(p)
        self.pids = {f"publisher{i}": p.pid for i, p in enumerate(procs)}
        outs: list[dict[str, Any]] = []
        stopped = False
        hard_deadline = time.monotonic() + duration_s + 90
        try:
            while len(outs) < self.n and time.monotonic() < hard_deadline:
                if on_tick is not None:
                    total = on_tick(sum(x.value for x in sent))
                    if total is not None and gated:
                        for a in allowed:
                            a.value = int(total / self.n)
                if stop_if is not None and not stopped and stop_if(sum(x.value for x in sent)):
                    stopped = True
                    stop.set()
                try:
                    outs.append(results.get(timeout=tick_s))
                except Exception:  # noqa: BLE001 - queue.Empty
                    pass
        finally:
            stop.set()
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.kill()
                    p.join(5)
            results.close()
        for o in outs:
            self.cursors[(n, o["index"])] = o["cursor"]
            self.k[o["index"]::self.n] = o["k"]
        errors = [o["error"] for o in outs if o["error"]]
        if len(outs) < self.n:
            errors.append(f"{self.n - len(outs)} publisher(s) gave no result")
        keys = ("sent_msgs", "sent_fixes", "acked_msgs", "refused", "enters", "enters_measured", "gated_s", "full_s",
                "paced_s", "cpu_s", "pub_cpu_s", "pub_wall_s")
        total = {k: sum(o[k] for o in outs) for k in keys}
        total["t_first"] = min((o["t_first"] for o in outs if o["t_first"]), default=0.0)
        total["t_last"] = max((o["t_last"] for o in outs), default=0.0)
        total["errors"] = errors
        total["stopped"] = stopped
        total["procs"] = sorted(({k: v for k, v in o.items() if k not in ("k", "cursor")} for o in outs),
                                key=lambda o: o["index"])
        total["publisher"] = self.publisher
        return total


# -- alert listener -------------------------------------------------------------------------

class AlertListener:
    """Subscribes to ``citywatch/alerts/#`` (QoS 1) and keeps (receive time, payload) of every alert."""

    def __init__(self, mqtt_port: int):
        self.received: list[tuple[float, bytes]] = []
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-alerts-{time.time_ns()}",
                                   protocol=mqtt.MQTTv311, clean_session=True)
        self._client.max_inflight_messages_set(1000)
        self._subscribed = threading.Event()
        self._client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(f"{ALERTS_TOPIC}/#", qos=1)
        self._client.on_subscribe = lambda c, u, mid, rcs, p=None: self._subscribed.set()
        self._client.on_message = lambda c, u, msg: self.received.append((time.time(), msg.payload))
        self._client.connect("127.0.0.1", mqtt_port, keepalive=60)
        self._client.loop_start()

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        return self._subscribed.wait(timeout)

    def count(self) -> int:
        return len(self.received)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def alerts(self) -> list[dict[str, Any]]:
        """Decoded alerts with ``_recv`` (epoch seconds) added; undecodable payloads skipped."""
        out = []
        for t, payload in list(self.received):
            try:
                a = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(a, dict):
                a["_recv"] = t
                out.append(a)
        return out


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
