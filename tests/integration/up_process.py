"""``citywatch up`` as a child process, read as a terminal would show it, stopped with Ctrl-C (or killed)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import ROOT


class Up:
    """``python -m engine up`` from ``cwd`` (the repository unless told), its stdout and stderr line by line."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path = ROOT):
        self.proc = subprocess.Popen([sys.executable, "-m", "engine", "up", *args], env=env, cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip())

    def output(self) -> str:
        return "\n".join(self.lines)

    def pids(self) -> list[int]:
        return sorted({int(p) for p in re.findall(r"pid (\d+)", self.output())})

    def interrupt(self) -> int:
        """Ctrl-C as a terminal sends it: SIGINT to the foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(60)
        finally:
            self._reader.join(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except OSError:
        return False
