"""JT/T 808 (road transport satellite terminals over TCP), editions 2013 and 2019: a pure codec here, the
TCP gateway in :mod:`engine.jt808.gateway`, the settings section in :mod:`engine.jt808.settings`.

The codec modules at this level do no networking: bytes in, dataclasses out, and back.

* :mod:`~engine.jt808.framing`: 0x7e delimiters, 0x7d escaping, the XOR check code, and ``FrameReader``,
  which splits a TCP byte stream into frames with a bound on frame size.
* :mod:`~engine.jt808.header`: the message header (``Header``, ``decode_header``, ``encode_header``), BCD
  fields, and ``FrameError`` with its stable ``reason`` labels (``REASONS``), the one error decoding raises.
* :mod:`~engine.jt808.location`: the 0x0200 location report body (``Location``) and the 0x0704 batch upload.
* :mod:`~engine.jt808.messages`: the other bodies (0x0100 registration, 0x0102 authentication, 0x0002
  heartbeat, 0x0003 logout, 0x8100 registration response, 0x8001 platform general response),
  ``decode_body`` and ``encode_body``.
* :mod:`~engine.jt808.codec`: whole frames: ``decode_frame``, ``encode_frame``, the platform's answers
  (``build_registration_response``, ``build_general_response``) and a terminal's messages
  (``encode_registration``, ``encode_authentication``, ``encode_location``, ``encode_batch``, ...).
* :mod:`~engine.jt808.reassembly`: ``Reassembler``, joining sub-packaged messages, bounded in size and time.

The codec modules may import only the standard library and :mod:`engine.core` (the clock, the root error);
never asyncio servers, Kafka or Faust, :mod:`engine.settings` or a domain package. The gateway is a domain
like telemetry: it may import plumbing and what other domains publish (the fix model, columns, wire format,
rejections, fix rules, batching and delivery of :mod:`engine.telemetry`). Import from the module that
defines a name; nothing is re-exported here.
"""
