"""py-spy profiles of benchmark processes: record collapsed stacks, print where the time goes.

``py-spy`` (``.venv/bin/pip install py-spy``) samples a running process
without changing it; ``--nonblocking`` keeps it from pausing the target. The
raw (collapsed) files can be turned into flame graphs with ``inferno`` or
``flamegraph.pl``, or recorded as SVG directly with ``py-spy record -o x.svg``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, out: Path, seconds: float) -> subprocess.Popen | None:
    """Start ``py-spy record`` (raw collapsed stacks, per thread) on ``pid``; None without py-spy."""
    exe = py_spy()
    if exe is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    from _stack import pdeathsig_preexec  # dies with the harness, like every other child

    return subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
                             "--rate", "100", "--format", "raw", "--threads", "--nonblocking", "-o", str(out)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            preexec_fn=pdeathsig_preexec())


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    for marker in ("site-packages/", "/engine/", "/benchmarks/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1] if marker != "/engine/" else "engine/" + file.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({file})"


def summarize(path: Path, top: int = 12) -> str:
    """Per thread: its share of samples, then the functions with the most self and inclusive time."""
    if not path.exists() or path.stat().st_size == 0:
        return f"  (no profile in {path})"
    threads: dict[str, Counter] = {}
    self_time: dict[str, Counter] = {}
    totals: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        thread, frames = frames[0], [_short(f) for f in frames[1:]]
        totals[thread] += int(n)
        inc = threads.setdefault(thread, Counter())
        for f in set(frames):
            inc[f] += int(n)
        if frames:
            self_time.setdefault(thread, Counter())[frames[-1]] += int(n)
    grand = sum(totals.values()) or 1
    lines = []
    for thread, n in totals.most_common(3):
        lines.append(f"  {thread}: {n / grand:.0%} of busy samples")
        lines.append("    self time:")
        for f, c in self_time.get(thread, Counter()).most_common(top):
            lines.append(f"      {c / n:6.1%}  {f}")
        lines.append("    inclusive (below the entry points):")
        shown = 0
        ranked = threads[thread].most_common()
        root = ranked[0][1] if ranked else 0
        for f, c in ranked:
            if c < 0.8 * root:
                lines.append(f"      {c / n:6.1%}  {f}")
                shown += 1
                if shown >= top:
                    break
    return "\n".join(lines)
