"""Build a tree of frozen dataclasses from a YAML mapping and environment variables, checking as it goes.

Each settings section is a dataclass; a field's type says how a value is read (``bool``, ``int``,
``float``, ``str``, a nested section, or ``dict[str, Section]`` for named entries). Env strings are
converted. A section may declare ``SIZE_LIMITS`` (fields that must be at least 1) and a
``check(prefix)`` method for rules across its fields. Unknown keys, wrong types and failed checks
raise :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Mapping
from typing import Any

from engine.core.errors import ConfigError

SECRET_KEYS = frozenset({"password", "secret", "hmac_key", "api_key"})


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def redact(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = redact(v)
        else:
            out[k] = "***" if k in SECRET_KEYS and v else v
    return out


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Check or convert ``value`` to ``typ``; env strings are converted."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"setting {key}: expected true/false, got {value!r}")
    if typ in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"setting {key}: expected a number, got {value!r}")
        if isinstance(value, (int, float)) and (typ is float or isinstance(value, int)):
            if not math.isfinite(value):
                raise ConfigError(f"setting {key}: expected a finite number, got {value!r}")
            return typ(value)
        if isinstance(value, str):
            try:
                number = typ(value.strip())
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
        raise ConfigError(f"setting {key}: expected {'an integer' if typ is int else 'a number'}, got {value!r}")
    if typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"setting {key}: expected a string, got {value!r}")
    raise ConfigError(f"setting {key}: unsupported type {typ!r}")  # pragma: no cover - programming error


def build(cls: type, raw: Any, prefix: str = "") -> Any:
    """An instance of the dataclass ``cls`` from ``raw``: unknown keys, wrong types and failed checks raise
    :class:`ConfigError` naming the key (``prefix`` + key)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"setting {prefix or '(root)'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(raw) - names)
    if unknown:
        raise ConfigError(f"unknown setting {prefix}{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs: dict[str, Any] = {}
    for name in names:
        if name not in raw:
            continue
        typ = hints[name]
        key = f"{prefix}{name}"
        if isinstance(typ, type) and dataclasses.is_dataclass(typ):
            kwargs[name] = build(typ, raw[name], key + ".")
        elif typing.get_origin(typ) is dict:
            kwargs[name] = _build_named(typing.get_args(typ)[1], raw[name], key)
        else:
            kwargs[name] = _coerce(raw[name], typ, key)
    obj = cls(**kwargs)
    _check(obj, prefix)
    return obj


_NAME = re.compile(r"[a-z0-9]+(?:[_-][a-z0-9]+)*")


def _build_named(cls: type, raw: Any, key: str) -> dict[str, Any]:
    """A ``name -> settings`` mapping (e.g. ``mqtt.auth.gateways``); names are lower case (env keys are)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"setting {key}: expected a mapping of name -> settings, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or len(name) > 64 or not _NAME.fullmatch(name):
            raise ConfigError(f"setting {key}: name {str(name)[:64]!r} must be 1-64 lower-case letters or digits "
                              "joined by single '_' or '-'")
        out[name] = build(cls, value, f"{key}.{name}.")
    return out


def _check(obj: Any, prefix: str) -> None:
    """Range checks that types alone cannot express; then the section's own ``check(prefix)``, if it has one."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if (f.name == "port" or f.name.endswith("_port")) and not (0 < v < 65536):
            raise ConfigError(f"setting {key}: port must be 1-65535, got {v}")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and f.name != "port" and v < 0:
            raise ConfigError(f"setting {key}: must not be negative, got {v}")
    for name in getattr(obj, "SIZE_LIMITS", ()):
        if getattr(obj, name) < 1:
            raise ConfigError(f"setting {prefix}{name}: a size limit must be at least 1, got {getattr(obj, name)}")
    check = getattr(obj, "check", None)
    if check is not None:
        check(prefix)


def apply_env(raw: dict[str, Any], env: Mapping[str, str], prefix: str) -> dict[str, Any]:
    """Overlay ``PREFIX_SECTION__KEY`` variables on ``raw`` (keys lower-cased, nesting by ``__``)."""
    for name, value in env.items():
        if not name.startswith(prefix):
            continue
        path = [p.lower() for p in name[len(prefix):].split("__")]
        if not all(path):
            raise ConfigError(f"environment variable {name}: empty key part")
        node = raw
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name}: {'.'.join(path[:depth + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return raw
