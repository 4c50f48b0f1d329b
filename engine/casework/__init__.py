"""Casework: citizens' hazard reports and the tasks made from them, one domain.

Reports: Open311 GeoReport v2 over HTTP (``open311``) and MQTT (``mqtt_intake``), ``validation`` and
``intake``, placement on the four-level ``grid``, duplicate merging (``dedup``), ``queries``,
``report_models``, ``report_topics``, ``report_agents``. Tasks: ``task_models``, the state machine
(``states``), ``routing``, SLAs and escalation (``sla``, ``alerts``), the ``book`` of a partition's
tasks, the ``directory`` every worker follows (``follow``), the department ``api``, ``task_topics``,
``task_agents``. ``wiring`` registers both sides; ``settings`` holds the ``reports`` and ``tasks``
sections. May import plumbing, core, geo and what the alerts domain publishes.
"""
