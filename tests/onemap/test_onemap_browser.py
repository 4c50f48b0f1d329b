"""The one-map in headless Chromium against ``citywatch up``, as a dispatcher uses it.

The page loads from the worker without a key, shows no data but its key form;
a key of the wrong role is refused there; the dev operator key entered in the
form (kept as a SameSite=Strict session cookie, never shown) lets it draw the
zones, show the simulator's scripted violation (hazmat truck 闽DH0001 entering the Haicang Tunnel) in the
feed; clicking it centres the map on the truck and draws its recent track.
Also: citizen tasks produced to the tasks topic appear in the panel and on the
map, the class filter hides a class, the zone filter narrows the feed, the
search finds a vehicle; "sign out" drops the cookie and the data. Screenshots go to
``test-artifacts/onemap/``.
"""

from __future__ import annotations

import re

import orjson
import pytest

from engine.brokers.ports import free_port
from engine.geofence.zone_store import records_from_path
from engine.kafka.admin import create_topics
from tests.conftest import ROOT, env_for, wait_for
from tests.integration.test_up import Up
from tests.onemap.browser import chrome, quit_chrome, screenshot
from tests.onemap.test_onemap_integration import produce, task

pytestmark = [pytest.mark.integration, pytest.mark.timeout(360)]

TRUCK = "闽DH0001"


@pytest.fixture
def browser():
    d = chrome()
    yield d
    quit_chrome(d)


def js(d, script: str, *args):  # type: ignore[no-untyped-def]
    return d.execute_script(script, *args)


def sign_in(d, key: str) -> None:  # type: ignore[no-untyped-def]
    """Type ``key`` into the page's key form and submit it, as an operator does."""
    wait_for(lambda: d.find_element("id", "signin").is_displayed(), 30, "the key form")
    box = d.find_element("id", "signin-key")
    assert box.get_attribute("type") == "password"
    box.clear()
    box.send_keys(key + "\n")


def refused_loads(d, key: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The console's entries so far, checked: only the snapshot's refusals are errors; no entry holds the key."""
    entries = d.get_log("browser")
    assert not [e for e in entries if key in e.get("message", "")], "the key was written to the console"
    errors = [e["message"] for e in entries if e.get("level") == "SEVERE"]
    assert all("/api/v1/onemap/snapshot" in m and ("401" in m or "403" in m) for m in errors), errors
    return errors


def test_the_page_shows_zones_the_live_violation_and_centres_the_vehicle_on_click(make_settings, browser):
    settings = make_settings(mqtt={"port": free_port(), "fixes_topic": "citywatch/fixes",
                                   "alerts_topic": "citywatch/alerts"},
                             kafka={"bootstrap": f"127.0.0.1:{free_port()}"},
                             simulator={"speedup": 2.0})  # the scripted truck reaches the tunnel in ~18 s
    tasks_topic = settings.kafka.topics.fixes.replace("fixes-", "tasks-")
    settings = settings.replace(onemap={"tasks_topic": tasks_topic})
    up = Up([], env_for(settings))
    try:
        wait_for(lambda: "Citywatch is up." in up.output() or up.proc.poll() is not None, 90, "the banner")
        assert up.proc.poll() is None, up.output()
        create_topics(settings.kafka.bootstrap, {tasks_topic: (1, {"cleanup.policy": "compact"})})
        d = browser
        base = f"http://127.0.0.1:{settings.web.port}"

        def page_loaded() -> bool:
            try:
                d.get(base + "/")
            except Exception:  # noqa: BLE001 - the worker's web server is not up yet
                return False
            return "Citywatch one-map" in d.title

        wait_for(page_loaded, 90, "the page", interval=1.0)

        # No key: the page asks for one and holds no data. A clerk's key is refused in the form.
        operator_key = settings.web.api_keys["dev_operator"].api_key
        wait_for(lambda: d.find_element("id", "signin").is_displayed(), 30, "the key form")
        assert "API key is required" in d.find_element("id", "signin-msg").text
        assert d.find_element("id", "status").text == "key needed"
        assert js(d, "return [window.onemap.state.vehicles.size, window.onemap.state.zones.length, "
                     "window.onemap.stats.connected, !!window.onemap.map]") == [0, 0, False, False]
        sign_in(d, settings.web.api_keys["dev_clerk"].api_key)
        wait_for(lambda: "needs operator" in d.find_element("id", "signin-msg").text, 30, "the 403 message")
        assert d.get_cookie("citywatch_key") is None  # a key that does not work is not kept
        screenshot(d, "key-form")
        sign_in(d, operator_key)
        wait_for(lambda: not d.find_element("id", "signin").is_displayed(), 30, "the form to go")
        jar = d.get_cookie("citywatch_key")
        assert jar is not None and jar["path"] == "/" and jar["sameSite"] == "Strict", jar
        assert "expiry" not in jar and not jar["secure"], jar  # a session cookie; plain HTTP on localhost
        assert d.find_element("id", "signin-key").get_attribute("value") == ""
        assert operator_key not in d.page_source
        assert d.find_element("id", "signout").is_displayed()
        assert len(refused_loads(d, operator_key)) == 2  # the 401 before the form, the clerk's 403

        zones = records_from_path(ROOT / "zones", tz="Asia/Shanghai", loaded_at="")
        wait_for(lambda: js(d, "return window.onemap.stats.zonesDrawn") == len(zones), 60, "the zones drawn")
        assert js(d, "return window.onemap.stats.connected") is True
        assert sorted(js(d, "return window.onemap.state.zones.filter(f => f.properties.rule !== 'grid')"
                          ".map(f => f.id)")) == sorted(zones)
        grid = js(d, "return window.onemap.state.zones.filter(f => f.properties.rule === 'grid').length")
        assert grid > 0
        d.find_element("id", "rule-grid").click()  # grid boundaries: off by default, a toggle
        assert js(d, "return window.onemap.stats.zonesDrawn") == len(zones) + grid
        screenshot(d, "grid")
        d.find_element("id", "rule-grid").click()
        assert js(d, "return window.onemap.stats.zonesDrawn") == len(zones)

        # Vehicles arrive and are drawn; all are inside the city-wide first view.
        wait_for(lambda: js(d, "return window.onemap.drawNow().vehiclesDrawn") >= 20, 60, "the fleet on the map")
        drawn, total, hazmat = js(d, """const s = window.onemap.drawNow(), st = window.onemap.state;
            return [s.vehiclesDrawn, st.vehicles.size,
                    [...st.vehicles.values()].filter(v => st.classes[v.cls] === 'hazmat' && v.lat != null).length];""")
        assert drawn == total and hazmat >= 1
        screenshot(d, "overview")

        # Class filter: hazmat off hides exactly the hazmat trucks.
        d.find_element("id", "cls-hazmat").click()
        drawn, total, hazmat = js(d, """const s = window.onemap.drawNow(), st = window.onemap.state;
            return [s.vehiclesDrawn, st.vehicles.size,
                    [...st.vehicles.values()].filter(v => st.classes[v.cls] === 'hazmat' && v.lat != null).length];""")
        assert drawn == total - hazmat
        d.find_element("id", "cls-hazmat").click()

        # Citizen tasks, as the tasks service publishes them.
        produce(settings.kafka.bootstrap, tasks_topic, [
            ("T-1", orjson.dumps(task("T-1", overdue=True))),
            ("T-2", orjson.dumps(task("T-2", level="city", lat=24.60, long=118.10))),
        ])
        wait_for(lambda: len(d.find_elements("css selector", "#tasks li")) == 2, 30, "the tasks panel")
        overdue = d.find_elements("css selector", "#tasks li.overdue")
        assert [e.get_attribute("data-task-id") for e in overdue] == ["T-1"]
        assert js(d, "return window.onemap.drawNow().tasksDrawn") == 2
        d.find_element("css selector", '#tasks li[data-task-id="T-2"]').click()  # placed on the map: click centres it
        centre = js(d, "const c = window.onemap.map.getCenter(); return [c.lat, c.lng];")
        assert centre == pytest.approx([24.60, 118.10], abs=1e-6)
        assert "Road hazard" in d.find_element("css selector", ".leaflet-popup-content").text

        # The scripted violation appears in the feed; clicking it centres the truck and draws its track.
        def violation():
            for li in d.find_elements("css selector", "#feed li"):
                if "zone.enter" in li.text and TRUCK in li.text and "Haicang Tunnel" in li.text:
                    return li
            return None

        item = wait_for(violation, 150, f"the Haicang Tunnel violation in the feed; console:\n{up.output()[-3000:]}")
        assert "sev-critical" in item.get_attribute("class")
        before = js(d, "const c = window.onemap.map.getCenter(); return [c.lat, c.lng];")
        item.click()
        centre, truck, selected = js(d, """const c = window.onemap.map.getCenter(), st = window.onemap.state;
            const v = st.vehicles.get(st.byId.get(arguments[0]));
            return [[c.lat, c.lng], [v.lat, v.lon], st.selected];""", TRUCK)
        assert selected == TRUCK
        assert abs(before[0] - truck[0]) + abs(before[1] - truck[1]) > 0.05  # it was not in the centre before
        assert centre == pytest.approx(truck, abs=1e-3)  # ~100 m: the truck may have moved one fix since
        assert js(d, "return window.onemap.map.getZoom()") >= 15
        wait_for(lambda: js(d, "return window.onemap.stats.trackPoints") >= 2, 30, "the recent track")
        assert TRUCK in d.find_element("id", "selection").text
        shot = screenshot(d, "violation-centred")
        assert shot.stat().st_size > 10_000

        # Zone filter: only that zone's alerts; search: finds a vehicle, says so when it cannot.
        from selenium.webdriver.support.ui import Select

        Select(d.find_element("id", "zone-filter")).select_by_value("haicang-tunnel")
        texts = [li.text for li in d.find_elements("css selector", "#feed li")]
        assert texts and all("Haicang Tunnel" in t for t in texts)
        other = js(d, """const st = window.onemap.state;
            return [...st.vehicles.values()].find(v => v.lat != null && v.id !== arguments[0]).id;""", TRUCK)
        box = d.find_element("id", "search-id")
        box.clear()
        box.send_keys(other + "\n")
        wait_for(lambda: js(d, "return window.onemap.state.selected") == other, 10, "the searched vehicle")
        box.clear()
        box.send_keys("闽D-NOBODY\n")
        wait_for(lambda: "not on the map" in d.find_element("id", "search-msg").text, 10, "the not-found message")
        errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
        assert errors == [], errors

        # Sign out: the cookie goes, and with it the data; the form is back. Then in again through the form.
        d.find_element("id", "signout").click()
        wait_for(lambda: d.find_element("id", "signin").is_displayed(), 30, "the key form after signing out")
        assert d.get_cookie("citywatch_key") is None
        assert js(d, "return [window.onemap.state.vehicles.size, window.onemap.stats.connected]") == [0, False]
        assert len(refused_loads(d, operator_key)) == 1
        sign_in(d, operator_key)
        wait_for(lambda: js(d, "return window.onemap.stats.connected") is True, 30, "the stream again")
        assert js(d, "return window.onemap.state.vehicles.size") > 0
        assert refused_loads(d, operator_key) == []
        code = up.interrupt()  # with the browser still connected
    finally:
        up.kill()
    assert code == 0, up.output()
    assert re.search(r"citywatch: stopped", up.output())
