"""The JT/T 808 gateway: terminals' TCP connections in, the ``fixes`` topic (and ``fixes.rejected``) out.

A subpackage, not modules next to the codec: the codec (:mod:`engine.jt808`'s own modules) stays pure, the
standard library and :mod:`engine.core` only, as tests/jt808/test_jt808_roundtrip.py holds it; the gateway needs
asyncio, Kafka and the telemetry domain's fix rules.

* :mod:`~engine.jt808.gateway.config`: ``Jt808Config``, the settings sections the gateway reads.
* :mod:`~engine.jt808.gateway.registry`: the terminal registry file, ``Admission`` (who may register) and the
  stateless, signed auth codes.
* :mod:`~engine.jt808.gateway.session`: one connection's protocol logic, no sockets: frames in, replies, fixes
  and rejections out.
* :mod:`~engine.jt808.gateway.ingest`: the Kafka side shared by every connection of a process: partition
  batches, ordered delivery, replies once their records are durable.
* :mod:`~engine.jt808.gateway.connection`: one socket's read loop and its bounds (idle, pending replies,
  slow reader).
* :mod:`~engine.jt808.gateway.server`: ``Gateway`` (the TCP server, the connection limit, graceful stop) and
  ``run_gateway``, the process entry; ``/metrics`` and ``/health`` are :mod:`engine.web.metrics_server`'s.

Import from the module that defines a name; nothing is re-exported here.
"""
