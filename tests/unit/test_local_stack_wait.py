"""`wait_until`: a server that lost a bind race to an equal one is not a failure."""

from __future__ import annotations

import os
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
