"""A tiny HTTP client for the access tests: :func:`call` for JSON APIs, :func:`call_raw` for anything."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def call_raw(port: int, method: str, path: str, body: object = None,
             headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    """``(status, body text, response headers)``; ``body`` is sent as JSON."""
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def call(port: int, method: str, path: str, body: object = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict, str]:
    """``(status, decoded JSON body, raw text)``."""
    status, text, _ = call_raw(port, method, path, body, headers)
    return status, (json.loads(text) if text else {}), text
