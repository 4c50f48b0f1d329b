"""One root exception and short subclasses; every message names what is wrong."""

from __future__ import annotations


class CitywatchError(Exception):
    """Root of every error the engine raises on purpose."""


class ConfigError(CitywatchError):
    """A setting is missing, of the wrong type or out of range (names the key)."""


class ZoneFileError(CitywatchError):
    """A zone file is invalid; names the file, the feature and the field."""

    def __init__(self, path: str, reason: str, feature: str | None = None, field: str | None = None):
        self.path, self.reason, self.feature, self.field = path, reason, feature, field
        where = path
        if feature is not None:
            where += f", feature {feature}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}")


class FixRejected(CitywatchError):
    """A fix failed validation; ``reason`` is a short machine label, ``detail`` the human text."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


class BrokerStartError(CitywatchError):
    """An embedded broker (Kafka-compatible or MQTT) could not be started."""


class BrokerUnreachable(CitywatchError):
    """A broker did not answer at its configured address; names the address and the setting that holds it."""

    def __init__(self, kind: str, address: str, setting: str, detail: str = ""):
        self.kind, self.address, self.setting = kind, address, setting
        tail = f" ({detail})" if detail else ""
        super().__init__(f"cannot reach {kind} at {address} (setting {setting}){tail}")
