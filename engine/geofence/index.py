"""The zones as an :class:`~engine.geo.area_index.AreaIndex`: area ``j`` is zone ``j``.

Each zone is projected once (``EPSG:4548`` by default, CGCS2000 Gauss-Kruger 117 E) into its area by
:func:`engine.geo.areas.projected_area`: a polygon vertex by vertex, a circle (Point + ``radius_m``), a
corridor with round caps (LineString + ``width_m``). The queries are the area index's, so the ``area_idx`` of
their ``(fix_idx, area_idx)`` pairs indexes :attr:`ZoneIndex.zones`. A zone change means building a new index.

>>> index = ZoneIndex(load_zone_dir("zones"))                       # doctest: +SKIP
>>> x, y = index.project(np.array([118.06]), np.array([24.4815]))   # doctest: +SKIP
>>> index.point_hits(x, y)                                          # doctest: +SKIP
(array([0]), array([0]))
"""

from __future__ import annotations

from collections.abc import Sequence

from shapely.geometry.base import BaseGeometry

from engine.geo.area_index import AreaIndex
from engine.geo.areas import projected_area
from engine.geofence.zone_models import Zone


class ZoneIndex(AreaIndex):
    """Immutable index of zone areas in projected metres, in the order of ``zones``."""

    def __init__(self, zones: Sequence[Zone], crs: str = "EPSG:4548"):
        self.zones: tuple[Zone, ...] = tuple(zones)
        super().__init__([_area(zone, crs) for zone in self.zones], crs)


def _area(zone: Zone, crs: str) -> BaseGeometry:
    """The zone's projected area, or a ValueError naming the zone."""
    try:
        return projected_area(zone.geometry, crs, radius_m=zone.radius_m, width_m=zone.width_m)
    except ValueError as exc:
        raise ValueError(f"zone {zone.id!r} {exc}") from None
