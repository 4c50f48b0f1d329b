"""Structural limits shared by the entry points: how deeply a JSON document may nest.

Sizes (bytes, array lengths, string lengths, vertices) are checked where each
input is read; nesting needs a walk, kept here so every entry point measures
it the same way. A scalar has depth 0, ``[]`` and ``{}`` depth 1,
``[{"a": 1}]`` depth 2.
"""

from __future__ import annotations

from typing import Any


def json_depth(obj: Any, stop_above: int | None = None) -> int:
    """Nesting depth of a decoded JSON value, without recursion.

    With ``stop_above``, returns as soon as the depth is known to exceed it
    (the value returned is then ``stop_above + 1``).

    >>> json_depth([{"a": [1]}, 2]), json_depth(7), json_depth([[[[]]]], stop_above=2)
    (3, 0, 3)
    """
    if not isinstance(obj, (dict, list)):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if stop_above is not None and deepest > stop_above:
                return stop_above + 1
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return deepest


def too_deep(raw: bytes, obj: Any, limit: int) -> bool:
    """Whether ``obj`` (decoded from ``raw``) nests deeper than ``limit``.

    Cheap for the usual input: depth cannot exceed the number of opening
    brackets in the text, so a short bracket count answers without a walk.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return json_depth(obj, stop_above=limit) > limit
