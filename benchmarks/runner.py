"""Run each contender as its own process: wall time from spawn to exit, and its
peak resident memory (VmHWM of /proc/<pid>/status, read until it exits).

Not `wait4`'s ru_maxrss: that one keeps the high-water mark of the forked
child before its exec, i.e. of the harness itself, and would put the
harness's memory into every contender's figure."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    returncode: int
    output: str
    cpu_seconds: float = 0.0  # user + system time of the process (not of the broker it reads from)

    def check(self, name: str) -> "Run":
        if self.returncode != 0:
            tail = "\n".join(self.output.splitlines()[-30:])
            raise RuntimeError(f"{name} exited with {self.returncode}:\n{tail}")
        return self


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]


def start(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen, object, float]:
    log = tempfile.TemporaryFile(mode="w+")
    started = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=REPO, env=dict(os.environ, **(env or {})), stdout=log, stderr=subprocess.STDOUT,
                            text=True)
    return proc, log, started


def finish(proc: subprocess.Popen, log, started: float, timeout_s: float,
           on_tick: Callable[[int], None] | None = None) -> Run:
    """Wait for the process (killing it after `timeout_s`); `on_tick(pid)` is
    called every 10 ms while it runs."""
    deadline = started + timeout_s
    peak_kb = 0
    while True:
        peak_kb = max(peak_kb, high_water_kb(proc.pid))
        if on_tick is not None:
            on_tick(proc.pid)
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    log.seek(0)
    output = log.read()
    log.close()
    return Run(seconds, peak_kb / 1024, proc.returncode, output, usage.ru_utime + usage.ru_stime)


def proc_status_kb(pid: int, field: str) -> int:
    """A memory field (`VmHWM`, `VmRSS`) of a live process, in kB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def high_water_kb(pid: int) -> int:
    return proc_status_kb(pid, "VmHWM")


def run(cmd: Sequence[str], env: Mapping[str, str] | None = None, timeout_s: float = 1800) -> Run:
    proc, log, started = start(cmd, env)
    return finish(proc, log, started, timeout_s)


def run_together(cmds: Sequence[Sequence[str]], env: Mapping[str, str] | None = None, timeout_s: float = 1800) -> list[Run]:
    """Start all at once (a multi-process cluster); each Run's time is from the common start."""
    started_procs = [start(cmd, env) for cmd in cmds]
    t0 = started_procs[0][2]
    return [finish(proc, log, t0, timeout_s) for proc, log, _ in started_procs]


def engine_revision() -> str:
    """The commit the package's code comes from, and whether the engine's files
    differ from it: figures belong to a revision."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", "operators", "engine", "connectors", "runtime", "dataflows", "config")
    return commit + (f" with uncommitted changes in {len(changed.splitlines())} files" if changed else "")
