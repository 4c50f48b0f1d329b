"""Citizen hazard reports: Open311 GeoReport v2 intake over HTTP and MQTT, grid placement, duplicate merging."""
