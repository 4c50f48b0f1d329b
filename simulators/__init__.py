"""Simulators that only produce: a vehicle fleet publishing fixes over MQTT.

Run with ``python -m simulators --mqtt-host H --mqtt-port P``.
"""

from simulators.fleet import Fleet, FleetConfig, Vehicle
from simulators.routes import Route

__all__ = ["Fleet", "FleetConfig", "Route", "Vehicle"]
