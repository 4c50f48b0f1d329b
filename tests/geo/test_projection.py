"""Projection: metres east/north in the city's CRS, the same as scalar pyproj, and back to lon/lat."""

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from engine.geo.projection import geometry_to_lonlat, geometry_to_xy, project, to_xy

CRS = "EPSG:4548"


def test_project_is_metres_east_north_in_epsg_4548():
    x, y = project(np.array([117.0, 118.06]), np.array([24.48, 24.48]), CRS)
    assert abs(x[0] - 500_000) < 1e-6  # central meridian 117 E, false easting 500 km
    assert 105_000 < x[1] - x[0] < 110_000  # 1.06 degrees of longitude at 24.5 N
    assert 2.70e6 < y[0] < 2.72e6  # northing, not swapped with easting
    utm_x, utm_y = project(np.array([118.06]), np.array([24.48]), "EPSG:32650")
    assert utm_y[0] == pytest.approx(y[1] * 0.9996, abs=1)  # UTM 50N: same meridian, scale 0.9996


def test_vectorised_projection_equals_scalar_pyproj():
    reference = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    lon, lat = np.linspace(117.9, 118.4, 7), np.linspace(24.4, 24.9, 7)
    x, y = project(lon, lat, CRS)
    for k in range(lon.size):
        assert (x[k], y[k]) == pytest.approx(reference.transform(lon[k], lat[k]), abs=1e-6)


def test_a_geometry_goes_to_metres_and_back():
    ring = shapely.Polygon([(118.0, 24.4), (118.1, 24.4), (118.1, 24.5), (118.0, 24.4)])
    metres = geometry_to_xy(ring, CRS)
    assert 40e6 < metres.area < 60e6  # half of a ~10 x 11 km box, in square metres
    assert shapely.hausdorff_distance(geometry_to_lonlat(metres, CRS), ring) < 1e-9


def test_one_transformer_per_crs():
    assert to_xy(CRS) is to_xy(CRS) and to_xy(CRS) is not to_xy("EPSG:32650")
