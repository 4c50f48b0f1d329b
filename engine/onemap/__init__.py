"""The one-map: a live operations page for security teams and dispatchers.

Every worker serves ``/``: zones, vehicles, alerts, open incidents and open
citizen tasks on one map, updated by server-sent events. Each worker follows
the whole of the ``fixes``, ``alerts``, ``zones`` and ``tasks`` topics with
group-less consumers (:mod:`engine.kafka.follow`), so whichever worker a
browser reaches sees every vehicle. :class:`~engine.onemap.view.OneMapView`
holds the state and computes snapshots and deltas (pure, clock injected);
:class:`~engine.onemap.push.Hub` pushes one encoded delta per tick to every
browser; :mod:`engine.onemap.api` has the routes and :mod:`engine.onemap.agents`
wires it into the Faust app. The page itself is in ``static/`` (Leaflet
vendored, no CDN); it is public, its data needs an ``operator`` API key
(:mod:`engine.onemap.api`).

May import plumbing, core, geo and what the telemetry, geofence (``zone_models``) and casework
(``settings``) domains publish.
"""
