"""A built wheel, installed away from the repository, runs ``citywatch up`` on its packaged settings and zones."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from engine.brokers.ports import free_port
from tests.conftest import ROOT, wait_for
from tests.integration.up_process import Up

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

NOT_SOURCE = (".git", ".venv", "var", "build", "dist", "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis",
              ".ruff_cache", ".mypy_cache", "test-artifacts", ".helper-notes")


def can_build_without_isolation() -> bool:
    """setuptools builds wheels by itself from 70.1 on; before, it needs the ``wheel`` package."""
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def build_wheel(tmp: Path) -> Path:
    """The wheel, built from a copy of the source tree (links kept as links) so the work tree is left alone."""
    src, out = tmp / "src", tmp / "wheel"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    isolation = ["--no-build-isolation"] if can_build_without_isolation() else []  # else pip fetches the backend
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(out), str(src)],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = out.glob("citywatch-*.whl")
    return wheel


def test_the_wheel_ships_the_defaults_and_runs_up_outside_the_repository(tmp_path):
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        for name, top in [("engine/defaults/config.yaml", ROOT / "config.yaml"),
                          ("engine/defaults/zones/xiamen.geojson", ROOT / "zones" / "xiamen.geojson"),
                          ("engine/defaults/zones/grid/xiamen-grid.geojson",
                           ROOT / "zones" / "grid" / "xiamen-grid.geojson")]:
            assert zf.read(name) == top.read_bytes(), f"{name} in the wheel is not {top}"  # the links were followed

    target, cwd = tmp_path / "site", tmp_path / "somewhere"
    cwd.mkdir()
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # The installed copy only: no repository on the path, no CITYWATCH_* settings but the ports; deps from the venv.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWATCH_") and k != "PYTHONPATH"}
    env |= {"PYTHONPATH": str(target), "CITYWATCH_MQTT__PORT": str(free_port()),
            "CITYWATCH_KAFKA__BOOTSTRAP": f"127.0.0.1:{free_port()}", "CITYWATCH_WEB__PORT": str(free_port()),
            "CITYWATCH_BRIDGE__METRICS_PORT": str(free_port())}
    where = subprocess.run([sys.executable, "-c", "import engine, engine.cli; print(engine.__file__); "
                            "print(engine.cli.version())"], env=env, cwd=cwd, capture_output=True, text=True,
                           timeout=60)
    assert where.returncode == 0, where.stderr
    engine_file, version = where.stdout.split()
    assert Path(engine_file).is_relative_to(target), engine_file
    assert version == tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]

    up = Up(["--no-simulator"], env, cwd)
    try:
        wait_for(lambda: "Citywatch is up." in up.output() or up.proc.poll() is not None, 120, "the banner")
        assert up.proc.poll() is None, up.output()
        out = up.output()
        packaged = target / "engine" / "defaults"
        assert f"settings from {packaged / 'config.yaml'} (packaged defaults)" in out, out
        loaded = re.search(r"zones: (\d+) loaded from (\S+)", out)
        assert loaded and int(loaded.group(1)) > 0, out
        assert Path(loaded.group(2)) == packaged / "zones", out
        assert f"Zones     {packaged / 'zones'}" in out
        assert (cwd / "var" / "logs").is_dir()  # data stays in the current folder, not in the package
        assert not (packaged / "var").exists()
        for child in ("worker", "bridge"):  # the children read the same file, handed to them
            log = cwd / "var" / "logs" / f"{child}.log"
            wait_for(lambda log=log: f"settings from {packaged / 'config.yaml'} (--config)" in log.read_text(errors="replace"),
                     60, f"the {child}'s settings line in {log}")
        code = up.interrupt()
    finally:
        up.kill()
    assert code == 0, up.output()
    assert "citywatch: stopped" in up.output()
