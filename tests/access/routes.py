"""The routes a worker's web server answers (from its aiohttp router) and the ones README documents.

:func:`served_routes` builds the worker's app in-process (``create_app``, not started) and applies
Faust's blueprints as its web server does at start (``init_server``), so it sees every route the
running worker has. :func:`documented_routes` reads the route table of README "Access control > HTTP".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
ANYONE = "anyone"


@dataclass(frozen=True)
class DocumentedRoute:
    method: str
    path: str
    roles: tuple[str, ...]  # () when anyone may, without a key

    @property
    def public(self) -> bool:
        return not self.roles


def path_template(resource: web.AbstractResource) -> str:
    """The route's path as README writes it: ``{name}`` placeholders; a static folder as ``<prefix>/{filename}``."""
    info = resource.get_info()
    if "directory" in info:
        return f"{info['prefix']}/{{filename}}"
    return info.get("formatter") or info["path"]


def served_routes(app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """``(method, path template)`` of every route of ``app``'s web server (``app`` from ``create_app``)."""
    app.web.init_server()  # what the worker's web server does at start: Faust's blueprints, if any, now
    return {(r.method, path_template(r.resource)) for r in app.web.web_app.router.routes() if r.resource}


def http_section(readme: str) -> str:
    m = re.search(r"^### HTTP\n(.*?)(?=^#{2,3} )", readme, flags=re.S | re.M)
    assert m, "README.md has no '### HTTP' section"
    return m.group(1)


def documented_routes(readme_path: Path = ROOT / "README.md") -> list[DocumentedRoute]:
    """The rows of the ``| method | path | who may |`` table in README "Access control > HTTP"."""
    lines = http_section(readme_path.read_text(encoding="utf-8")).splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"\|\s*method\s*\|\s*path\s*\|\s*who may\s*\|", line)),
                 None)
    assert start is not None, "README '### HTTP' has no '| method | path | who may |' table"
    out: list[DocumentedRoute] = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        method, path, who = (c.strip() for c in line.strip().strip("|").split("|"))
        m = re.fullmatch(r"`([^`]+)`", path)
        assert m, f"README route row without a `path`: {line}"
        roles = () if who.startswith(ANYONE) else tuple(r.split(":")[0] for r in re.findall(r"`([^`]+)`", who))
        assert who.startswith(ANYONE) or roles, f"README route row names nobody who may: {line}"
        out.append(DocumentedRoute(method, m.group(1), roles))
    return out
