"""SIGTERM and SIGINT stop the process gracefully: the input ends, what is open
is closed, one line says so, status 0; a stop that does not finish in time, or
a second signal, interrupts the run at once, still with status 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.support.pipeline import REPO

PROGRAM = """
import time
import runtime.stop
from runtime.logs import configure_logging
from runtime.lifecycle import close_at_shutdown
from runtime.stop import install_stop_handlers, stop_requested

class Resource:
    def close(self):
        print("closed", flush=True)

runtime.stop.DRAIN_TIMEOUT_S = {timeout}
configure_logging("text", "INFO")
close_at_shutdown(Resource())
install_stop_handlers()
print("ready", flush=True)
began = time.monotonic()
while {condition} and time.monotonic() - began < 30:  # a run loop whose sources check stop_requested()
    time.sleep(0.02)
print("drained" if stop_requested() else "not stopped", flush=True)
"""


def start(condition: str, timeout: float = 20.0) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM.format(condition=condition, timeout=timeout)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_input_and_the_run_ends_normally(sig: signal.Signals) -> None:
    proc = start("not stop_requested()")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["drained", "closed"]
    assert f"{sig.name} received: stopping" in err and err.strip().endswith(f"stopped on {sig.name}")
    assert "Traceback" not in err


def test_a_second_signal_interrupts_a_stop_that_hangs() -> None:
    proc = start("True")  # never drains
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # two signals at once are one for the process
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["closed"]  # interrupted inside the loop, resources still closed
    assert "stopping now" in err and err.strip().endswith("stopped on SIGTERM") and "Traceback" not in err


def test_a_stop_that_takes_too_long_is_interrupted() -> None:
    proc = start("True", timeout=0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["closed"]
    assert "did not finish within 0.5 s" in err and "stopping now" in err


def test_an_error_that_is_no_stop_still_fails_with_its_traceback() -> None:
    program = PROGRAM.format(condition="True", timeout=20).replace("print(\"ready\", flush=True)",
                                                                  "raise KeyboardInterrupt")
    result = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "stopped on" not in result.stderr
