"""MQTT plumbing: the clients every domain talks to the MQTT broker through.

Two kinds of client, for two kinds of path:

* :mod:`engine.mqtt.paho`: paho-mqtt 2.x clients built from settings (its own network thread, reconnects by
  itself), for the paths that are not busy: ``citywatch up``'s alert lines, the broker's drop counter, the
  reports taken over MQTT.
* asyncio MQTT 3.1.1 clients speaking the wire protocol themselves, for the busy paths, where paho spends
  ~80 us of CPU per QoS 1 message on the 2-core development box (a ``recv()`` per header byte, a ``select()``
  and a ``send()`` per packet): :mod:`engine.mqtt.subscriber` (the bridge's fixes) and
  :mod:`engine.mqtt.publisher` (every publish that must know the broker has it: alerts, answers to reports),
  on :mod:`engine.mqtt.session` (connecting, reconnecting, keepalive, stopping behind a fence),
  :mod:`engine.mqtt.link` (one TCP or TLS connection, batched writes) and :mod:`engine.mqtt.packets`
  (encoding and reading packets).

:mod:`engine.mqtt.sys_topics` names the broker's own topics that Citywatch reads.

This package may import only the standard library, paho-mqtt, :mod:`engine.core` and the settings types
(:mod:`engine.settings`, the ``mqtt`` section's own module here); never a domain package
(``engine.telemetry``, ``engine.geofence``, ``engine.alerts``, ``engine.casework``, ``engine.vetting``,
``engine.onemap``). Import from the module that defines a name (``from engine.mqtt.publisher import
Publisher``); nothing is re-exported here.
"""
