"""Telemetry: GPS fixes from vehicle gateways over MQTT, validated, batched as columns, onto Kafka.

Published to the other domains: ``models`` (``Fix``, vehicle classes), ``columns`` (``FixColumns``,
fixes as arrays), ``wire`` (the ``fixes`` record format and its readers), ``rejection`` (what goes to
``fixes.rejected``), ``filters`` (fix-quality rules every reader of fixes applies), ``settings``, and for
other sources of fixes (the JT/T 808 gateway) ``fix_rules`` (the rules one fix passes), ``batching``
(partition batches) and ``delivery`` (records to Kafka until Kafka has them). Internal: ``validation`` and
``columnar_parse`` (payload validation, per element and over columns), ``bulk_validation``, ``bridge`` (the
MQTT-to-Kafka bridge process), ``broker_drops``, ``agents``. May import plumbing and core only.
"""
