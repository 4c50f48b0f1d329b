"""Geofence: each worker checks its partitions' fixes against every zone and raises alerts.

Published: ``zone_models`` (``Zone`` and zone-file parsing) and ``settings``. Internal: the zone index
(``index``, over :mod:`engine.geo`), ``checker`` with its per-fix path (``intake``, ``transitions``,
``hysteresis``, ``late``, ``alerting``, ``batch``) and fast lane (``fast_lane``), the vehicles' state as
arrays (``fleet``, ``fleet_store``, ``id_index``), ``offline`` and ``overload`` alerts, the zones topic
(``zone_store``, ``zone_topic``, ``zone_sync``), schedules and the Faust ``agents``. May import plumbing,
core, geo and what the telemetry and alerts domains publish.
"""
