"""`wait_until`: a server that lost a bind race to an equal one is not a failure."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from cli.local_stack import ManagedProcess, StackError, wait_until


def _exited_process(tmp_path: Path) -> ManagedProcess:
    proc = ManagedProcess("short-lived", tmp_path, "short-lived-marker")
    pid = proc.spawn([sys.executable, "-c", "pass", "short-lived-marker"])
    os.waitpid(pid, 0)
    assert proc.pid() is None
    return proc


def test_a_dead_server_is_a_clear_error_when_nothing_serves(tmp_path: Path) -> None:
    proc = _exited_process(tmp_path)
    with pytest.raises(StackError, match="short-lived exited while starting"):
        wait_until(lambda: False, 5, "short-lived", proc)


def test_a_dead_server_is_fine_when_another_serves_by_then(tmp_path: Path) -> None:
    proc = _exited_process(tmp_path)
    answers = iter([False, True])  # not yet at the first look; served by the time the exit is seen
    wait_until(lambda: next(answers), 5, "short-lived", proc)


def test_a_server_just_spawned_is_running(tmp_path: Path) -> None:
    """Popen can return before the kernel shows the child's new command line
    (about 1 spawn in 40 here), and a wrapper may exec the server later still;
    `pid()` must not call such a child gone. Here the marker shows 0.3 s late."""
    proc = ManagedProcess("sleeper", tmp_path, "sleeper-marker")
    sleeper = tmp_path / "sleeper-marker"  # its name is in the command line once it runs
    sleeper.symlink_to(shutil.which("sleep") or "/bin/sleep")
    env = dict(os.environ, SLEEPER=str(sleeper))
    pid = proc.spawn(["sh", "-c", 'sleep 0.3; exec "$SLEEPER" 30'], env=env)
    try:
        assert proc.pid() == pid
    finally:
        os.killpg(pid, 9)
        os.waitpid(pid, 0)
