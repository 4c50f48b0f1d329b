"""The ``web`` settings section: the HTTP server every worker runs, and its API keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from engine.core.errors import ConfigError


@dataclass(frozen=True)
class ApiKey:
    """An HTTP API key (engine.web.auth) and the role it carries."""

    api_key: str = field(default="", repr=False)
    role: str = ""        # admin | clerk | records | public | operator | department:<name>


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 6066
    max_body_bytes: int = 1048576
    require_api_keys: bool = True
    api_keys: dict[str, ApiKey] = field(default_factory=lambda: {
        name: ApiKey(f"citywatch-dev-{role}-key", role) for name, role in (
            ("dev_admin", "admin"), ("dev_clerk", "clerk"), ("dev_records", "records"), ("dev_public", "public"),
            ("dev_operator", "operator"))})

    SIZE_LIMITS: ClassVar[tuple[str, ...]] = ("max_body_bytes",)

    def check(self, prefix: str) -> None:
        """Roles are known ones, keys long enough and unique."""
        seen: dict[str, str] = {}
        for name, k in self.api_keys.items():
            role, _, dept = k.role.partition(":")
            if role not in ("admin", "clerk", "records", "public", "operator", "department") \
                    or (role == "department") != bool(dept):
                raise ConfigError(f"setting {prefix}api_keys.{name}.role: expected admin, clerk, records, public, "
                                  f"operator or department:<name>, got {k.role!r}")
            if len(k.api_key) < 16:
                raise ConfigError(f"setting {prefix}api_keys.{name}.api_key: must be at least 16 characters")
            if k.api_key in seen:
                raise ConfigError(f"setting {prefix}api_keys.{name}.api_key: the same key as {seen[k.api_key]}")
            seen[k.api_key] = name
