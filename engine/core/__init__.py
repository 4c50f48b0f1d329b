"""The ground floor: what every other floor may use, importing nothing else of engine.

* :mod:`~engine.core.clock` - injected time (``Clock``, ``SystemClock``) and ISO 8601 with offsets;
* :mod:`~engine.core.errors` - the error types a user sees, each naming what is wrong;
* :mod:`~engine.core.limits` - JSON nesting depth, measured the same way at every entry point;
* :mod:`~engine.core.metrics` - every Prometheus metric, on a registry passed in;
* :mod:`~engine.core.config` - building typed settings sections from YAML and environment variables;
* :mod:`~engine.core.city` - the ``city`` section (time zone, CRS, bounds) every domain reads.
"""
