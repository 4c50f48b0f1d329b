"""WGS-84 lon/lat <-> a projected CRS in metres.

Distances, buffers and point tests are done in a projected CRS (``EPSG:4548``, CGCS2000 Gauss-Kruger 117 E,
for Xiamen) because degrees are not metres. Building a pyproj ``Transformer`` costs ~50 ms, so one is kept per
CRS and direction; pyproj's transformers are thread-safe, so the index builders off the event loop share them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

WGS84 = "EPSG:4326"


@lru_cache(maxsize=8)
def to_xy(crs: str) -> Transformer:
    """The WGS-84 lon/lat -> ``crs`` transformer (x east, y north: ``always_xy``)."""
    return Transformer.from_crs(WGS84, crs, always_xy=True)


@lru_cache(maxsize=8)
def to_lonlat(crs: str) -> Transformer:
    """The ``crs`` -> WGS-84 lon/lat transformer."""
    return Transformer.from_crs(crs, WGS84, always_xy=True)


def project(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat in degrees -> projected x/y in metres, vectorised.

    >>> x, y = project(np.array([117.0]), np.array([24.48]), "EPSG:4548")
    >>> round(float(x[0]), 6), 2.70e6 < float(y[0]) < 2.72e6
    (500000.0, True)
    """
    x, y = to_xy(crs).transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.asarray(x), np.asarray(y)


def geometry_to_xy(geometry: BaseGeometry, crs: str) -> BaseGeometry:
    """A lon/lat geometry projected to ``crs``, vertex by vertex."""
    return shapely.transform(geometry, to_xy(crs).transform, interleaved=False)


def geometry_to_lonlat(geometry: BaseGeometry, crs: str) -> BaseGeometry:
    """A geometry in ``crs`` brought back to lon/lat, vertex by vertex."""
    return shapely.transform(geometry, to_lonlat(crs).transform, interleaved=False)
