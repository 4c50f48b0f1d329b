"""The ``jt808`` settings section: the JT/T 808 TCP gateway (:mod:`engine.jt808.gateway`).

The section imports only :mod:`engine.core` and the codec, as every module at this level of the package does
(tests/jt808/test_jt808_roundtrip.py checks it); the gateway's view of the whole settings object, which names
other domains' sections, is :class:`engine.jt808.gateway.config.Jt808Config`. ``default_class`` is checked
against the vehicle classes when the gateway starts (:class:`~engine.jt808.gateway.registry.Admission`), since
they live in :mod:`engine.telemetry.models`; so is that ``terminals`` names a file unless ``open_registration``
is true (checked here, every command reading the defaults would fail for want of a registry it never uses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from engine.core.errors import ConfigError
from engine.jt808.framing import DEFAULT_MAX_FRAME_BYTES

#: The smallest frame content worth reading: a 2013 header (12 bytes) and its check code.
MIN_FRAME_BYTES = 13


@dataclass(frozen=True)
class Jt808Settings:
    """One gateway process: where terminals connect, who may, and the bounds each connection lives within."""

    host: str = "127.0.0.1"             # where terminals connect (0.0.0.0 for every interface)
    port: int = 6808
    metrics_port: int = 6069            # /metrics and /health, on web.host
    open_registration: bool = False     # True: any terminal with a plate is admitted (dev); False: the registry
    terminals: str = ""                 # the registry file: CSV phone,plate,class (engine.jt808.gateway.registry)
    default_class: str = "other"        # the class of a terminal admitted by open registration
    hmac_key: str = field(default="", repr=False)  # secret: signs auth codes; "" = built-in dev key (warned)
    max_frame_bytes: int = 2048         # escaped content between two 0x7e; longer frames are dropped (oversize)
    max_bad_frames: int = 5             # bad frames in a row that close a connection
    heartbeat_s: float = 30.0           # a connection without any frame for 3 x this is closed
    max_connections: int = 20000        # per process; beyond, a new connection is closed at once
    max_pending_replies: int = 256      # frames of one connection waiting for Kafka before it is not read
    write_buffer_bytes: int = 65536     # a client whose unsent replies grow beyond this is slow: closed
    reassembly_timeout_s: float = 60.0  # a sub-packaged message not complete this long is dropped
    reuse_port: bool = True             # SO_REUSEPORT: several gateway processes share the port
    shutdown_timeout_s: float = 5.0     # on SIGTERM, wait this long for pending replies before closing

    SIZE_LIMITS: ClassVar[tuple[str, ...]] = ("max_frame_bytes", "max_bad_frames", "max_connections",
                                              "max_pending_replies", "write_buffer_bytes")

    @property
    def idle_timeout_s(self) -> float:
        """A connection that sent no frame this long is closed: three heartbeats missed."""
        return 3 * self.heartbeat_s

    def check(self, prefix: str) -> None:
        if not self.host.strip():
            raise ConfigError(f"setting {prefix}host: must not be empty")
        if self.port == self.metrics_port:
            raise ConfigError(f"setting {prefix}metrics_port: must differ from {prefix}port ({self.port})")
        if not MIN_FRAME_BYTES <= self.max_frame_bytes <= DEFAULT_MAX_FRAME_BYTES:
            raise ConfigError(f"setting {prefix}max_frame_bytes: expected {MIN_FRAME_BYTES}-{DEFAULT_MAX_FRAME_BYTES} "
                              f"(the longest valid frame, every byte escaped), got {self.max_frame_bytes}")
        for name in ("heartbeat_s", "reassembly_timeout_s", "shutdown_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"setting {prefix}{name}: must be above 0, got {getattr(self, name)}")
        if self.write_buffer_bytes < 1024:
            raise ConfigError(f"setting {prefix}write_buffer_bytes: at least 1024 (a few replies), got "
                              f"{self.write_buffer_bytes}")
        if not self.default_class.strip():
            raise ConfigError(f"setting {prefix}default_class: must not be empty")
