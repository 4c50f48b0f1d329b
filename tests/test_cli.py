"""The command line: options before or after the command, --version, which settings file is read, and one clear
line (no traceback) when Kafka cannot be reached."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from engine.brokers.ports import free_port
from engine.cli import build_parser, main
from engine.core.errors import ConfigError
from engine.settings import CONFIG_ENV, DEFAULT_CONFIG, load_settings, resolve_config_path
from tests.conftest import ROOT


def citywatch(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m engine ARGS`` from ``cwd`` with no CITYWATCH_* variables but ``env``; bounded by a timeout."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CITYWATCH_")}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=90)


def config_with_kafka_port(path: Path, port: int) -> Path:
    """A settings file that differs from the defaults only in where Kafka is (nothing listens there)."""
    path.write_text(f"kafka:\n  bootstrap: 127.0.0.1:{port}\n", encoding="utf-8")
    return path


def unreachable_line(port: int) -> str:
    return f"citywatch: cannot reach Kafka at 127.0.0.1:{port} (setting kafka.bootstrap)"


# --- options in any position, --version ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv, expected", [
    (["worker", "--log-level", "debug"], {"command": "worker", "log_level": "debug", "config": None}),
    (["--log-level", "debug", "worker"], {"command": "worker", "log_level": "debug", "config": None}),
    (["zones", "load", "P", "--config", "F"], {"action": "load", "path": "P", "config": "F", "log_level": None}),
    (["--config", "F", "zones", "list"], {"action": "list", "config": "F", "log_level": None}),
    (["zones", "--config", "F", "list", "--json"], {"action": "list", "config": "F", "json": True}),
    (["up", "--zones", "D", "--config", "F"], {"command": "up", "zones": "D", "config": "F"}),
    (["--zones", "D", "up", "--no-simulator"], {"command": "up", "zones": "D", "no_simulator": True}),
    (["--config", "A", "bridge", "--config", "B"], {"command": "bridge", "config": "B"}),  # the later one wins
])
def test_common_options_parse_before_or_after_the_command(argv, expected):
    args = vars(build_parser().parse_args(argv))
    assert {k: args.get(k) for k in expected} == expected


@pytest.mark.parametrize("argv", [["worker", "--log-level", "loud"], ["--log-level", "loud", "worker"]])
def test_log_level_after_or_before_the_command_is_applied(argv, tmp_path):
    r = citywatch(argv, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == ("citywatch: setting log.level: expected debug, info, warning, error or critical, "
                                "got 'loud'")


def test_zones_only_goes_with_the_commands_that_read_zones(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--zones", str(tmp_path), "bridge"])
    assert exit_.value.code == 2
    assert "--zones applies to `citywatch up` and `citywatch worker`, not `citywatch bridge`" in capsys.readouterr().err


def test_version_prints_the_project_version(capsys):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"citywatch {version}\n"


def test_help_names_the_lookup_order(capsys):
    with pytest.raises(SystemExit):
        main(["zones", "list", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "settings file (default: $CITYWATCH_CONFIG, else ./config.yaml, else the packaged defaults)" in out


# --- which settings file ------------------------------------------------------------------------------------------

def test_lookup_order_config_then_env_then_current_folder_then_packaged(tmp_path):
    cwd, other = tmp_path / "cwd", tmp_path / "other"
    cwd.mkdir(), other.mkdir()
    assert resolve_config_path(None, {}, cwd) == (DEFAULT_CONFIG, "packaged defaults")
    local = config_with_kafka_port(cwd / "config.yaml", 1)
    assert resolve_config_path(None, {}, cwd) == (local, "config.yaml in the current folder")
    from_env = config_with_kafka_port(other / "env.yaml", 2)
    assert resolve_config_path(None, {CONFIG_ENV: str(from_env)}, cwd) == (from_env, CONFIG_ENV)
    given = config_with_kafka_port(other / "given.yaml", 3)
    assert resolve_config_path("../other/given.yaml", {CONFIG_ENV: str(from_env)}, cwd) == (
        cwd / "../other/given.yaml", "--config")
    assert load_settings(given, env={}).kafka.bootstrap == "127.0.0.1:3"


def test_a_named_file_that_does_not_exist_is_an_error_naming_it(tmp_path):
    (tmp_path / "config.yaml").write_text("{}\n")  # never a silent fallback to it
    with pytest.raises(ConfigError, match=r"config file nope\.yaml \(--config\) does not exist"):
        resolve_config_path("nope.yaml", {}, tmp_path)
    missing = str(tmp_path / "gone.yaml")
    with pytest.raises(ConfigError, match=rf"config file {missing} \(environment variable CITYWATCH_CONFIG\) "
                                          "does not exist"):
        resolve_config_path(None, {CONFIG_ENV: missing}, tmp_path)
    with pytest.raises(ConfigError, match=r"\(--config\) is not a file"):
        resolve_config_path(str(tmp_path), {}, tmp_path)


def test_citywatch_config_names_the_file_and_is_not_a_setting(tmp_path):
    cfg = config_with_kafka_port(tmp_path / "elsewhere.yaml", 4)
    assert load_settings(env={CONFIG_ENV: str(cfg)}).kafka.bootstrap == "127.0.0.1:4"


def test_packaged_defaults_point_at_the_packaged_zones_and_keep_data_in_the_current_folder():
    s = load_settings(DEFAULT_CONFIG, env={})
    assert Path(s.zones.dir) == DEFAULT_CONFIG.parent / "zones"
    assert Path(s.reports.grid_dir) == DEFAULT_CONFIG.parent / "zones" / "grid"
    assert sorted(p.name for p in Path(s.zones.dir).glob("*.geojson")) == ["xiamen.geojson"]
    assert sorted(p.name for p in Path(s.reports.grid_dir).glob("*.geojson")) == ["xiamen-grid.geojson"]
    assert (s.worker.data_dir, s.up.data_dir) == ("var/worker", "var")
    # an override by environment is the user's own path, relative to the current folder
    assert load_settings(DEFAULT_CONFIG, env={"CITYWATCH_ZONES__DIR": "mine"}).zones.dir == "mine"


def test_packaged_defaults_are_the_top_level_files():
    pairs = [(DEFAULT_CONFIG, ROOT / "config.yaml")]
    pairs += [(DEFAULT_CONFIG.parent / p.relative_to(ROOT), p) for p in sorted((ROOT / "zones").rglob("*.geojson"))]
    assert len(pairs) >= 3
    for packaged, top in pairs:
        assert filecmp.cmp(packaged, top, shallow=False), f"{packaged} differs from {top}"


@pytest.mark.parametrize("how", ["current folder", "env", "--config before", "--config after"])
def test_the_cli_reads_the_file_the_lookup_names_and_logs_it(tmp_path, how):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    ports = {name: free_port() for name in ("local", "env", "given")}
    local = config_with_kafka_port(cwd / "config.yaml", ports["local"])
    from_env = config_with_kafka_port(tmp_path / "env.yaml", ports["env"])
    given = config_with_kafka_port(tmp_path / "given.yaml", ports["given"])
    env = {} if how == "current folder" else {CONFIG_ENV: str(from_env)}
    argv = {"current folder": ["zones", "list"], "env": ["zones", "list"],
            "--config before": ["--config", str(given), "zones", "list"],
            "--config after": ["zones", "list", "--config", str(given)]}[how]
    r = citywatch(["--log-level", "info", *argv], cwd=cwd, env=env)
    expect_file, expect_why, expect_port = {
        "current folder": (local, "config.yaml in the current folder", ports["local"]),
        "env": (from_env, CONFIG_ENV, ports["env"])}.get(how, (given, "--config", ports["given"]))
    assert r.returncode == 2, r.stderr
    assert f"INFO citywatch: settings from {expect_file} ({expect_why})" in r.stderr
    assert unreachable_line(expect_port) in r.stderr.splitlines()


# --- a broker that cannot be reached ------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["zones", "list"], ["zones", "list", "--json"], ["zones", "remove", "some-zone"],
                                  ["zones", "load", str(ROOT / "zones")]])
def test_zones_commands_against_a_closed_port_end_in_one_line(tmp_path, argv):
    port = free_port()
    r = citywatch(argv, cwd=tmp_path, env={"CITYWATCH_KAFKA__BOOTSTRAP": f"127.0.0.1:{port}"})
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(unreachable_line(port)), r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("command", ["worker", "bridge"])
def test_services_against_a_closed_port_end_in_one_clear_line(tmp_path, command):
    port = free_port()
    r = citywatch([command], cwd=tmp_path, env={"CITYWATCH_KAFKA__BOOTSTRAP": f"127.0.0.1:{port}",
                                                "CITYWATCH_WEB__PORT": str(free_port()),
                                                "CITYWATCH_BRIDGE__METRICS_PORT": str(free_port())})
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].startswith(unreachable_line(port)), r.stderr
