"""Pure geometry: WGS-84 lon/lat, projected metres, areas and the index that finds them.

What lives here is what more than one domain needs to reason about places, with no notion of what a place
means (a restricted zone, a grid unit, a drawn area):

* :mod:`engine.geo.projection`: lon/lat <-> a projected CRS in metres, a cached pyproj ``Transformer`` per CRS.
* :mod:`engine.geo.areas`: a geometry as the area it stands for, in metres (a Point with a radius is a circle,
  a LineString with a width a corridor with round caps, a Polygon itself).
* :mod:`engine.geo.area_index`: :class:`~engine.geo.area_index.AreaIndex`, an ``STRtree`` over areas with
  vectorised point-in-area, segment-meets-area and distance queries over numpy arrays.
* :mod:`engine.geo.geojson`: GeoJSON Feature ids and geometry objects parsed and validated into shapely.

This package works on shapely geometries and numpy arrays. It may import only the standard library, numpy,
shapely 2, pyproj and :mod:`engine.core`; never Faust, Kafka clients, :mod:`engine.settings` or a domain
package (``engine.telemetry``, ``engine.geofence``, ``engine.alerts``, ``engine.casework``,
``engine.vetting``, ``engine.onemap``), so the domains can share it without reaching into each other.
Import from the module that defines a name (``from engine.geo.area_index import AreaIndex``); nothing is
re-exported here.
"""
