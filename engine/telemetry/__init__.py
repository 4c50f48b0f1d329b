"""Telemetry: GPS fixes from vehicle gateways over MQTT, validated, batched as columns, onto Kafka.

Published to the other domains: ``models`` (``Fix``, vehicle classes), ``columns`` (``FixColumns``,
fixes as arrays), ``wire`` (the ``fixes`` record format and its readers), ``rejection`` (what goes to
``fixes.rejected``), ``filters`` (fix-quality rules every reader of fixes applies) and ``settings``.
Internal: ``fix_rules``, ``validation`` and ``columnar_parse`` (payload validation, per element and over
columns), ``bulk_validation``, ``batching``, ``delivery``, ``bridge`` and ``bridge_http`` (the
MQTT-to-Kafka bridge process), ``broker_drops``, ``agents``. May import plumbing and core only.
"""
