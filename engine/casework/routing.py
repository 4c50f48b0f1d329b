"""Which department a task goes to: the service and the place decide (``tasks.departments`` in config.yaml).

Each department lists the services it handles and the grid areas it covers
(codes of any level; ``""`` = city-wide). The department whose area is the
most specific unit containing the report wins (community, then street, then
district, then city); the city-wide one takes the rest. The settings check
that every service has exactly one city-wide department and no two
departments claim the same area for one service, so the answer is unique.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.casework.grid import LEVELS
from engine.casework.settings import DepartmentSettings


def route(service_code: str, grid: Mapping[str, str], departments: Mapping[str, DepartmentSettings]) -> str:
    """The id of the department responsible for ``service_code`` at the place ``grid`` (level -> code).

    >>> depts = {"city_roads": DepartmentSettings("City roads", "pothole", ""),
    ...          "siming_roads": DepartmentSettings("Siming roads", "pothole", "350203")}
    >>> route("pothole", {"street": "350203004", "district": "350203", "city": "3502"}, depts)
    'siming_roads'
    >>> route("pothole", {"district": "350206", "city": "3502"}, depts)
    'city_roads'
    """
    handling = {d: dept for d, dept in departments.items() if service_code in dept.service_codes}
    for level in LEVELS:
        code = grid.get(level)
        if code is None:
            continue
        for dept_id, dept in handling.items():
            if code in dept.area_codes:
                return dept_id
    for dept_id, dept in handling.items():
        if not dept.area_codes:
            return dept_id
    raise LookupError(f"no department handles service {service_code!r} (settings tasks.departments)")
