"""The repository stands alone: nothing a user reads points to notes or trackers outside it."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import ROOT

OUTSIDE = re.compile(r"\.\./shared|\b(DESIGN|DOMAIN|STYLE|BROKER-NOTES)\.md\b|\b[Ii]ssues? #?\d+\b")
UPSTREAM = re.compile(r"\b(mosquitto|faust|aiokafka|shapely|tansu) issue #?\d+", re.IGNORECASE)


def test_no_file_points_to_notes_outside_the_repository():
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        if path.suffix in (".png", ".ico", ".woff", ".woff2") or not path.is_file() or "vendor" in path.parts:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(UPSTREAM.sub("", line)) and name != "tests/test_self_contained.py":
                hits.append(f"{name}:{n}: {line.strip()[:100]}")
    assert len(files) > 50 and not hits, "\n".join(hits)


def test_test_files_have_unique_names():
    """The test folders are not packages: pytest imports each test file by its name, so two files of the same
    name in different folders break collection of the whole suite."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    dupes = {n for n in names if names.count(n) > 1}
    assert len(names) > 50 and not dupes, dupes
