"""Open311 POST arguments: what is accepted, and every bad input named with its field and reason code."""

from __future__ import annotations

import orjson
import pytest

from engine.casework.errors import InvalidReport
from engine.casework.intake import decode_body, rejection
from engine.casework.validation import parse_report
from tests.casework.factories import STATION, World

W = World()
GOOD = {"service_code": "obstruction", "lat": "24.4705", "long": "118.1113"}


def parse(**args):
    return parse_report({**GOOD, **args}, services=W.settings.tasks.services, cfg=W.settings.reports,
                        bounds=W.settings.city.bounds, now=100.0, report_id="r1", source="http")


def problems(**args) -> dict[str, str]:
    with pytest.raises(InvalidReport) as exc:
        parse(**args)
    return {p.field: p.code for p in exc.value.problems}


def test_a_good_report_keeps_every_standard_argument():
    r = parse(description="  Container  ", media_url="https://img.example.cn/1.jpg", address_string="Hubin S Rd",
              email="chen@example.cn", phone="+86 138-1234-5678", first_name="Chen", account_id="app-7",
              jurisdiction_id="xiamen", api_key="anything", **{"attribute[x]": "ignored"})
    assert (r.lat, r.lon, r.description, r.address, r.received_at) == (24.4705, 118.1113, "Container", "Hubin S Rd",
                                                                       100.0)
    assert r.contact == {"email": "chen@example.cn", "phone": "+86 138-1234-5678", "first_name": "Chen",
                         "account_id": "app-7"}


@pytest.mark.parametrize("args,expected", [
    ({"service_code": None}, {"service_code": "missing_field"}),
    ({"service_code": "ufo"}, {"service_code": "unknown_service"}),
    ({"lat": None, "long": None, "address_string": "Hubin S Rd"}, {"lat": "missing_field", "long": "missing_field"}),
    ({"lat": "north"}, {"lat": "bad_type"}),
    ({"lat": True}, {"lat": "bad_type"}),
    ({"lat": "91"}, {"lat": "bad_coordinates"}),
    ({"long": "nan"}, {"long": "bad_coordinates"}),
    ({"lat": "39.9", "long": "116.4"}, {"lat/long": "out_of_area"}),
    ({"description": "x" * 4001}, {"description": "too_long"}),
    ({"description": ["a"]}, {"description": "bad_type"}),
    ({"description": "bell\x07"}, {"description": "bad_value"}),
    ({"media_url": "javascript:alert(1)"}, {"media_url": "bad_value"}),
    ({"email": "not-an-address"}, {"email": "bad_value"}),
    ({"phone": "call me"}, {"phone": "bad_value"}),
    ({"jurisdiction_id": "fuzhou"}, {"jurisdiction_id": "bad_jurisdiction"}),
    ({"token": "a/b"}, {"token": "bad_value"}),
])
def test_bad_arguments_are_named(args, expected):
    assert problems(**args) == expected


def test_every_problem_is_reported_at_once_in_the_standard_error_shape():
    with pytest.raises(InvalidReport) as exc:
        parse(service_code="ufo", lat="x", description="y" * 5000)
    body = exc.value.open311()
    assert [e["code"] for e in body] == [400, 400, 400]
    assert [e["description"].split(":")[0] for e in body] == ["service_code", "lat", "description"]


def test_lon_instead_of_long_gets_a_hint():
    with pytest.raises(InvalidReport) as exc:
        parse(long=None, lon="118.1")
    assert "the Open311 name is 'long'" in exc.value.reason


def test_description_of_exactly_the_limit_is_fine():
    assert len(parse(description="好" * 4000).description) == 4000


@pytest.mark.parametrize("body,ctype,args", [
    (b"service_code=obstruction&lat=24.47&long=118.11", "application/x-www-form-urlencoded",
     {"service_code": "obstruction", "lat": "24.47", "long": "118.11"}),
    (b'{"service_code": "obstruction", "lat": 24.47}', "application/json; charset=utf-8",
     {"service_code": "obstruction", "lat": 24.47}),
    (b'{"lat": 1}', "", {"lat": 1}),
    (b"description=%E9%9B%86%E8%A3%85%E7%AE%B1", "application/x-www-form-urlencoded",
     {"description": "集装箱"}),
])
def test_bodies_form_encoded_or_json(body, ctype, args):
    assert decode_body(body, ctype) == args


@pytest.mark.parametrize("body,ctype,code", [
    (b"{broken", "application/json", "bad_json"),
    (b"[1, 2]", "application/json", "bad_shape"),
    (b"lat=1&lat=2", "application/x-www-form-urlencoded", "bad_shape"),
    (b"\xff\xfe", "application/x-www-form-urlencoded", "bad_shape"),
    (b"<xml/>", "text/xml", "bad_shape"),
    (b"a=" + b"x" * 70000, "application/x-www-form-urlencoded", "payload_too_large"),
])
def test_bad_bodies(body, ctype, code):
    with pytest.raises(InvalidReport) as exc:
        decode_body(body, ctype)
    assert exc.value.code == code


def test_rejection_record_masks_contact_details():
    args = {**GOOD, "lat": "99", "phone": "13812345678", "email": "chen@example.cn", "first_name": "Chen Jianguo"}
    with pytest.raises(InvalidReport) as exc:
        W.intake.report(args, report_id="r", source="http")
    rec = orjson.loads(rejection(exc.value, source="http", received_at=1.0, args=args))
    assert rec["reason"] == "bad_coordinates" and rec["field"] == "lat" and rec["source"] == "http"
    assert rec["payload"]["phone"] == "1*********8" and rec["payload"]["first_name"] == "C**********o"
    text = orjson.dumps(rec).decode()
    assert "13812345678" not in text and "chen@example.cn" not in text and "Jianguo" not in text
    raw = orjson.loads(rejection(exc.value, source="mqtt", received_at=1.0, args=None, raw_len=12))
    assert raw["payload_bytes"] == 12 and "payload" not in raw


def test_intake_places_the_report_in_the_grid_and_its_cells():
    r = W.intake.report({**GOOD}, report_id="r2", source="mqtt")
    assert r.grid["community"] == "350203004001" and r.grid_names["street"] == "Kaiyuan Subdistrict"
    assert r.place_key == r.cells[0] and r.place_key.startswith("obstruction/")
    assert (r.lat, r.lon) == STATION


def test_intake_refuses_a_point_in_the_bounds_but_off_the_grid(tmp_path):
    from engine.casework.grid import load_grid
    from engine.casework.intake import Intake
    from tests.casework.test_reports_grid import SQUARE, unit, write

    tiny = Intake(W.settings, load_grid(write(tmp_path, [unit("city", "3502", SQUARE)])), W.clock)
    with pytest.raises(InvalidReport) as exc:
        tiny.report({**GOOD, "lat": "24.8", "long": "118.3"}, report_id="r3", source="http")
    assert exc.value.code == "out_of_area" and "grid" in exc.value.reason
