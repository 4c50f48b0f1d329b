"""Request bodies read within ``web.max_body_bytes``, and an Open311 ``api_key`` taken out of them.

A body larger than the limit is refused with 413 naming the limit, whether
it says its length up front (``Content-Length``) or not (chunked): reading
stops one chunk past the limit. A body is read once and kept on the request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from engine.web.auth import Refused, request_key

BODY = request_key("citywatch.body", bytes)  # where the body read is kept on the request
CHUNK = 65536


def too_large(size: int | str, limit: int) -> Refused:
    return Refused(413, "body_too_large", f"the request body is {size} bytes > limit web.max_body_bytes ({limit})",
                   "body_too_large")


async def read_body(request: Any, limit: int) -> bytes:
    """The whole body (at most ``limit`` bytes), or :class:`Refused` (413)."""
    if BODY in request:
        body: bytes = request[BODY]
        return body
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(declared, limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large(f"more than {limit}", limit)
        chunks.append(chunk)
    request[BODY] = body = b"".join(chunks)
    return body


def split_api_key(body: bytes, content_type: str) -> tuple[str | None, bytes]:
    """``(api_key, body without it)`` for a JSON object or form body (Open311 puts the key there).

    A body that is neither, or holds no string ``api_key``, comes back unchanged with ``None``.
    The key never stays in a body that is stored or echoed.
    """
    if "application/x-www-form-urlencoded" in content_type:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                              max_num_fields=10000)
        except (UnicodeDecodeError, ValueError):
            return None, body
        keys = [v for k, v in pairs if k == "api_key"]
        if not keys:
            return None, body
        return keys[-1] or None, urlencode([(k, v) for k, v in pairs if k != "api_key"]).encode()
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, body
    if not isinstance(doc, dict) or "api_key" not in doc:
        return None, body
    key = doc.pop("api_key")
    return (key if isinstance(key, str) and key else None), orjson.dumps(doc)
