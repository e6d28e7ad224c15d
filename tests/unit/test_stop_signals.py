"""SIGTERM and SIGINT stop the process gracefully: one line, the open resources closed, status 0."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.support.pipeline import REPO

PROGRAM = """
import os, signal, sys, time
from runtime.logs import configure_logging
from runtime.lifecycle import close_at_shutdown
from runtime.stop import install_stop_handlers

class Resource:
    def close(self):
        print("closed", flush=True)

configure_logging("text", "INFO")
close_at_shutdown(Resource())
install_stop_handlers()
print("ready", flush=True)
time.sleep(30)
print("not stopped", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_closes_what_is_open_and_exits_0(sig: signal.Signals) -> None:
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "closed" in out and "not stopped" not in out
    assert f"stopped on {sig.name}" in err and "Traceback" not in err
    assert f"{sig.name} received: stopping" in err


def test_an_error_that_is_no_stop_still_fails_with_its_traceback() -> None:
    program = PROGRAM.replace("time.sleep(30)", "raise KeyboardInterrupt")
    result = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "stopped on" not in result.stderr
