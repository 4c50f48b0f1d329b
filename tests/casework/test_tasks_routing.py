"""Routing: the service and the place decide the department; the settings refuse an ambiguous table."""

from __future__ import annotations

import pytest

from engine.casework.routing import route
from engine.core.errors import ConfigError
from tests.casework.factories import AIRPORT, CEC, MAINLAND, STATION, grid, settings

DEPARTMENTS = settings().tasks.departments
ZHONGHUA = (24.455, 118.085)  # Zhonghua subdistrict, Siming (old town)


@pytest.mark.parametrize("service,where,department", [
    ("obstruction", STATION, "siming_traffic_police"),
    ("obstruction", AIRPORT, "huli_traffic_police"),
    ("obstruction", MAINLAND, "xiamen_traffic_police"),
    ("road_damage", CEC, "siming_urban_management"),
    ("road_damage", AIRPORT, "xiamen_municipal"),
    ("illegal_dumping", ZHONGHUA, "zhonghua_street_office"),  # a street-level area beats the district
    ("illegal_dumping", STATION, "siming_urban_management"),
    ("illegal_dumping", AIRPORT, "xiamen_urban_management"),
    ("fallen_tree", STATION, "xiamen_landscaping"),
])
def test_most_specific_area_wins(service, where, department):
    assert route(service, grid().locate(*where).codes, DEPARTMENTS) == department


def test_unknown_service_has_no_department():
    with pytest.raises(LookupError):
        route("ufo", {"city": "3502"}, DEPARTMENTS)


def dept(name: str, services: str, areas: str = "") -> dict:
    return {"name": name, "services": services, "areas": areas}


SERVICE = {"pothole": {"name": "Pothole", "accept_s": 60, "resolve_s": 600}}


@pytest.mark.parametrize("departments,message", [
    ({}, "exactly one city-wide department"),
    ({"a": dept("A", "pothole"), "b": dept("B", "pothole")}, "exactly one city-wide department"),
    ({"a": dept("A", "pothole"), "b": dept("B", "pothole", "350203"), "c": dept("C", "pothole", "350203")},
     "same area"),
    ({"a": dept("A", "pothole,ufo")}, "'ufo' is not in tasks.services"),
    ({"a": dept("A", "pothole", "35020")}, "not a grid code"),
    ({"A B": dept("A", "pothole")}, "lower-case"),
])
def test_ambiguous_or_broken_tables_are_refused(departments, message):
    with pytest.raises(ConfigError, match=message):
        settings(tasks={"services": SERVICE, "departments": departments})


@pytest.mark.parametrize("tasks,message", [
    ({"warn_fractions": "0.5,1.2"}, "between 0 and 1"), ({"warn_fractions": "half"}, "comma-separated numbers"),
    ({"sla_scale": 0}, "above 0"), ({"services": {"pothole": {"accept_s": 0}}}, "above 0"),
])
def test_bad_task_settings_name_the_key(tasks, message):
    with pytest.raises(ConfigError, match=message):
        settings(tasks=tasks)


def test_env_overrides_reach_one_service():
    from engine.settings import load_settings
    from tests.conftest import ROOT

    s = load_settings(ROOT / "config.yaml", env={"CITYWATCH_TASKS__SERVICES__OBSTRUCTION__ACCEPT_S": "5",
                                                  "CITYWATCH_TASKS__SLA_SCALE": "0.5"})
    assert s.tasks.services["obstruction"].accept_s == 5.0 and s.tasks.sla_scale == 0.5
    assert s.tasks.services["road_damage"].accept_s == 7200.0
