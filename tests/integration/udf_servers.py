"""Start real UDF server processes (Python samples, the Go server) on free ports."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.support.ports import free_port  # noqa: F401 - re-exported for the UDF tests

REPO = Path(__file__).resolve().parents[2]
GO_DIR = REPO / "udf" / "go"


def python_udf(name: str, port: int, *args: str) -> list[str]:
    """argv of `iot-monitoring udf serve NAME --port PORT`."""
    return [sys.executable, "-m", "cli.main", "udf", "serve", name, "--host", "127.0.0.1", "--port", str(port), *args]


def python_script_udf(source: str, port: int) -> list[str]:
    """argv of a Python UDF written inline with the SDK; `source` defines `fn`."""
    program = f"{source}\nfrom udf.sdk import serve\nserve(fn, {port}, '127.0.0.1')\n"
    return [sys.executable, "-c", program]


@functools.cache
def go_udf_binary() -> Path:
    """Build the Go UDF once per pytest run (skip when Go is missing)."""
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        pytest.skip("Go toolchain not installed")
    env = dict(os.environ, PATH=f"{os.environ.get('PATH', '')}:/usr/local/go/bin")
    result = subprocess.run(["bash", str(GO_DIR / "build.sh")], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return GO_DIR / "bin" / "udf-uppercase"


def go_udf(port: int) -> list[str]:
    return [str(go_udf_binary()), "--host", "127.0.0.1", "--port", str(port)]


ClientTls = tuple[Path, Path, Path]  # CA, client certificate, client key: for a UDF served over TLS


def _channel(port: int, tls: ClientTls | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(f"127.0.0.1:{port}")
    ca, cert, key = (p.read_bytes() for p in tls)
    return grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(ca, key, cert))


def health_status(port: int, service: str = "", timeout: float = 1.0, tls: ClientTls | None = None) -> int | None:
    """The health service's answer, or None when nothing answers."""
    with _channel(port, tls) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            ).status
        except grpc.RpcError:
            return None


class UdfProcess:
    """One UDF server process; `start` waits until its health service says SERVING."""

    def __init__(self, argv: list[str], port: int, log_path: Path | None = None, tls: ClientTls | None = None):
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.tls = tls
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, wait: bool = True, timeout: float = 30.0) -> "UdfProcess":
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if wait:
            deadline = time.monotonic() + timeout
            while health_status(self.port, tls=self.tls) != health_pb2.HealthCheckResponse.SERVING:
                assert self.proc.poll() is None, f"UDF exited with {self.proc.returncode}: {self.log()}"
                assert time.monotonic() < deadline, f"UDF not serving after {timeout} s: {self.log()}"
                time.sleep(0.1)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path and self.log_path.exists() else ""

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM (graceful shutdown); returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def running(argv: list[str], port: int, log_path: Path | None = None, tls: ClientTls | None = None) -> Iterator[UdfProcess]:
    udf = UdfProcess(argv, port, log_path, tls).start()
    try:
        yield udf
    finally:
        udf.stop()
