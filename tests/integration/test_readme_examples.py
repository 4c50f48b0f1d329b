"""The README's shell examples, run as written against a real ``citywatch up --no-simulator``.

An example is a fenced ``sh`` block of README.md that calls curl. The blocks run in README order in one bash
(a reader pasting them into one terminal: later blocks use shell variables that earlier ones set), with
``set -e -o pipefail`` and nothing changed but ``localhost:6066`` / ``127.0.0.1:6066``, which point at this
test's worker. A step is a block's code up to a comment; the comment is the answer the step prints. ``…`` in an
answer matches any text inside a string, stands for more keys as a key (``"…": "…"``), and for any further
elements as a list element; everything else must be equal (same keys, same values).

curl is given a config file (``CURL_HOME``) that writes each call's HTTP status to stderr; every call must
answer 2xx. The system under test uses the development API keys of ``config.yaml``, as the README does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.settings import load_settings
from engine.vetting.privacy import scrub
from tests.casework.helpers import citizen_settings
from tests.conftest import ROOT, env_for, wait_for
from tests.integration.up_process import Up

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

README = ROOT / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.M | re.S)
ADDRESS = re.compile(r"\b(?:localhost|127\.0\.0\.1):(\d+)")
README_PORT = 6066
ELIDED = "…"
SEP = "\x1e"  # written to stdout and stderr after every step, to cut the output into steps
STATUS = re.compile(r"^readme-curl (\d{3}) (\S*)$", re.M)
CURLRC = 'show-error\nmax-time = 60\nwrite-out = "%{stderr}readme-curl %{http_code} %{url_effective}\\n"\n'
VETTING_TOPICS = ("applications", "requests", "decisions", "records_in", "records", "rejected")
SECTIONS_WITH_EXAMPLES = ("### API", "### Open311 GeoReport v2", "### Department actions")


@dataclass(frozen=True)
class Step:
    code: str
    answer: str | None  # the comment after the code, without the "#"s
    line: int  # README line of the step's first line of code

    def curl_calls(self) -> int:
        return len(re.findall(r"(?<![\w-])curl ", self.code))


def readme_steps(text: str) -> list[Step]:
    steps: list[Step] = []
    for m in BLOCK.finditer(text):
        if not re.search(r"(?<![\w-])curl ", m.group(1)):
            continue
        first = text.count("\n", 0, m.start(1)) + 1
        code: list[str] = []
        answer: list[str] = []
        start = first

        for i, line in enumerate(m.group(1).splitlines()):
            if line.lstrip().startswith("#"):
                answer.append(line.lstrip()[1:])
                continue
            if answer:  # code after an answer: a new step
                _close(steps, code, answer, start)
                code, answer = [], []
            if not code:
                start = first + i
            code.append(line)
        _close(steps, code, answer, start)
    return steps


def _close(steps: list[Step], code: list[str], answer: list[str], start: int) -> None:
    if code:
        steps.append(Step("\n".join(code), "\n".join(answer) if answer else None, start))


def section_of(text: str, line: int) -> str:
    """The nearest heading above README line ``line`` (outside code blocks)."""
    head, fenced = "", False
    for h in text.splitlines()[:line]:
        if h.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", h):
            head = h
    return head


def mismatches(shown: object, actual: object, where: str = "answer") -> list[str]:
    """How ``actual`` differs from the answer the README shows (``…`` elides, see the module docstring)."""
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: README shows an object, got {type(actual).__name__}"]
        keys = [k for k in shown if k != ELIDED]
        out = [f"{where}: no key {k!r}" for k in keys if k not in actual]
        if ELIDED not in shown:
            out += [f"{where}: key {k!r} is not in the README's answer" for k in actual if k not in shown]
        for k in keys:
            if k in actual:
                out += mismatches(shown[k], actual[k], f"{where}.{k}")
        return out
    if isinstance(shown, list):
        if not isinstance(actual, list):
            return [f"{where}: README shows a list, got {type(actual).__name__}"]
        if ELIDED in shown:
            cut = shown.index(ELIDED)
            head, tail = shown[:cut], shown[cut + 1:]
            if len(actual) < len(head) + len(tail):
                return [f"{where}: README shows at least {len(head) + len(tail)} elements, got {len(actual)}"]
            pairs = list(zip(head, actual)) + list(zip(tail, actual[len(actual) - len(tail):]))
            idx = list(range(len(head))) + list(range(len(actual) - len(tail), len(actual)))
        else:
            if len(actual) != len(shown):
                return [f"{where}: README shows {len(shown)} elements, got {len(actual)}"]
            pairs, idx = list(zip(shown, actual)), list(range(len(shown)))
        return [m for i, (s, a) in zip(idx, pairs) for m in mismatches(s, a, f"{where}[{i}]")]
    if isinstance(shown, str):
        pattern = ".*".join(re.escape(part) for part in shown.split(ELIDED))
        if isinstance(actual, str) and re.fullmatch(pattern, actual, re.S):
            return []
        return [f"{where}: README shows {shown!r}, got {actual!r}"]
    if isinstance(shown, bool) or shown is None:
        return [] if actual is shown else [f"{where}: README shows {shown!r}, got {actual!r}"]
    number = isinstance(actual, (int, float)) and not isinstance(actual, bool)
    return [] if number and actual == shown else [f"{where}: README shows {shown!r}, got {actual!r}"]


def test_answer_matching_elides_only_where_the_readme_says_so():
    shown = {"id": "e2a5…-…", "tags": ["a", "…", "z"], "n": 2, "none": None, "more": {"k": "v", "…": "…"}}
    assert mismatches(shown, {"id": "e2a5ff-12", "tags": ["a", "b", "c", "z"], "n": 2, "none": None,
                              "more": {"k": "v", "x": 1}}) == []
    wrong = mismatches(shown, {"id": "ffff-12", "tags": ["a"], "n": 2.5, "none": False, "more": {"x": 1}, "new": 0})
    assert wrong == ["answer: key 'new' is not in the README's answer",
                     "answer.id: README shows 'e2a5…-…', got 'ffff-12'",
                     "answer.tags: README shows at least 2 elements, got 1", "answer.n: README shows 2, got 2.5",
                     "answer.none: README shows None, got False", "answer.more: no key 'k'"]
    assert mismatches([{"a": 1}], [{"a": 1}, {"a": 1}]) == ["answer: README shows 1 elements, got 2"]
    assert mismatches({"ok": True}, {"ok": 1}) == ["answer.ok: README shows True, got 1"]


def test_readme_steps_split_code_from_the_answers_it_shows():
    text = ("# T\n\n```sh\nx=$(curl -s a \\\n  -d 1)\necho \"$x\"\n# {\"a\":\n#  1}\ncurl -s b\n```\n\n"
            "```sh\nmake up\n```\n")
    assert readme_steps(text) == [Step('x=$(curl -s a \\\n  -d 1)\necho "$x"', ' {"a":\n  1}', 4),
                                  Step("curl -s b", None, 9)]
    assert [s.curl_calls() for s in readme_steps(text)] == [1, 1]


def test_every_curl_command_in_the_readme_is_in_an_example_block():
    text = README.read_text(encoding="utf-8")
    in_blocks = "\n".join(m.group(1) for m in BLOCK.finditer(text))
    commands = [line.strip() for line in text.splitlines()
                if re.match(r"\s*(\w+=\$\()?curl ", line)]
    assert commands, "README.md has no curl examples"
    assert [c for c in commands if c not in in_blocks] == [], "curl commands outside a ```sh block"
    steps = readme_steps(text)
    for title in SECTIONS_WITH_EXAMPLES:
        assert any(section_of(text, s.line).startswith(title) for s in steps), f"no example under {title!r}"
    ports = {int(p) for s in steps for p in ADDRESS.findall(s.code)}
    assert ports == {README_PORT}, f"examples must address the default web.port {README_PORT}, found {ports}"
    used = set(re.findall(r"citywatch-dev-[a-z-]+-key", "\n".join(s.code for s in steps)))
    dev_keys = {k.api_key for k in load_settings(ROOT / "config.yaml", env={}).web.api_keys.values()}
    assert used and used <= dev_keys, f"keys not in config.yaml web.api_keys: {sorted(used - dev_keys)}"


def get_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


@pytest.fixture
def readme_system(make_settings):
    """``citywatch up --no-simulator`` on config.yaml (dev API keys), on this test's ports and topics."""
    tag = uuid.uuid4().hex[:8]
    settings = citizen_settings(make_settings, vetting={"topics": {n: f"vetting-{tag}.{n}" for n in VETTING_TOPICS}})
    assert settings.web.api_keys == load_settings(ROOT / "config.yaml", env={}).web.api_keys
    up = Up(["--no-simulator"], env_for(settings))
    try:
        wait_for(lambda: "Citywatch is up." in up.output() or up.proc.poll() is not None, 90, "the banner")
        assert up.proc.poll() is None, up.output()
        port = settings.web.port

        def ready() -> bool:
            assert up.proc.poll() is None, up.output()
            return all(get_status(port, p) == 200 for p in ("/api/v1/vetting/health", "/api/v1/tasks/health"))

        wait_for(ready, 120, "the worker to be ready (vetting and tasks health)")
        yield port, up
        up.interrupt()
    finally:
        up.kill()


def env_for_shell() -> dict[str, str]:
    """The test's environment without Citywatch settings: the examples are what a reader types in a shell."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CITYWATCH_")}


def test_readme_examples_run_as_written(readme_system, tmp_path: Path):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (apt-get install curl): the README examples are curl commands")
    if shutil.which("python3") is None:
        pytest.skip("python3 is not on PATH: the README examples use it to pick ids out of answers")
    port, up = readme_system
    steps = readme_steps(README.read_text(encoding="utf-8"))
    script = ["set -e -o pipefail"]
    for s in steps:
        script += [ADDRESS.sub(f"127.0.0.1:{port}", s.code), f"printf '{SEP}'; printf '{SEP}' >&2"]
    curl_home = tmp_path / "curl"
    curl_home.mkdir()
    (curl_home / ".curlrc").write_text(CURLRC)
    env = {**env_for_shell(), "CURL_HOME": str(curl_home)}
    r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, capture_output=True, timeout=240)
    outs = r.stdout.decode("utf-8", "replace").split(SEP)
    errs = r.stderr.decode("utf-8", "replace").split(SEP)
    for i, s in enumerate(steps):
        where = f"README.md line {s.line}:\n{scrub(s.code)}\n"
        assert i < len(outs) - 1, (f"{where}failed (exit {r.returncode}); stderr:\n{scrub(errs[i][-3000:])}\n"
                                   f"stdout:\n{scrub(outs[i][-3000:])}")
        calls = STATUS.findall(errs[i])
        assert len(calls) == s.curl_calls(), f"{where}ran {len(calls)} curl calls, expected {s.curl_calls()}"
        bad = [(code, url) for code, url in calls if not code.startswith("2")]
        assert not bad, f"{where}answered {bad}:\n{scrub(outs[i][-3000:])}"
        if s.answer is None:
            continue
        try:
            shown = json.loads(s.answer)
        except ValueError as exc:
            pytest.fail(f"{where}the answer the README shows is not JSON ({exc}):\n{scrub(s.answer)}")
        try:
            actual = json.loads(outs[i])
        except ValueError:
            pytest.fail(f"{where}printed no JSON answer: {scrub(outs[i][-3000:])!r}")
        wrong = mismatches(shown, actual)
        assert not wrong, f"{where}answer differs from the README's:\n" + scrub("\n".join(wrong))
    assert r.returncode == 0, scrub(r.stderr.decode("utf-8", "replace")[-3000:])
    assert up.proc.poll() is None, up.output()

