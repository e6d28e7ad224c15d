"""Child processes of `iot-monitoring demo`: started with their logs in files,
stopped in reverse order, never left behind.

Each child runs in its own session, so the terminal's Ctrl-C reaches only the
demo, which then stops the children in order (the dataflow before the UDF it
calls). On Linux each child also asks the kernel for SIGTERM should the demo
die without cleaning up (`PR_SET_PDEATHSIG`), so even `kill -9` leaves no
orphans.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM when the parent goes away."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux/glibc: the demo's own cleanup still applies
        pass


class ChildFailed(RuntimeError):
    """A child process exited when it should still be running, or failed."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path
    log_file: IO[bytes]

    def tail(self, lines: int = 15) -> str:
        """The end of the child's log, to explain a failure."""
        try:
            with self.log_path.open("rb") as f:
                return b"".join(deque(f, maxlen=lines)).decode("utf-8", "replace").rstrip()
        except OSError:
            return ""


class Children:
    """The processes the demo started; a context manager that stops them all."""

    def __init__(self, log_dir: Path, cwd: Path) -> None:
        self.log_dir = log_dir
        self.cwd = cwd
        self.running: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            list(argv), cwd=self.cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True,
            # only a prctl call runs between fork and exec, which is safe with threads about
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
        child = Child(name, process, log_path, log_file)
        self.running.append(child)
        log.info("started %s (pid %d), log %s", name, process.pid, log_path)
        return child

    def run(self, name: str, argv: Sequence[str], env: Mapping[str, str], timeout_s: float) -> None:
        """Run one child to its end; ChildFailed (with its log's tail) unless it exits 0 in time."""
        child = self.start(name, argv, env)
        try:
            code = child.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop(child)
            raise ChildFailed(f"{name} did not finish within {timeout_s:.0f} s; log {child.log_path}") from None
        self._forget(child)
        if code != 0:
            raise ChildFailed(f"{name} exited with {code}; log {child.log_path}:\n{child.tail()}")
        log.info("%s finished", name)

    def check(self) -> None:
        """ChildFailed if a long-running child has exited."""
        for child in self.running:
            code = child.process.poll()
            if code is not None:
                self._forget(child)
                raise ChildFailed(f"{child.name} exited with {code}; log {child.log_path}:\n{child.tail()}")

    def stop(self, child: Child, timeout_s: float = 10.0) -> None:
        """SIGINT (each child shuts down cleanly on it), SIGKILL after `timeout_s`."""
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGINT)
            try:
                child.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", child.name, timeout_s)
                child.process.kill()
                child.process.wait()
            log.info("stopped %s (exit %s)", child.name, child.process.returncode)
        self._forget(child)

    def stop_all(self, timeout_s: float = 10.0) -> None:
        """Stop every running child, newest first; a second Ctrl-C meanwhile
        cannot cut this short (each child is killed after `timeout_s` anyway)."""
        in_main = threading.current_thread() is threading.main_thread()  # only there can signals be set
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            for child in reversed(list(self.running)):
                self.stop(child, timeout_s)
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)

    def _forget(self, child: Child) -> None:
        if child in self.running:
            self.running.remove(child)
        child.log_file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def wait_for_port(host: str, port: int, timeout_s: float, child: Child) -> None:
    """Until something listens on host:port; ChildFailed if `child` dies or time runs out."""
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise ChildFailed(f"{child.name} exited with {child.process.returncode}; log {child.log_path}:\n{child.tail()}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise ChildFailed(f"{child.name} did not listen on {host}:{port} within {timeout_s:.0f} s; log {child.log_path}")
