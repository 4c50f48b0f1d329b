"""Citywatch: streaming telemetry and geofence engine.

The package is built in floors; each imports only the floors below it (checked by ``make lint``):

1. composition - :mod:`engine.cli`, :mod:`engine.up`, :mod:`engine.app`, :mod:`engine.zones_cli`,
   :mod:`engine.topology` (every topic) and :mod:`engine.settings` (every settings section, composed);
2. domains - :mod:`engine.telemetry`, :mod:`engine.geofence`, :mod:`engine.alerts`, :mod:`engine.onemap`,
   :mod:`engine.casework`, :mod:`engine.vetting`. A domain imports no other domain's internals: only what
   it publishes (records such as ``telemetry.models``/``columns``/``wire``, ``alerts.models``,
   ``geofence.zone_models``, and each domain's ``settings`` section types);
3. plumbing - :mod:`engine.brokers` (embedded brokers for dev and tests) over :mod:`engine.kafka`,
   :mod:`engine.mqtt` and :mod:`engine.web`, which know no domain;
4. :mod:`engine.geo` (pure geometry) and :mod:`engine.core` (clock, errors, limits, metrics, the settings
   loader).
"""

__version__ = "0.1.0"
