"""Citywatch: streaming telemetry and geofence engine."""

__version__ = "0.1.0"
