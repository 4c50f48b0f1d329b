"""Open311 ``POST requests.json`` bodies (form or JSON) and MQTT reports, through the real intake.

The check does what the worker does: the guard takes an ``api_key`` out of the body
(:func:`engine.web.body.split_api_key`), then ``decode_body`` and ``Intake.report`` (or ``Intake.mqtt``),
and on refusal the ``reports.rejected`` record. Properties: only :class:`InvalidReport` escapes, with a
field, a reason and a short code; the rejection record is JSON; the API key never reaches it.
"""

from __future__ import annotations

import re
import uuid
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import orjson
from hypothesis import strategies as st

from engine.casework.errors import InvalidReport
from engine.casework.grid import Grid, load_grid
from engine.casework.intake import Intake, decode_body, rejection
from engine.web.body import split_api_key
from tests.conftest import ROOT
from tests.fuzz.inputs import NASTY_TEXT, NOW, FixedClock, Mutator, S, deep, json_values, to_bytes

API_KEY = "citizen-app-key-" + uuid.uuid4().hex
REPORT = {"service_code": "obstruction", "lat": 24.4705, "long": 118.1113, "description": "A container on the road",
          "address_string": "Hubin South Road", "email": "chen@example.cn", "phone": "13800000000",
          "first_name": "Chen", "account_id": "app-77", "media_url": "https://example.cn/p.jpg"}
CODE = re.compile(r"[a-z][a-z0-9_]{0,40}")
FORM = "application/x-www-form-urlencoded"


@lru_cache(maxsize=1)
def _grid() -> Grid:
    return load_grid(ROOT / "zones" / "grid")


@lru_cache(maxsize=1)
def intake() -> Intake:
    return Intake(S, _grid(), FixedClock())


def body_of(args: Any, form: bool) -> tuple[bytes, str]:
    if form and isinstance(args, dict):
        return urlencode({str(k): str(v) for k, v in args.items()}, errors="surrogatepass").encode(), FORM
    return to_bytes(args), "application/json"


@st.composite
def open311_bodies(draw: st.DrawFn) -> tuple[bytes, str, str]:
    """(body, content type, "http" or "mqtt")."""
    args: Any = dict(REPORT, api_key=API_KEY)
    for key in draw(st.lists(st.sampled_from(sorted(REPORT) + ["jurisdiction_id", "x", "lat", "long"]), max_size=3)):
        args[key] = draw(json_values | st.sampled_from(NASTY_TEXT + ["a" * 4001, "24.5", "118.1", ""]))
    r = draw(st.integers(0, 9))
    if r == 0:
        return draw(st.binary(max_size=300)), draw(st.sampled_from([FORM, "application/json", "text/plain", ""])), "http"
    if r == 1:
        return to_bytes(deep(draw(st.integers(3, 1100)), args)), "application/json", "http"
    body, ctype = body_of(args, draw(st.booleans()))
    return body, ctype, draw(st.sampled_from(["http", "http", "mqtt"]))


def generate(m: Mutator) -> tuple[bytes, str, str]:
    r = m.r
    args: Any = dict(REPORT, api_key=API_KEY)
    for _ in range(r.randrange(4)):
        args[r.choice(sorted(REPORT) + ["x", "jurisdiction_id"])] = m.value()
    k = r.randrange(10)
    if k == 0:
        return r.randbytes(r.randrange(300)), r.choice([FORM, "application/json", ""]), "http"
    if k == 1:
        return to_bytes(deep(r.randrange(3, 1100), args)), "application/json", "http"
    body, ctype = body_of(args if r.random() < 0.9 else m.value(), r.random() < 0.5)
    return body, ctype, "mqtt" if r.random() < 0.2 else "http"


def check(case: tuple[bytes, str, str]) -> str | None:
    body, ctype, source = case
    it = intake()
    args: Any = None
    if source == "http":
        _, body = split_api_key(body, ctype)  # what the guard does before the handler reads the body
    try:
        if source == "mqtt":
            report = it.mqtt(body, report_id="0" * 32)
        else:
            args = decode_body(body, ctype)
            report = it.report(args, report_id="0" * 32, source="http")
    except InvalidReport as exc:
        assert exc.field and exc.reason and CODE.fullmatch(exc.code), (exc.field, exc.code)
        rec = rejection(exc, source=source, received_at=NOW, args=args, raw_len=len(body))
        orjson.loads(rec)
        assert (source == "mqtt" or API_KEY.encode() not in rec), "the API key reached reports.rejected"
        return f"open311:{exc.code}"
    assert report.service_code in S.tasks.services and report.grid
    assert source == "mqtt" or API_KEY.encode() not in report.to_record(), "the API key reached reports"
    return None
