"""Open311 reads against the GeoReport v2 fields: services, one request, the list filters."""

from __future__ import annotations

from datetime import datetime

import pytest

from engine.casework.errors import InvalidReport
from engine.casework.queries import REQUEST_FIELDS, as_request, parse_filters, select, services_list
from engine.casework.states import Event
from tests.casework.factories import AIRPORT, CEC, TZ, World

SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}


def test_service_list_has_exactly_the_standard_fields():
    services = services_list(World().settings.tasks.services)
    assert services and all(set(s) == SERVICE_FIELDS for s in services)
    road = next(s for s in services if s["service_code"] == "obstruction")
    assert road["metadata"] is False and road["type"] == "realtime" and road["group"] == "Roads"
    assert "container" in road["keywords"].split(",")


@pytest.fixture
def world():
    w = World()
    w.first = w.open()
    w.clock.advance(86400)
    w.second = w.open(CEC, "road_damage")
    w.clock.advance(86400)
    w.third = w.open(AIRPORT)
    for i, action in enumerate(["accept", "resolve", "verify", "close"]):
        dept = w.third.department if action in ("accept", "resolve") else ""
        w.apply(w.book.event(w.third.id, Event(action, dept, by="office"), str(i), w.clock.now() + i))
    w.docs = [w.book.doc(w.book.get(t.id)) for t in (w.first, w.second, w.third)]
    return w


def test_a_request_has_exactly_the_standard_fields(world):
    req = as_request(world.docs[2])
    assert tuple(req) == REQUEST_FIELDS
    assert req["status"] == "closed" and req["agency_responsible"] == "Huli Traffic Police Brigade"
    assert datetime.fromisoformat(req["requested_datetime"]).utcoffset().total_seconds() == 8 * 3600
    assert req["service_notice"] is None and req["zipcode"] is None


def ids(world, **query) -> list[str]:
    f = parse_filters(query, cfg=world.settings.reports, now=world.clock.now())
    return [d["service_request_id"] for d in select(world.docs, f)]


def test_list_filters(world):
    first, second, third = world.first.id, world.second.id, world.third.id
    assert ids(world) == [third, second, first]  # newest first
    assert ids(world, status="open") == [second, first] and ids(world, status="closed") == [third]
    assert ids(world, status="open,closed") == [third, second, first]
    assert ids(world, service_code="road_damage") == [second]
    assert ids(world, service_code="obstruction,road_damage", status="open") == [second, first]
    day2 = datetime.fromtimestamp(world.second.requested_at, TZ)
    assert ids(world, start_date=day2.isoformat()) == [third, second]
    assert ids(world, end_date=day2.isoformat()) == [second, first]
    assert ids(world, start_date=day2.isoformat(), end_date=day2.isoformat()) == [second]
    # service_request_id wins over the other filters, as the standard says
    assert ids(world, service_request_id=f"{first},{third}", status="open") == [third, first]
    # '+' in a query string arrives as a space unless the client encodes it
    assert ids(world, start_date=day2.isoformat().replace("+", " ")) == [third, second]


def test_default_window_and_limit(world):
    cfg = world.settings.reports.__class__(list_days=1.5, list_limit=1)
    f = parse_filters({}, cfg=cfg, now=world.clock.now())
    assert [d["service_request_id"] for d in select(world.docs, f)] == [world.third.id]


@pytest.mark.parametrize("query,field", [
    ({"status": "pending"}, "status"), ({"start_date": "yesterday"}, "start_date"),
    ({"end_date": "2026-09-08T10:00:00"}, "end_date"),
    ({"start_date": "2026-09-09T00:00:00Z", "end_date": "2026-09-08T00:00:00Z"}, "start_date"),
])
def test_bad_filters_are_named(world, query, field):
    with pytest.raises(InvalidReport) as exc:
        parse_filters(query, cfg=world.settings.reports, now=0.0)
    assert exc.value.field == field and exc.value.open311()[0]["code"] == 400
