"""A small one-map client for tests: reads the SSE stream in a thread and folds it like the page does."""

from __future__ import annotations

import socket
import threading
import urllib.request
from typing import Any

import orjson


class MapClient:
    """Follows ``/api/v1/onemap/stream``; ``vehicles``, ``alerts`` ... mirror the page's state.

    ``headers`` carry the API key (``X-API-Key``, ``Authorization`` or the page's ``Cookie``).
    ``errors`` collects protocol problems (a delta whose ``seq`` does not follow the last one).
    """

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float = 30.0):
        req = urllib.request.Request(f"{base_url}/api/v1/onemap/stream", headers=headers)
        self._resp = urllib.request.urlopen(req, timeout=timeout)
        self.lock = threading.RLock()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[str] = []
        self.ended = threading.Event()
        self.seq = -1
        self.zones: list[dict] = []
        self.classes: list[str] = []
        self.vehicles: dict[int, dict[str, Any]] = {}
        self.alerts: dict[str, dict] = {}
        self.incidents: dict[str, dict] = {}
        self.tasks: dict[str, dict] = {}
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event, data = None, None
        try:
            for raw in self._resp:
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = orjson.loads(line[6:])
                elif not line and event is not None:
                    with self.lock:
                        self.events.append((event, data))
                        self._apply(event, data)
                    event, data = None, None
        except (OSError, ValueError, AttributeError):  # closed (http.client drops its file on close)
            pass
        finally:
            self.ended.set()

    def _apply(self, event: str, d: dict[str, Any]) -> None:
        if event == "snapshot":
            self.seq, self.classes, self.zones = d["seq"], d["classes"], d["zones"]
            self.vehicles = {r[0]: {"id": r[1], "class": d["classes"][r[2]], "lat": r[3], "lon": r[4]}
                             for r in d["vehicles"]}
            self.alerts = {a["alert_id"]: a for a in d["alerts"]}
            self.incidents = {i["id"]: i for i in d["incidents"]}
            self.tasks = {t["id"]: t for t in d["tasks"]}
            return
        if d["seq"] != self.seq + 1:
            self.errors.append(f"delta seq {d['seq']} after {self.seq}")
        self.seq = d["seq"]
        for slot in d.get("g", []):
            self.vehicles.pop(slot, None)
        for slot, vid, cls in d.get("nv", []):
            self.vehicles.setdefault(slot, {"lat": None, "lon": None}).update(id=vid, **{"class": self.classes[cls]})
        for slot, lat, lon, *_ in d.get("v", []):
            self.vehicles[slot].update(lat=lat, lon=lon)
        self.alerts.update({a["alert_id"]: a for a in d.get("a", [])})
        for i in d.get("io", []):
            self.incidents[i["id"]] = i
        for iid in d.get("ic", []):
            self.incidents.pop(iid, None)
        self.tasks.update({t["id"]: t for t in d.get("t", [])})
        for tid in d.get("tc", []):
            self.tasks.pop(tid, None)
        if "zones" in d:
            self.zones = d["zones"]

    def vehicle(self, vid: str) -> dict[str, Any] | None:
        with self.lock:
            return next((dict(v) for v in self.vehicles.values() if v["id"] == vid), None)

    def close(self) -> None:
        # Shut the socket down first: the reader thread holds the response's buffer while it waits for the
        # next event, and a plain close() would wait for that event (up to the server's keep-alive interval).
        sock = getattr(getattr(getattr(self._resp, "fp", None), "raw", None), "_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self._resp.close()
        except OSError:
            pass
