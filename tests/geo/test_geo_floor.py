"""engine.geo stays pure geometry: its docstring examples run, and it imports no domain, broker or settings."""

from __future__ import annotations

import ast
import doctest
import sys

import pytest

from engine.geo import area_index, areas, geojson, projection
from tests.conftest import ROOT

ALLOWED = {"numpy", "shapely", "pyproj", "engine.core", "engine.geo"}


@pytest.mark.parametrize("module", [area_index, areas, geojson, projection], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_imports_only_the_standard_library_numpy_shapely_pyproj_and_core():
    bad = []
    for path in sorted((ROOT / "engine" / "geo").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or name == "__future__":
                    continue
                if not any(name == a or name.startswith(a + ".") for a in ALLOWED):
                    bad.append(f"{path.name}: {name}")
    assert not bad, bad
