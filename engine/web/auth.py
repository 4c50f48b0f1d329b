"""API keys with roles for the HTTP APIs on the worker's web server.

Keys come from settings (``web.api_keys``: name -> ``{api_key, role}``) and are
sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (Open311
clients may put ``api_key`` in a POST body instead; see :mod:`engine.web.body`;
the one-map page, whose EventSource cannot send headers, keeps it in the
``citywatch_key`` cookie, honoured on read-only routes only). Keys in URLs are
never accepted: they end up in logs and browser history. Roles:

* ``admin`` - everything;
* ``clerk`` - vet applications and read decisions;
* ``records`` - feed police / transport records;
* ``department:<name>`` - move that department's own tasks;
* ``public`` - a citizen app: report, read public fields;
* ``operator`` - security teams and dispatchers: watch the one-map (live positions, tracks); read-only.

A request without a key is ``anonymous``: it may read what is public. A
missing key where one is needed, or a key that is not configured, gets 401; a
key whose role may not do the thing gets 403. Either way the handler does not
run, so nothing changes. A presented key is never logged or echoed; only the
name of a recognised key appears in logs. With ``web.require_api_keys: false``
every caller is treated as admin (development only; a warning says so).
:class:`engine.web.guard.Guard` applies all this to view methods.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from engine.core.errors import CitywatchError
from engine.web.settings import WebSettings

log = logging.getLogger(__name__)

DEV_KEY_PREFIX = "citywatch-dev-"
KEY_COOKIE = "citywatch_key"  # the one-map page's key (engine/onemap/static/onemap.js writes it)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and role (``department`` set for a department's key)."""

    name: str
    role: str
    department: str | None = None

    def may(self, roles: tuple[str, ...]) -> bool:
        """Whether this caller may act as one of ``roles`` (admin may do anything; "anonymous" admits all)."""
        return self.role == "admin" or self.role in roles or "anonymous" in roles


def request_key(name: str, kind: type) -> Any:
    """A key for storage on a request: ``web.RequestKey`` (aiohttp >= 3.14 warns about plain strings), else the name."""
    make = getattr(web, "RequestKey", None)
    return make(name, kind) if make is not None else name


PRINCIPAL = request_key("citywatch.principal", Principal)  # where the caller is kept on the request (``principal_of``)
ANONYMOUS = Principal("anonymous", "anonymous")
OPEN_ADMIN = Principal("open", "admin")  # web.require_api_keys: false


class Refused(CitywatchError):
    """A request refused before (or instead of) doing anything: ``status`` with a JSON problem body.

    ``label`` is the short reason it is counted under.
    """

    def __init__(self, status: int, error: str, reason: str, label: str):
        self.status, self.error, self.reason, self.label = status, error, reason, label
        super().__init__(f"{status} {error}: {reason}")

    def body(self) -> dict[str, str]:
        return {"error": self.error, "reason": self.reason}


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ApiKeys:
    """The configured keys, looked up by digest (no key is kept in a form a log could show)."""

    def __init__(self, web: WebSettings):
        self.required = web.require_api_keys
        self._by_digest: dict[bytes, Principal] = {}
        for name, k in web.api_keys.items():
            role, _, dept = k.role.partition(":")
            self._by_digest[_digest(k.api_key)] = Principal(name, role, dept or None)
        self.dev_names = sorted(n for n, k in web.api_keys.items() if k.api_key.startswith(DEV_KEY_PREFIX))

    def __repr__(self) -> str:
        return f"ApiKeys(required={self.required}, keys={len(self._by_digest)})"

    def identify(self, headers: Mapping[str, str], body_key: str | None = None, *, cookie: bool = False) -> Principal:
        """The caller named by the request's credentials; :class:`Refused` (401) for unknown ones.

        ``cookie``: the ``citywatch_key`` cookie counts too (see :func:`presented_key`).
        """
        if not self.required:
            return OPEN_ADMIN
        presented = presented_key(headers) or body_key or (presented_key(headers, cookie=True) if cookie else None)
        if not presented:
            return ANONYMOUS
        principal = self._by_digest.get(_digest(presented))
        if principal is None:
            raise Refused(401, "unauthorized", "the API key is not valid", "unknown_credentials")
        return principal


def presented_key(headers: Mapping[str, str], *, cookie: bool = False) -> str | None:
    """The key in ``Authorization: Bearer ...`` or ``X-API-Key``; else, with ``cookie``, the ``citywatch_key`` cookie.

    Headers win over the cookie. A browser sends the cookie with every request to this host (any port:
    cookies are not port-scoped), so only read-only routes should take it (``Guard.requires(key_in_cookie=True)``);
    a state-changing route that did could be driven from another page (CSRF). The cookie's value is
    percent-decoded: the page writes it with ``encodeURIComponent`` (a key may hold ``;``, ``,`` or spaces).
    """
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = headers.get("X-API-Key", "").strip()
    if key or not cookie:
        return key or None
    return cookie_value(_cookie_headers(headers), KEY_COOKIE)


def _cookie_headers(headers: Mapping[str, str]) -> str:
    getall = getattr(headers, "getall", None)  # aiohttp's multidict: more than one Cookie header is allowed
    return "; ".join(getall("Cookie", ())) if getall else headers.get("Cookie", "")


def cookie_value(header: str, name: str) -> str | None:
    """The first non-empty cookie ``name`` in a ``Cookie`` header, percent-decoded.

    Splits on ``;`` rather than using :class:`http.cookies.SimpleCookie`, which drops every cookie of
    a header once one of them is malformed - and other applications on the same host set their own.
    """
    for pair in header.split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            value = unquote(value)  # an invalid escape becomes U+FFFD: no key matches, 401
            if value:
                return value
    return None


def check(principal: Principal, roles: tuple[str, ...], action: str) -> None:
    """:class:`Refused` unless ``principal`` may act as one of ``roles``."""
    if principal.may(roles):
        return
    if principal is ANONYMOUS:
        raise Refused(401, "unauthorized", f"an API key is required to {action}", "missing_credentials")
    raise Refused(403, "forbidden", f"role {principal.role!r} may not {action} (needs {' or '.join(roles)})",
                  "forbidden")


def principal_of(request: Any) -> Principal:
    """The caller a :meth:`Guard.requires` check identified for ``request``."""
    principal: Principal = request.get(PRINCIPAL, ANONYMOUS)
    return principal
