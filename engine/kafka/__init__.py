"""Kafka plumbing: everything about talking to a Kafka, for every domain, knowing none of them.

* :mod:`~engine.kafka.admin` - starting clients (a Kafka that does not answer is ``BrokerUnreachable``),
  metadata, creating topics from their specs.
* :mod:`~engine.kafka.topics` - Faust raw-bytes topics, the shared ``fixes``/``fixes.rejected``/``alerts``
  topics, :func:`~engine.kafka.topics.ensure_topics`. Which topics exist is :mod:`engine.topology`'s.
* :mod:`~engine.kafka.follow` - the group-less follower (every worker reads every partition) and its
  bounded variant, ``read_to_end``; :mod:`~engine.kafka.metadata` - a topic's partitions on any broker.
* :mod:`~engine.kafka.answers` - waiting for the answer with a request's id; :mod:`~engine.kafka.tables` -
  ``str``-keyed views of bytes-keyed Faust tables.
* :mod:`~engine.kafka.producers`, :mod:`~engine.kafka.faust_fixes`, :mod:`~engine.kafka.tansu` - how
  producers write per kind of broker, and the corrections to Faust (every broker; Tansu only).
* :mod:`~engine.kafka.settings` - the ``kafka`` and ``worker`` settings sections.

May import the standard library, faust, aiokafka, :mod:`engine.core` and settings types of its own
(:mod:`engine.kafka.settings`); never a domain, :mod:`engine.settings` (which gathers every domain's
settings) or the launchers of :mod:`engine.brokers` (which import this package for readiness).
"""
