"""A lon/lat geometry as the area it stands for, in projected metres.

A Polygon or MultiPolygon is its own area, projected vertex by vertex. A Point with ``radius_m`` is a
circle; a LineString with ``width_m`` is a corridor ``width_m / 2`` either side of the line with round caps,
so a vehicle at the very end of the road is inside. Buffering happens after projection: a radius in degrees
would be an ellipse of no fixed size on the ground.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from engine.geo.projection import geometry_to_xy

QUAD_SEGS = 32  # 128 vertices per circle: 0.03 % (15 cm at 500 m) inside the true circle


def projected_area(geometry: BaseGeometry, crs: str, *, radius_m: float | None = None,
                   width_m: float | None = None, quad_segs: int = QUAD_SEGS) -> BaseGeometry:
    """The area of a lon/lat ``geometry`` in ``crs`` metres: buffered by ``radius_m``, else by ``width_m / 2``.

    ``quad_segs`` is the number of segments per quarter circle (a drawing may use fewer than the check).

    >>> circle = projected_area(shapely.Point(118.185, 24.478), "EPSG:4548", radius_m=500)
    >>> circle.geom_type, len(circle.exterior.coords), 780_000 < circle.area < 785_398
    ('Polygon', 129, True)

    Raises
    ------
    ValueError
        When the geometry has no finite projection in ``crs`` (outside the CRS's area of use).
    """
    area = geometry_to_xy(geometry, crs)
    if radius_m is not None:
        area = shapely.buffer(area, radius_m, quad_segs=quad_segs, cap_style="round")
    elif width_m is not None:
        area = shapely.buffer(area, width_m / 2, quad_segs=quad_segs, cap_style="round")
    if not np.isfinite(shapely.bounds(area)).all():
        raise ValueError(f"cannot be projected to {crs}")
    return area
