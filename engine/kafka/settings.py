"""The ``kafka`` and ``worker`` settings sections: the cluster, its topics, and the Faust stream worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core.errors import ConfigError


@dataclass(frozen=True)
class KafkaTopics:
    fixes: str = "fixes"
    fixes_rejected: str = "fixes.rejected"
    alerts: str = "alerts"
    zones: str = "zones"


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = "127.0.0.1:9092"
    broker: str = "tansu"
    partitions: int = 4
    replication: int = 1            # replicas of each topic citywatch creates (checked against the broker count)
    min_insync_replicas: int = 1    # min.insync.replicas of those topics (acks=all writes need this many)
    topics: KafkaTopics = field(default_factory=KafkaTopics)

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap.split(",") if s.strip()]

    @property
    def first_host_port(self) -> tuple[str, int]:
        host, _, port = self.servers[0].rpartition(":")
        return host, int(port)

    @property
    def table_topic_configs(self) -> dict[str, str]:
        """Topic configs for the changelogs Faust creates for tables (their replication is Faust's
        ``topic_replication_factor``, set from ``replication``)."""
        return {"min.insync.replicas": str(self.min_insync_replicas)}

    def check(self, prefix: str) -> None:
        if self.broker not in ("tansu", "kafka"):
            raise ConfigError(f"setting {prefix}broker: expected 'tansu' or 'kafka', got {self.broker!r}")
        if not self.servers or any(":" not in s or not s.rpartition(":")[2].isdigit() for s in self.servers):
            raise ConfigError(f"setting {prefix}bootstrap: expected host:port[,host:port], got {self.bootstrap!r}")
        if self.partitions < 1:
            raise ConfigError(f"setting {prefix}partitions: must be at least 1")
        if self.replication < 1:
            raise ConfigError(f"setting {prefix}replication: must be at least 1, got {self.replication}")
        if not 1 <= self.min_insync_replicas <= self.replication:
            raise ConfigError(f"setting {prefix}min_insync_replicas: must be 1 to {prefix}replication "
                              f"({self.replication}), got {self.min_insync_replicas}")


@dataclass(frozen=True)
class WorkerSettings:
    app_id: str = "citywatch"
    data_dir: str = "var/worker"
    batch_size: int = 500
    batch_window_s: float = 0.05
    max_speed_kmh: float = 250.0
    future_tolerance_s: float = 300.0
    active_window_s: float = 600.0
    checkpoint_s: float = 60.0
    max_lag_s: float = 30.0  # system.overloaded past this lag (engine.geofence.overload); 0 = off

    def check(self, prefix: str) -> None:
        if self.checkpoint_s <= 0 or self.batch_size < 1:
            raise ConfigError(f"setting {prefix}checkpoint_s/batch_size: must be above 0")
