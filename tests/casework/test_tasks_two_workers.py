"""Two workers in one group: any worker answers any report or event, and near-duplicates meet across cells.

Each task lives on the partition its id hashes to and each report on the partition of its duplicate-check
cell, so most requests here are answered by the worker that does *not* own the work (through
``tasks.outcomes``). Two reports 40 m apart on either side of a cell edge are one task.
"""

from __future__ import annotations

import math

import pytest
from pyproj import Transformer

from engine.casework import dedup
from tests.casework.helpers import citizen_settings, start_worker
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SPOTS = [(24.4705, 118.1113), (24.478, 118.185), (24.5300, 118.1300), (24.4560, 118.0850), (24.4860, 118.1400),
         (24.6410, 118.0970), (24.5150, 118.1000), (24.4480, 118.1050)]


def straddling_a_cell_edge(lat: float, lon: float, crs: str, cell_m: float) -> tuple[tuple[float, float], ...]:
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    back = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    x, y = fwd.transform(lon, lat)
    edge = math.ceil(x / cell_m) * cell_m
    out = []
    for dx in (-20.0, 20.0):
        lo, la = back.transform(edge + dx, y)
        out.append((round(la, 7), round(lo, 7)))
    return tuple(out)


def test_any_worker_answers_and_duplicates_meet_across_cells(make_settings, spawn):
    settings = citizen_settings(make_settings, tasks={"sla_scale": 0.05})
    _, a = start_worker(spawn, settings, "worker-a")
    second = settings.replace(web={"port": _free()})
    _, b = start_worker(spawn, second, "worker-b")
    workers = [a, b]

    def settled() -> bool:  # the group has split the partitions between the two
        owned = [w.call("GET", "/api/v1/tasks/health") for w in workers]
        parts = [set(body["partitions"]) for status, body in owned if status == 200]
        return len(parts) == 2 and all(parts) and parts[0] | parts[1] == set(range(settings.kafka.partitions))

    wait_for(settled, 60, "both workers to own task partitions")

    ids = []
    for i, (lat, lon) in enumerate(SPOTS):
        status, body = workers[i % 2].call("POST", "/open311/v2/requests.json",
                                           form={"service_code": "road_damage", "lat": str(lat), "long": str(lon)})
        assert status == 201, body
        ids.append(body[0]["service_request_id"])
    assert len(set(ids)) == len(SPOTS)

    # Every event answered, whichever worker takes it and whichever owns the task.
    def doc_on(w, sid: str) -> dict | None:
        status, doc = w.call("GET", f"/api/v1/tasks/{sid}")
        return doc if status == 200 else None

    for i, sid in enumerate(ids):
        other = workers[(i + 1) % 2]
        doc = wait_for(lambda other=other, sid=sid: doc_on(other, sid), 30, "the other worker's directory")
        status, after = other.call("POST", f"/api/v1/tasks/{sid}/events",
                                   {"action": "accept", "department": doc["department"]})
        assert status == 200 and after["state"] == "accepted", after
    for w in workers:
        wait_for(lambda w=w: sorted(r["service_request_id"] for r in w.call("GET", "/open311/v2/requests.json")[1]
                                    ) == sorted(ids), 30, "both directories to hold every task")

    # Two reports of one hazard 40 m apart, in two duplicate-check cells.
    cfg = settings.reports
    p1, p2 = straddling_a_cell_edge(24.4705, 118.1113, settings.city.crs, cfg.dedup_cell_m)
    fwd = Transformer.from_crs("EPSG:4326", settings.city.crs, always_xy=True)
    cells = {dedup.cell_of(*fwd.transform(lon, lat), cfg.dedup_cell_m) for lat, lon in (p1, p2)}
    assert len(cells) == 2
    s1, first = a.call("POST", "/open311/v2/requests.json", {"service_code": "obstruction", "lat": p1[0],
                                                            "long": p1[1]})
    s2, second_report = b.call("POST", "/open311/v2/requests.json", {"service_code": "obstruction", "lat": p2[0],
                                                                    "long": p2[1]})
    assert (s1, s2) == (201, 201)
    assert second_report[0]["service_request_id"] == first[0]["service_request_id"]
    assert "Already reported" in second_report[0]["service_notice"]


def _free() -> int:
    from engine.brokers.ports import free_port

    return free_port()


def test_a_slow_answer_gives_a_token_that_resolves(make_settings, spawn):
    settings = citizen_settings(make_settings, reports={"answer_timeout_s": 0.001})
    _, http = start_worker(spawn, settings)
    status, body = http.call("POST", "/open311/v2/requests.json", form={"service_code": "streetlight",
                                                                       "lat": "24.4705", "long": "118.1113"})
    assert status == 202 and set(body[0]) == {"token", "service_notice", "account_id"}, body
    token = body[0]["token"]
    wait_for(lambda: http.call("GET", f"/open311/v2/tokens/{token}.json")[0] == 200, 30, "the token to resolve")
    [resolved] = http.call("GET", f"/open311/v2/tokens/{token}.json")[1]
    assert resolved["token"] == token
    wait_for(lambda: http.call("GET", f"/open311/v2/requests/{resolved['service_request_id']}.json")[0] == 200, 30,
             "the request")
    assert http.call("GET", "/open311/v2/tokens/unknown.json")[0] == 404
