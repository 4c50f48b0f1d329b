"""A JT/T 808 blind-area re-upload (0x0704, type 1) end to end: the gateway and a worker as processes.

The buffered positions a terminal re-uploads after coverage returns are older than what it already reported
live; the worker takes them as late fixes: audited against the zones at their own time, never moving the truck.
"""

from __future__ import annotations

import asyncio
import socket
import time

import orjson
import pytest

from engine.jt808.codec import encode_batch
from engine.jt808.messages import GeneralResponse
from tests.conftest import metric_value, scrape, wait_for
from tests.jt808.terminal import Client, drive, fix_at

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PHONE, PLATE, LAT = "13900000070", "闽DH7070", 24.4815


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


async def re_upload(port: int, fixes: list[tuple[float, float]]) -> None:
    async with Client(port, PHONE) as c:
        await c.login(PLATE)
        frame = encode_batch(PHONE, c.next(), [fix_at(ts, lon, LAT) for ts, lon in fixes], kind=1)
        assert await c.ask(frame) == GeneralResponse(c.serial, 0x0704, 0)


def test_a_blind_area_re_upload_is_audited_as_late_fixes(make_settings, spawn, mqtt_probe):
    settings = make_settings(jt808={"default_class": "hazmat"})
    worker = spawn("worker", ["worker"], settings)
    gateway = spawn("jt808", ["jt808", "--open-registration"], settings)
    alerts = mqtt_probe([f"{settings.mqtt.alerts_topic}/#"])
    wait_for(lambda: gateway.proc.poll() is not None or listening(settings.jt808.port), 60, "the JT/T 808 port")
    assert gateway.proc.poll() is None, gateway.log()

    def mine() -> list[dict]:
        return [a for a in (orjson.loads(p) for _, p in alerts.received()) if a["vehicle_id"] == PLATE]

    now = time.time()
    # Live: west of the Haicang Tunnel, then in it (a hazmat truck is forbidden there).
    asyncio.run(drive(settings.jt808.port, PHONE, PLATE, [(now - 62, 118.030, LAT), (now - 2, 118.045, LAT)]))
    [live] = wait_for(mine, 90, "the live enter alert")
    assert (live["kind"], live["zone_id"], live["late"]) == ("zone.enter", "haicang-tunnel", False)
    # Coverage came back: the terminal re-uploads two positions from between those reports, both in the tunnel.
    asyncio.run(re_upload(settings.jt808.port, [(now - 31, 118.042), (now - 30, 118.043)]))
    [late] = wait_for(lambda: mine()[1:], 60, "the late audit alert")
    assert (late["kind"], late["zone_id"], late["late"], late["late_fixes"]) == ("zone.enter", "haicang-tunnel",
                                                                              True, 2)
    assert late["alert_id"] != live["alert_id"] and late["class"] == "hazmat"
    text = scrape(settings.web.port)
    assert metric_value(text, "citywatch_fixes_late_total") == 2
    time.sleep(1.0)
    assert [a["kind"] for a in mine()] == ["zone.enter", "zone.enter"]  # no exit: the late fixes moved nothing
    assert worker.proc.poll() is None and gateway.proc.poll() is None
