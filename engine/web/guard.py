"""Applies API keys (:mod:`engine.web.auth`) and body limits (:mod:`engine.web.body`) to faust view methods.

    guard = app_guard(app, settings.web, lambda reason: metrics.http_refused.labels(reason).inc())

    @app.page("/api/v1/things")
    class Things(View):
        @guard.requires("clerk", action="add a thing")
        async def post(self, request):
            body = await guard.body(request)
            who = principal_of(request)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from engine.web.auth import PRINCIPAL, ApiKeys, Refused, check
from engine.web.body import BODY, read_body, split_api_key
from engine.web.settings import WebSettings

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Any]]


class Guard:
    """Applies :class:`ApiKeys` to view methods and counts what it refuses.

    ``refused`` is called with a short reason label for every refusal
    (``missing_credentials``, ``unknown_credentials``, ``forbidden``,
    ``body_too_large``): wire it to a Prometheus counter.
    """

    def __init__(self, web: WebSettings, refused: Callable[[str], None] | None = None):
        self.keys, self.max_body_bytes, self.refused = ApiKeys(web), web.max_body_bytes, refused
        if not self.keys.required:
            log.warning("web.require_api_keys is false: every HTTP caller is treated as admin (development only)")
        elif self.keys.dev_names:
            log.warning("web.api_keys %s use the development keys from config.yaml; set real keys in production",
                        ", ".join(self.keys.dev_names))

    def refusal(self, view: Any, exc: Refused, body: Callable[[Refused], Any] | None = None) -> Any:
        if self.refused is not None:
            self.refused(exc.label)
        headers = {"WWW-Authenticate": 'Bearer realm="citywatch"'} if exc.status == 401 else None
        return view.json((body or Refused.body)(exc), status=exc.status, headers=headers)

    async def body(self, request: Any) -> bytes:
        """The request body within ``web.max_body_bytes`` (:class:`Refused` 413 beyond)."""
        return await read_body(request, self.max_body_bytes)

    def requires(self, *roles: str, action: str = "do this", key_in_body: bool = False,
                 key_in_cookie: bool = False,
                 body: Callable[[Refused], Any] | None = None) -> Callable[[Handler], Handler]:
        """Decorator for a faust ``View`` method: run it only for a caller with one of ``roles``.

        The caller is then available as :func:`principal_of(request) <principal_of>`. A
        :class:`Refused` raised inside the method (e.g. by :meth:`body`) is answered the same
        way. With ``key_in_body`` (Open311 POSTs), an ``api_key`` field of a JSON or form body
        also counts as the key (a key in the headers wins); it is taken out of the body :meth:`body`
        then returns. With ``key_in_cookie`` (read-only routes a browser page reads, e.g. the
        one-map's EventSource, which cannot send headers) the ``citywatch_key`` cookie counts too
        (headers win); never on a route that changes anything (CSRF, see :func:`engine.web.auth.presented_key`).
        ``body`` shapes the refusal's JSON for APIs with their own error format.
        """

        def wrap(method: Handler) -> Handler:
            @functools.wraps(method)
            async def checked(view: Any, request: Any, **kwargs: Any) -> Any:
                try:
                    body_key = await self._key_from_body(request) if key_in_body else None
                    principal = self.keys.identify(request.headers, body_key, cookie=key_in_cookie)
                    check(principal, roles, action)
                except Refused as exc:
                    log.info("HTTP %s %s refused (%d): %s", request.method, request.path[:80], exc.status, exc.reason)
                    return self.refusal(view, exc, body)
                request[PRINCIPAL] = principal
                try:
                    return await method(view, request, **kwargs)
                except Refused as exc:
                    log.info("HTTP %s %s refused (%d): %s", request.method, request.path[:80], exc.status, exc.reason)
                    return self.refusal(view, exc, body)

            return checked

        return wrap

    async def _key_from_body(self, request: Any) -> str | None:
        key, cleaned = split_api_key(await self.body(request), request.headers.get("Content-Type", ""))
        request[BODY] = cleaned
        return key


def app_guard(app: Any, web: WebSettings, refused: Callable[[str], None] | None = None) -> Guard:
    """The one :class:`Guard` of a worker app, shared by every API registered on it.

    ``refused`` (wired to ``citywatch_http_refused_total``) is taken from whichever API passes one.
    """
    guard = getattr(app, "_citywatch_guard", None)
    if guard is None:
        guard = Guard(web, refused)
        app._citywatch_guard = guard
    elif guard.refused is None:
        guard.refused = refused
    return guard
